"""The chat's slash commands that need no real model (/set, /system, /save, /load, bad commands), on the fake
language model of ``tests/fakes.py``."""

from __future__ import annotations

import json

import pytest

from config.errors import BadInput
from core.language.chat_session import ChatSession
from core.language.conversation import SamplingOptions
from tests.fakes import fake_language_model


def fake_session() -> ChatSession:
    loaded = fake_language_model()
    return ChatSession(loaded["chat"], SamplingOptions(temperature=0, max_tokens=24))


def test_set_save_load_and_bad_commands(tmp_path):
    session = fake_session()
    assert session.command("/set temperature 0.3") == "temperature = 0.3"
    assert session.command("/set top-k 5") == "top_k = 5"
    assert "seed = None" in session.command("/set")
    bad_commands = {"/set temperature hot": "a number", "/set top_p 2": "between", "/set colour 1": "no setting",
                    "/frob": "unknown command", "/load /nonexistent.json": "cannot read"}  # fmt: skip
    for bad, message in bad_commands.items():
        with pytest.raises(BadInput, match=message):
            session.command(bad)
    session.command("/system Answer like a pirate.")
    session.conversation.messages[:] = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Ahoy"}]
    saved = tmp_path / "chat.json"
    session.command(f"/save {saved}")
    assert json.loads(saved.read_text())["system"] == "Answer like a pirate."
    session.command("/clear")
    session.command("/set temperature 0")
    assert session.command(f"/load {saved}") == f"loaded 2 messages from {saved}"
    assert session.conversation.messages[1]["content"] == "Ahoy" and session.options.temperature == 0.3
    (tmp_path / "bad.json").write_text('{"messages": [{"role": "wizard", "content": 1}]}')
    with pytest.raises(BadInput, match="not a conversation"):
        session.command(f"/load {tmp_path / 'bad.json'}")
    with pytest.raises(BadInput, match="empty"):
        next(session.ask("   "))
    before = list(session.conversation.messages)
    with pytest.raises(BadInput, match="context holds 4096: shorten it"):
        next(session.ask("word " * 5000))
    assert session.conversation.messages == before  # the turn that could not be asked is not kept
    session.command("/system none")
    session.command("/set temperature 0")
