"""The log and the episodic memory around a chat, with a fake model and a fake embedder (fast), and the real
all-MiniLM-L6-v2 and SpikingBrain in separate processes (slow)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import MEMORY_ON, run_tantra
from tests.fakes import FakeEmbedder, fake_language_model


def _journal(path, embedder=None, capacity: int = 1000, conversation_id: str | None = None):
    """A journal on its own connection to ``path``: as a separate process would open it."""
    from core.chat_log import ChatLog
    from core.journal import Journal
    from core.log_db import open_database
    from core.memory import EpisodicMemory

    database = open_database(path)
    embedder = embedder or FakeEmbedder()
    return Journal(ChatLog(database), EpisodicMemory(database, lambda: embedder, capacity), conversation_id)


def _session(journal, reply=None):
    """A chat whose model answers with ``reply(what it read)``: by default, exactly what it read."""
    from core.chat_session import ChatSession
    from core.language_model import SamplingOptions

    loaded = fake_language_model(reply=reply or (lambda message: message))
    return ChatSession(loaded["model"], loaded["tokenizer"], SamplingOptions(max_tokens=4000), None, "fake-lm",
                       journal=journal)  # fmt: skip


def test_a_fact_told_in_one_conversation_reaches_the_prompt_of_another(tmp_path):
    database = tmp_path / "tantra.db"
    told = _session(_journal(database), reply=lambda message: "Noted.")
    "".join(told.ask("My sister's name is Zanzibar."))
    "".join(told.ask("Tell me a joke about cats."))

    later = _session(_journal(database))
    read = "".join(later.ask("What is my sister's name?"))
    assert '[Memory of ' in read and 'the user said "My sister\'s name is Zanzibar.", you replied "Noted."' in read
    assert "cats" not in read  # only what is like the message is recalled
    assert read.endswith("What is my sister's name?")  # the notes come before the question
    assert [r.exchange.prompt for r in later.journal.recalled] == ["My sister's name is Zanzibar."]
    assert "Zanzibar" in later.command("/memory")

    # Within one conversation nothing is recalled: its own turns are in the context already.
    assert "[Memory" not in "".join(later.ask("What is my sister's name again?"))
    assert later.command("/memory") == "nothing was recalled for the last message"


def test_the_log_keeps_each_exchange_with_its_facts(tmp_path):
    from core.chat_log import ChatLog
    from core.log_db import open_database

    session = _session(_journal(tmp_path / "tantra.db"),
                       lambda message: "word " * 300 if message == "go on" else message)  # fmt: skip
    reply = session.ask("go on")
    for _ in range(5):
        next(reply)
    reply.close()  # stopped early (Ctrl-C, a barge-in)
    "".join(session.ask("Hello there"))

    log = ChatLog(open_database(tmp_path / "tantra.db"))
    [conversation] = log.conversations()
    assert conversation.turns == 2 and conversation.first_prompt == "go on" and conversation.model == "fake-lm"
    cut, whole = log.exchanges(conversation.id)
    assert cut.interrupted and cut.reply == "word" and cut.completion_tokens == 5
    assert not whole.interrupted and whole.reply == "Hello there" and whole.source == "typed"
    assert whole.options["max_tokens"] == 4000 and whole.prompt_tokens > 0 and whole.seconds is not None
    assert [hit.id for hit in log.search("hello")] == [whole.id]
    assert log.find_conversation(conversation.id[:8]) == conversation.id


def test_a_prompt_too_long_for_the_model_is_refused_and_logged_whole(tmp_path):
    from core.chat_log import ChatLog
    from core.errors import BadInput
    from core.log_db import open_database

    session = _session(_journal(tmp_path / "tantra.db"))
    huge = "x" * 5000  # the fake model's context holds 4,096 tokens, one per byte
    with pytest.raises(BadInput, match="context holds 4096"):
        "".join(session.ask(huge))
    [exchange] = ChatLog(open_database(tmp_path / "tantra.db")).exchanges(session.journal.conversation_id)
    assert exchange.prompt == huge and exchange.error and exchange.reply == ""
    assert session.conversation.messages == []


def test_continuing_a_conversation_gives_its_turns_back_as_context(tmp_path):
    from core.chat_log import ChatLog
    from core.log_db import open_database

    class Describer:
        def note(self, path):
            return f"[Image {path.name}: coffee mug]"

    first = _session(_journal(tmp_path / "tantra.db"), reply=lambda message: "A mug.")
    first.describer = Describer()
    photo = tmp_path / "cup.png"
    photo.write_bytes(b"not read by the fake describer")
    first.command(f"/image {photo}")
    "".join(first.ask("What is this?"))

    log = ChatLog(open_database(tmp_path / "tantra.db"))
    earlier = log.exchanges(log.latest_conversation())
    assert earlier[0].images[0].facts == "[Image cup.png: coffee mug]" and len(earlier[0].images[0].sha256) == 64
    second = _session(_journal(tmp_path / "tantra.db"))
    second.continue_from(earlier)
    assert second.conversation.messages == [
        {"role": "user", "content": "[Image cup.png: coffee mug]\n\nWhat is this?"},
        {"role": "assistant", "content": "A mug."},
    ]
    "".join(second.ask("And its colour?"))
    assert [e.prompt for e in log.exchanges(earlier[0].conversation_id)] == ["What is this?", "And its colour?"]


def test_memory_keeps_the_most_recently_recalled_up_to_its_capacity(tmp_path):
    database = tmp_path / "tantra.db"
    session = _session(_journal(database, capacity=4), reply=lambda message: "ok")
    for fact in ("alpha bravo", "charlie delta", "echo foxtrot", "golf kilo"):  # no words in common
        "".join(session.ask(fact))
        session.command("/clear")  # each in a conversation of its own
    memory = session.journal.memory
    assert [r.exchange.prompt for r in memory.recall("alpha")] == ["alpha bravo"]
    "".join(session.ask("india juliet"))  # a fifth: the least recently recalled goes
    assert sorted(e.prompt for e in memory.episodes(0)) == ["alpha bravo", "echo foxtrot", "golf kilo", "india juliet"]
    assert memory.count() == 4

    assert memory.forget(memory.episodes(0)[-1].id)
    assert session.command("/forget").startswith("forgot episode")  # the last exchange
    assert memory.count() == 2 and memory.clear() == 2 and memory.count() == 0


def test_without_an_embedder_memory_recalls_by_words(tmp_path):
    from core.chat_log import ChatLog
    from core.journal import Journal
    from core.log_db import open_database
    from core.memory import EpisodicMemory

    database = open_database(tmp_path / "tantra.db")
    session = _session(Journal(ChatLog(database), EpisodicMemory(database, lambda: None)), lambda message: "ok")
    "".join(session.ask("The wifi password is Kumquat7."))
    for number in range(30):  # BM25 needs a few other episodes to tell a rare word from a common one
        "".join(session.ask(f"Tell me about the number {number}."))
    session.command("/clear")
    found = session.journal.memory.recall("what was the kumquat7 password", session.journal.conversation_id)
    assert [r.exchange.prompt for r in found] == ["The wifi password is Kumquat7."] and found[0].similarity is None

    # The episodes kept meanwhile are embedded once an embedder is there again.
    embedder = FakeEmbedder()
    again = EpisodicMemory(open_database(tmp_path / "tantra.db"), lambda: embedder)
    assert again.recall("wifi password")[0].similarity > 0.3 and again.count() == 31


def test_a_draft_talked_over_leaves_nothing_behind(tmp_path):
    session = _session(_journal(tmp_path / "tantra.db"), reply=lambda message: "ok")
    "".join(session.ask("First question"))
    kept = session.journal.last_exchange

    mark = session.turn_mark()
    draft = session.ask("Second qu")
    next(draft)
    draft.close()
    session.retract(mark)  # the user went on speaking
    log, memory = session.journal.log, session.journal.memory
    assert [e.prompt for e in log.exchanges(session.journal.conversation_id)] == ["First question"]
    assert [e.id for e in memory.episodes(0)] == [kept] and len(session.conversation.messages) == 2

    session.retract(session.turn_mark())  # a draft whose reply never started takes nothing with it
    assert [e.id for e in memory.episodes(0)] == [kept] and session.journal.last_exchange == kept


def test_a_broken_log_costs_the_log_not_the_chat(tmp_path):
    said = []
    journal = _journal(tmp_path / "tantra.db")
    journal._say = said.append
    session = _session(journal, reply=lambda message: "still here")
    journal.log.db.connection.close()  # as if the disk went away
    assert "".join(session.ask("Are you there?")) == "still here"
    assert "".join(session.ask("And now?")) == "still here"
    assert [line.split(":")[0] for line in said] == ["no memory", "not logging"]  # each said once
    assert journal.log is None and journal.memory is None


def test_fts_queries_are_words_not_syntax():
    from core.chat_log import fts_query

    assert fts_query('NEAR(a b) OR "x* -y') == '"near" OR "a" OR "b" OR "or" OR "x" OR "y"'
    assert fts_query("?!") == ""


# ---- the real embedder and the real chat, in separate processes ------------------------------------------------------


@pytest.mark.slow
def test_minilm_recalls_a_fact_for_its_question_and_not_for_unrelated_ones(settings, tmp_path):
    from config.model_config import MODEL_CONFIG
    from core.model_loader import ModelLoader

    embedder = ModelLoader(MODEL_CONFIG, settings).load_embedder()
    facts = {
        "My sister's name is Zanzibar and she lives in Lisbon.": "What is my sister called?",
        "I parked the car on level 3 of the airport garage.": "Where did I leave my car?",
        "My dentist appointment is on Friday at 4pm.": "When do I see the dentist?",
        "The wifi password at the cabin is moonlight42.": "what's the cabin wifi password",
        "I'm allergic to peanuts.": "Can I eat satay sauce given my allergy?",
    }
    unrelated = ["Write a haiku about spring.", "How far away is the moon?", "Translate 'good morning' to French."]
    session = _session(_journal(tmp_path / "tantra.db", embedder), reply=lambda message: "Got it.")
    for fact in facts:
        "".join(session.ask(fact))
        session.command("/clear")
    for fact, question in facts.items():
        assert [r.exchange.prompt for r in session.journal.recall(question)][:1] == [fact], question
    for question in unrelated:
        assert session.journal.recall(question) == [], question


@pytest.mark.slow
def test_a_later_process_recalls_continues_and_finds_what_an_earlier_one_was_told(tmp_path):
    env = {"TANTRA_DATA_DIR": str(tmp_path), **MEMORY_ON}
    told = run_tantra("chat", "-t", "0", "-n", "12", "--json", "Remember this: my cat is called Pumpernickel.",
                      env=env)  # fmt: skip
    assert told.returncode == 0, told.stderr.decode()
    first = json.loads(told.stdout)

    asked = run_tantra("chat", "-t", "0", "-n", "12", "--json", "What is my cat called?", env=env)
    assert asked.returncode == 0, asked.stderr.decode()
    second = json.loads(asked.stdout)
    assert second["conversation_id"] != first["conversation_id"]
    assert [r["prompt"] for r in second["recalled"]] == ["Remember this: my cat is called Pumpernickel."]

    alone = run_tantra("chat", "--no-log", "--no-memory", "-t", "0", "-n", "4", "--json", "Say it again.", env=env)
    more = run_tantra("chat", "-c", "--no-memory", "-t", "0", "-n", "4", "--json", "Say it again.", env=env)
    assert alone.returncode == more.returncode == 0
    assert json.loads(more.stdout)["conversation_id"] == second["conversation_id"]
    # The earlier turn (question and reply) is read again with the new one.
    assert json.loads(more.stdout)["prompt_tokens"] > json.loads(alone.stdout)["prompt_tokens"] + 10

    shown = run_tantra("logs", "--cid", first["conversation_id"][:10], env=env)
    assert "Pumpernickel" in shown.stdout.decode() and shown.returncode == 0
    found = json.loads(run_tantra("logs", "-q", "pumpernickel", "--json", env=env).stdout)
    assert found[0]["conversation_id"] == first["conversation_id"]
    listed = json.loads(run_tantra("logs", "--json", env=env).stdout)
    assert [c["turns"] for c in listed] == [2, 1]  # the --no-log chat is not there


def test_a_question_asked_again_and_again_is_recalled_once(tmp_path):
    session = _session(_journal(tmp_path / "tantra.db"), reply=lambda message: "I do not know.")
    for _ in range(3):
        "".join(session.ask("What is my sister called?"))
        session.command("/clear")
    "".join(session.ask("My sister is called Zanzibar."))
    session.command("/clear")
    "".join(session.ask("What is my sister called?"))
    assert sorted(r.exchange.prompt for r in session.journal.recalled) == [
        "My sister is called Zanzibar.", "What is my sister called?"]
