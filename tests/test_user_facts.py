"""``core.memory.user_facts.statements``: what of a user's message memory keeps (pure Python, fast)."""

from __future__ import annotations

import pytest

from core.memory.user_facts import MAX_CHARACTERS, MAX_STATEMENTS, statements


@pytest.mark.parametrize("text", [
    "My name is Ada and I keep bees.",
    "My sister's name is Zorbalina and she lives in Lisbon.",
    "I moved to Oslo last year.",
    "The team meeting moved to Thursday at 3 pm in room 12.",
    "I prefer tea to coffee.",
    "I'm allergic to peanuts.",
    "I am a nurse.",
    "I'm Ada.",
    "I have a meeting with Ada at 9:00 on Monday.",
    "Ada is coming to dinner on Saturday but hates olives.",
    "My sister, who is a nurse, lives in Lisbon.",  # a relative clause is no question
    "I live in Lisbon, which is my favourite city.",
    "When I was young I lived in Rome.",  # a question word that begins a clause, not a question
    "Where I live it rains a lot.",
    "Will is my brother.",  # an auxiliary that is a name
    "My dentist is Dr. Patel and her office is on Main St. near the park.",
])  # fmt: skip
def test_a_declarative_sentence_is_kept_verbatim(text):
    assert statements(text) == [text]


@pytest.mark.parametrize("text", [
    "What is my name?", "where does my sister live", "Where does my sister live?", "what's my name",
    "whats my sisters name", "Who is my dentist", "How old am I", "Which city do I live in",
    "Do you know Paris?", "do you know paris", "Is my sister in Lisbon", "Did I tell you about my sister",
    "Can you tell me where my sister lives", "Could you remind me of my sister's name?",
    "My sister lives in Lisbon?",  # said with a rising voice: asked, not told
    "I wonder where my keys are.", "I'd like to know what my sister is called.",
])  # fmt: skip
def test_a_question_is_not_a_fact(text):
    assert statements(text) == []


@pytest.mark.parametrize("text", [
    "Tell me a joke.", "Please describe this.", "Remind me to call the bank on Friday.", "Write a poem",
    "Translate 'good morning' to French.", "Say something encouraging.", "Give me three ideas for dinner",
    "Let's play a game.", "Don't tell anyone.", "I want you to write a poem about bees.", "Remember to buy milk.",
    "Kindly summarise the article.",
])  # fmt: skip
def test_a_request_is_not_a_fact(text):
    assert statements(text) == []


@pytest.mark.parametrize("text", [
    "Hi!", "Thanks.", "OK", "Hello there", "Good morning!", "Thank you very much!", "Thanks, that was helpful.",
    "That's great!", "It was fine.", "Sounds good.", "Yes", "Got it", "What a day!", "Hmm...", "?!", "", "   ",
    "[Image x.png: a red cup on a table]", "Ada.",
])  # fmt: skip
def test_greetings_thanks_and_notes_are_not_facts(text):
    assert statements(text) == []


@pytest.mark.parametrize("text, kept", [
    ("I'm Ada. What's my name?", ["I'm Ada."]),
    ("I'm Ada, what's my name?", ["I'm Ada"]),
    ("My name is Ada and what is my name", ["My name is Ada"]),
    ("I am Ada and what is my name?", ["I am Ada"]),
    ("My locker code is 4821, please remember it.", ["My locker code is 4821"]),
    ("my sister lives in lisbon can you remember that", ["my sister lives in lisbon"]),
    ("You know my sister lives in Lisbon, right?", ["You know my sister lives in Lisbon"]),
    ("I live in Oslo, and my sister lives in Lisbon, what about you?",
     ["I live in Oslo, and my sister lives in Lisbon"]),
    ("If I move to Oslo, what should I pack?", []),  # a condition tells nothing alone
    ("When I get home, remind me to call mum.", []),
])  # fmt: skip
def test_a_statement_joined_to_a_question_or_request_keeps_the_statement(text, kept):
    assert statements(text) == kept


@pytest.mark.parametrize("text, kept", [
    ("Hi, my name is Ada.", ["my name is Ada."]),
    ("Hi! My name is Ada. Can you remember that?", ["My name is Ada."]),
    ("Hey Tantra, I moved to Oslo.", ["I moved to Oslo."]),
    ("Yes, I have two kids.", ["I have two kids."]),
    ("No, my sister lives in Porto.", ["my sister lives in Porto."]),
    ("No. My sister lives in Porto.", ["My sister lives in Porto."]),
    ("No one knows my middle name.", ["No one knows my middle name."]),  # "No" without its comma is no answer
    ("Remember this: my cat is called Pumpernickel.", ["my cat is called Pumpernickel."]),
    ("Please remember that my dog is called Rex.", ["my dog is called Rex."]),
    ("Can you remember that my sister is called Ada?", ["my sister is called Ada"]),
    ("Don't forget that my dentist is Dr. Patel.", ["my dentist is Dr. Patel."]),
    ("By the way, I'm allergic to peanuts.", ["I'm allergic to peanuts."]),
    ("FYI: the meeting moved to Thursday.", ["the meeting moved to Thursday."]),
])  # fmt: skip
def test_greetings_answers_and_lead_ins_are_cut_from_a_statement(text, kept):
    assert statements(text) == kept


def test_a_message_keeps_its_statements_in_order_and_leaves_the_rest():
    message = ("Hello! I moved to Oslo last year.  My sister lives in Lisbon.\n"
               "What's the weather like there? Tell me a joke. My favourite colour is green")  # fmt: skip
    assert statements(message) == ["I moved to Oslo last year.", "My sister lives in Lisbon.",
                                    "My favourite colour is green"]  # fmt: skip


def test_abbreviations_and_times_do_not_end_a_sentence():
    assert statements("The meeting is at 3 p.m. on Friday. I live in Oslo. I met Dr. Patel there.") == [
        "The meeting is at 3 p.m. on Friday.", "I live in Oslo.", "I met Dr. Patel there."]  # fmt: skip


def test_whitespace_is_normalised_and_lines_are_read_as_written():
    assert statements("  My   sister\tlives in Lisbon.  ") == ["My sister lives in Lisbon."]
    assert statements("I'm Ada.\nWhat's my name?\n\nMy dog\nis called Rex.") == ["I'm Ada.", "My dog is called Rex."]
    assert statements("- I like tea\n- My dog is Rex\n1. I keep bees") == ["I like tea", "My dog is Rex", "I keep bees"]


def test_image_notes_code_and_quotes_are_not_what_the_user_said():
    message = "[Image cup.png: a red mug on a desk]\n\nMy mug is red.\n```\nThe server is down.\n```"
    assert statements(message) == ["My mug is red."]
    assert statements("> I was born in Paris.\nMy brother wrote that. What does it mean?") == ["My brother wrote that."]


def test_what_follows_a_request_for_work_is_material_not_a_fact():
    assert statements("Translate this: I love you. I miss you.") == []
    assert statements("Summarise the following:\nThe company reported growth. Profits doubled.") == []
    assert statements("I'm a teacher. Proofread this: The cat sat on the mat.") == ["I'm a teacher."]


def test_the_same_statement_is_kept_once_and_at_most_eight_per_message():
    assert statements("My sister lives in Lisbon. my sister lives in Lisbon!") == ["My sister lives in Lisbon."]
    many = " ".join(f"I have {n} cats." for n in range(20))
    assert statements(many) == [f"I have {n} cats." for n in range(MAX_STATEMENTS)]


def test_a_long_statement_is_cut_at_a_word():
    [kept] = statements("I like " + "very " * 200 + "long sentences.")
    assert len(kept) <= MAX_CHARACTERS and kept.startswith("I like very very") and kept.endswith("very…")


def test_a_huge_message_costs_little():
    import time

    start = time.perf_counter()
    found = statements("What is this? " * 100_000)
    assert found == [] and time.perf_counter() - start < 0.5
