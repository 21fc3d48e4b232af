"""Where a turn's facts go in the prompt (core/language/grounding.py), through the chat with the fake model."""

from __future__ import annotations

import pytest

from core.language.conversation import Conversation, SamplingOptions
from core.language.grounding import (
    DEFAULT_SYSTEM,
    Grounds,
    in_third_person,
    note_text,
    told_before,
    turn_messages,
)  # fmt: skip
from core.memory.chat_log import ImageRecord
from tests.fakes import FakeTokenizer


@pytest.mark.parametrize(("said", "about_the_user"), [
    ("My name is Ada and I keep bees.", "The user's name is Ada and the user keeps bees."),
    ("I'm allergic to peanuts.", "The user is allergic to peanuts."),
    ("I have three cats.", "The user has three cats."),
    ("I was born in 1987.", "The user was born in 1987."),
    ("I usually wake up at 6:30.", "The user usually wakes up at 6:30."),
    ("I go to the gym. I watch TV with my son.", "The user goes to the gym. The user watches TV with the user's son."),
    ("I've got two dogs", "The user has got two dogs"),
    ("I don't eat meat", "The user doesn't eat meat"),
    ("I moved to Oslo last year.", "The user moved to Oslo last year."),
    ("I can swim.", "The user can swim."),
    ("The meeting is at 3 pm.", "The meeting is at 3 pm."),
])  # fmt: skip
def test_the_users_words_in_the_third_person(said, about_the_user):
    assert in_third_person(said) == about_the_user


def test_the_note_holds_each_kind_of_fact_and_the_question_stands_alone():
    grounds = Grounds(told=("My name is Ada.",), remembered=("My sister lives in Lisbon.",),
                      images=("[Image cat.png: Probably tabby cat (40%), or tiger cat (20%).]",),
                      context="The meeting moved to Thursday.")  # fmt: skip
    note, question = turn_messages("Where does my sister live?", grounds)
    assert note["role"] == "system" and question == {"role": "user", "content": "Where does my sister live?"}
    assert note["content"].splitlines() == [
        "Facts about the user: The user's sister lives in Lisbon. The user's name is Ada.",
        "The picture cat.png shows: tabby cat (40%), or tiger cat (20%).",
        "Here is the user's text:",
        "The meeting moved to Thursday.",
    ]
    assert turn_messages("Hi", Grounds()) == [{"role": "user", "content": "Hi"}]  # nothing to note: no note
    assert note_text(Grounds(context="  ")) == ""


def test_the_inline_layout_is_the_one_before():
    (message,) = turn_messages("What is it?", Grounds(images=("[Image a.png: Looks like cat (90%).]",)), "inline")
    assert message == {"role": "user", "content": "[Image a.png: Looks like cat (90%).]\n\nWhat is it?"}
    with pytest.raises(ValueError, match="no prompt layout"):
        turn_messages("x", Grounds(), "sideways")


def test_told_before_keeps_the_users_statements_and_the_relevant_ones_when_there_are_many():
    messages = [{"role": "user", "content": "My name is Ada. What is the time?"},
                {"role": "assistant", "content": "My name is Bot. It is noon."},
                {"role": "system", "content": "Facts about the user: The user's name is Ada."},
                {"role": "user", "content": "My name is Ada."}]  # fmt: skip
    assert told_before(messages, "What is my name?") == ("My name is Ada.",)  # never the model's words, once
    many = [{"role": "user", "content": f"I have {n} apples."} for n in range(12)]
    many.insert(0, {"role": "user", "content": "My dog is called Rex."})
    kept = told_before(many, "What is my dog called?", limit=4)
    assert kept[0] == "My dog is called Rex." and len(kept) == 4 and kept[-1] == "I have 11 apples."


def test_a_long_conversation_drops_whole_turns_notes_included():
    tokenizer = FakeTokenizer()
    messages = []
    for n in range(6):
        messages += turn_messages(f"question {n}", Grounds(context="x" * 50))
        messages.append({"role": "assistant", "content": f"answer {n}"})
    messages += turn_messages("last", Grounds(context="y"))
    conversation = Conversation("be brief", messages)
    ids = conversation.prompt_ids(tokenizer, 300, 50)
    text = tokenizer.decode(ids)
    assert len(ids) <= 250 and text.startswith("<system>be brief\n")
    assert text.endswith("<user>last\n<assistant>") and "question 5" in text and "question 0" not in text
    assert text.split("\n")[1].startswith("<system>Here is the user's text:")  # a turn begins at its note


# ---- through the chat, with the fake model ---------------------------------------------------------------------------


@pytest.fixture()
def chat():
    from core.language.chat_session import ChatSession
    from tests.fakes import fake_language_model

    loaded = fake_language_model()  # it answers "You said: THE LAST USER MESSAGE."
    return ChatSession(loaded["chat"], SamplingOptions(temperature=0), DEFAULT_SYSTEM)


def test_a_chat_puts_piped_text_images_and_earlier_statements_in_the_note(chat):
    assert "".join(chat.ask("My name is Ada and I keep bees.")) == "You said: My name is Ada and I keep bees.."
    chat.pending_images.append(ImageRecord("/x/cat.png", "0" * 64, "[Image cat.png: Looks like tabby cat (90%).]"))
    reply = "".join(chat.ask("When is the meeting?", context="The meeting moved to Thursday."))
    assert reply == "You said: When is the meeting?."  # the question alone is the user's message
    note = chat.conversation.messages[2]
    assert note["role"] == "system" and note["content"].splitlines() == [
        "Facts about the user: The user's name is Ada and the user keeps bees.",
        "The picture cat.png shows: tabby cat (90%).",
        "Here is the user's text:",
        "The meeting moved to Thursday.",
    ]
    assert chat.journal.log is None  # nothing logged by this chat (its journal keeps nothing)


def test_each_prompt_begins_with_the_last_one_so_the_cache_holds(chat):
    """The note stays in the conversation where it was given: the next prompt runs only what is new."""
    tokenizer = chat.model.tokenizer
    prompts = []
    for text in ("My name is Ada.", "I live in Oslo.", "What is my name?", "Where do I live?"):
        "".join(chat.ask(text))
        prompts.append(tokenizer.decode(chat.last_counts.token_ids))  # the prompt and the reply of this turn
    for earlier, later in zip(prompts, prompts[1:]):
        assert later.startswith(earlier.removesuffix("\x00"))
    assert "Facts about the user: The user's name is Ada. The user lives in Oslo." in prompts[-1]


def test_a_continued_conversation_lays_its_images_out_as_notes(chat):
    from core.memory.chat_log import Exchange

    logged = Exchange(1, "c1", "2026-12-04T00:00:00", "m", True, None, {}, "What is this?", "A cat.", None, None,
                      None, None, False, "typed", None,
                      images=[ImageRecord("/p.png", "0" * 64, "[Image p.png: Looks like cat (90%).]")])  # fmt: skip
    chat.continue_from([logged])
    assert [m["role"] for m in chat.conversation.messages] == ["system", "user", "assistant"]
    assert chat.conversation.messages[0]["content"] == "The picture p.png shows: cat (90%)."


def test_what_the_next_prompt_begins_with_is_read_ahead_of_the_question(chat):
    from tests.fakes import PROMPTS_READ, READ_AHEAD

    "".join(chat.ask("My name is Ada."))
    cat = ImageRecord("/x/cat.png", "0" * 64, "[Image cat.png: Looks like tabby cat (90%).]")
    chat.read_ahead([cat])  # the user has started to speak; the picture goes with what they say
    ahead = READ_AHEAD[-1]
    assert ahead.endswith("<system>Facts about the user: The user's name is Ada.\n"
                          "The picture cat.png shows: tabby cat (90%).\n<user>")  # fmt: skip
    assert chat.conversation.messages[-1]["content"] == "You said: My name is Ada.."  # nothing added to the chat
    chat.attach(cat)
    "".join(chat.ask("What is in the picture?"))
    assert PROMPTS_READ[-1].startswith(ahead)  # all of it is the start of the question's prompt
