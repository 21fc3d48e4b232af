"""``tantra logs`` and ``tantra memory`` on a log written beforehand (in-process: no model is involved)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.conftest import MEMORY_ON, run_tantra
from tests.fakes import FakeEmbedder


@pytest.fixture
def data_dir(tmp_path):
    """A log of three conversations: a fact, a question about Paris (two turns), a fact and a request whose reply
    was cut. Memory keeps the two facts."""
    from core.memory.chat_log import ChatLog, ExchangeStart, ImageRecord
    from core.memory.episodes import EpisodicMemory
    from core.memory.log_db import open_database

    database = open_database(tmp_path / "tantra.db")
    log, memory = ChatLog(database), EpisodicMemory(database, FakeEmbedder)
    turns = [
        ("c1", "My sister's name is Zanzibar.", "Nice name!", False, ()),
        ("c2", "What is the capital of France?", "Paris.", False, ()),
        ("c2", "And what river runs through it?", "The Seine runs through Paris.", False,
         (ImageRecord("/tmp/seine.png", "0" * 64, "[Image seine.png: a river]"),)),
        ("c3", "I like long stories about dragons. Tell me a long story", "Once upon a", True, ()),
    ]  # fmt: skip
    for conversation, prompt, reply, cut, images in turns:
        exchange = log.start(f"01kconversation{conversation}", ExchangeStart("fake-lm", True, None, {}, prompt,
                                                                             images=images))  # fmt: skip
        log.finish(exchange, reply, interrupted=cut)
        memory.remember(log.get([exchange])[0])
    database.close()
    return tmp_path


def tantra(data_dir, *args, input: str | None = None):
    from tantra_cli.app import app

    result = CliRunner().invoke(app, list(args), input=input, env={"TANTRA_DATA_DIR": str(data_dir), **MEMORY_ON})
    return result


def test_logs_lists_the_latest_conversations_first(data_dir):
    listed = tantra(data_dir, "logs")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["01kconversationc3", "01kconversationc2", "01kconversationc1"]
    assert "2 turns" in lines[1] and lines[1].endswith("What is the capital of France?")
    assert len(tantra(data_dir, "logs", "-n", "1").stdout.splitlines()) == 1
    documents = json.loads(tantra(data_dir, "logs", "--json").stdout)
    assert [d["turns"] for d in documents] == [1, 2, 1]
    assert documents[0]["first_prompt"] == "I like long stories about dragons. Tell me a long story"


def test_logs_shows_one_conversation(data_dir):
    latest = tantra(data_dir, "logs", "-c").stdout
    assert "> I like long stories about dragons. Tell me a long story" in latest
    assert "Once upon a" in latest and "interrupted" in latest
    shown = tantra(data_dir, "logs", "--cid", "01kconversationc2").stdout
    assert shown.index("capital of France") < shown.index("Paris.") < shown.index("what river")
    assert "> [Image seine.png: a river]" in shown  # what the model read in place of the image
    exchanges = json.loads(tantra(data_dir, "logs", "--cid", "01kconversationc2", "--json").stdout)
    assert [e["reply"] for e in exchanges] == ["Paris.", "The Seine runs through Paris."]
    assert exchanges[1]["images"] == [{"path": "/tmp/seine.png", "sha256": "0" * 64,
                                       "facts": "[Image seine.png: a river]"}]  # fmt: skip


def test_logs_refuses_unknown_and_ambiguous_ids_in_one_line(data_dir):
    unknown = run_tantra("logs", "--cid", "zzz", env={"TANTRA_DATA_DIR": str(data_dir)})
    assert unknown.returncode == 1 and unknown.stderr.decode().count("\n") == 1
    assert "no conversation 'zzz'" in unknown.stderr.decode() and "Traceback" not in unknown.stderr.decode()
    ambiguous = tantra(data_dir, "logs", "--cid", "01kconv")
    assert ambiguous.exit_code == 1 and "more than one" in ambiguous.stderr


def test_logs_search_ranks_by_bm25_and_takes_any_text(data_dir):
    hits = json.loads(tantra(data_dir, "logs", "-q", "Paris", "--json").stdout)
    # The reply that says Paris once in nine words ranks below the one that is only "Paris."
    assert [h["reply"] for h in hits] == ["Paris.", "The Seine runs through Paris."]
    assert hits[0]["rank"] > hits[1]["rank"] > 0
    assert "Zanzibar" in tantra(data_dir, "logs", "-q", "zanzibar").stdout
    odd = tantra(data_dir, "logs", "-q", 'NEAR("sister" *')  # FTS5 syntax is read as words
    assert odd.exit_code == 0 and "Zanzibar" in odd.stdout
    assert tantra(data_dir, "logs", "-q", "river", "--cid", "01kconversationc1", "--json").stdout.strip() == "[]"


def test_logs_path_status_and_switching_off(data_dir):
    from config.settings import load_settings
    from core.memory.journal import open_journal

    assert tantra(data_dir, "logs", "path").stdout.strip() == str(data_dir / "tantra.db")
    status = tantra(data_dir, "logs", "status").stdout
    assert "logging is on" in status and "3 conversations, 4 exchanges, 2 episodes" in status

    assert tantra(data_dir, "logs", "off").exit_code == 0
    assert "logging is off" in tantra(data_dir, "logs", "status").stdout
    settings = load_settings(environ={"TANTRA_DATA_DIR": str(data_dir), **MEMORY_ON})
    assert open_journal(settings, FakeEmbedder).log is None  # chats write nothing now
    assert open_journal(settings, FakeEmbedder).memory is not None  # but still recall
    tantra(data_dir, "logs", "on")
    assert open_journal(settings, FakeEmbedder).log is not None


def test_memory_list_shows_the_facts_kept_forget_and_clear(data_dir):
    listed = tantra(data_dir, "memory", "list")
    lines = listed.stdout.splitlines()
    assert listed.exit_code == 0 and [line.split()[0] for line in lines] == ["#4", "#1"]  # questions keep nothing
    assert lines[0].endswith("I like long stories about dragons.")
    assert lines[1].endswith("My sister's name is Zanzibar.")
    assert "Once upon a" not in listed.stdout and "Tell me" not in listed.stdout  # neither the reply nor the request
    assert "2 episodes kept (2 facts)" in listed.stderr
    documents = json.loads(tantra(data_dir, "memory", "list", "--json").stdout)
    assert [(d["episode"], d["facts"]) for d in documents] == [(4, ["I like long stories about dragons."]),
                                                               (1, ["My sister's name is Zanzibar."])]  # fmt: skip
    assert tantra(data_dir, "memory", "forget", "4").stdout.strip() == "forgot episode #4"
    again = tantra(data_dir, "memory", "forget", "4")
    assert again.exit_code == 1 and "no episode #4" in again.stderr
    question = tantra(data_dir, "memory", "forget", "2")  # logged, but a question keeps no episode
    assert question.exit_code == 1 and "no episode #2" in question.stderr
    assert [d["episode"] for d in json.loads(tantra(data_dir, "memory", "list", "--json").stdout)] == [1]
    refused = tantra(data_dir, "memory", "clear")  # no terminal to ask at
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    assert tantra(data_dir, "memory", "clear", "--yes").stdout.strip() == "forgot 1 episodes"
    assert "3 conversations, 4 exchanges, 0 episodes" in tantra(data_dir, "logs", "status").stdout  # the log stays


def test_memory_search_shows_the_facts_that_match(data_dir, monkeypatch):
    monkeypatch.setattr("core.model_loader.ModelLoader.load_embedder", lambda self: FakeEmbedder())
    found = tantra(data_dir, "memory", "search", "What is my sister's name?")
    assert found.exit_code == 0 and found.stdout.startswith("#1 ") and found.stdout.rstrip().endswith("Zanzibar.")
    [hit] = json.loads(tantra(data_dir, "memory", "search", "my sister's name", "--json").stdout)
    assert hit["episode"] == 1 and hit["facts"] == ["My sister's name is Zanzibar."] and hit["score"] > 0.33
    nothing = tantra(data_dir, "memory", "search", "capital of France")  # asked, never told
    assert nothing.exit_code == 0 and nothing.stdout == "" and "nothing recalled" in nothing.stderr


def test_chat_refuses_a_conversation_it_cannot_continue_before_loading_anything(data_dir, tmp_path_factory):
    unknown = run_tantra("chat", "--cid", "nope", "hello", env={"TANTRA_DATA_DIR": str(data_dir)})
    assert unknown.returncode == 1 and "no conversation 'nope'" in unknown.stderr.decode()
    empty = run_tantra("chat", "-c", "hello", env={"TANTRA_DATA_DIR": str(tmp_path_factory.mktemp("empty"))})
    assert empty.returncode == 1 and "no conversation to continue" in empty.stderr.decode()
