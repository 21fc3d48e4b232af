"""``/image PATH [QUESTION]`` in the chat and the REPL, with the fake model and a fake describer: fast."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from config.errors import BadInput
from tests.fakes import fake_language_model


class Describer:
    def note(self, path):
        return f"[Image {path.name}: red]"


@pytest.fixture
def chat():
    from core.language.chat_session import ChatSession
    from core.language.conversation import SamplingOptions

    loaded = fake_language_model()  # it answers "You said: WHAT IT READ."
    return ChatSession(loaded["chat"], SamplingOptions(max_tokens=400), describer=Describer())


def told_about(chat, name: str) -> bool:
    """Whether the model was told what image ``name`` shows (where and in what words is ``core.language.grounding``'s
    business)."""
    return any(name in m["content"] and "red" in m["content"] for m in chat.conversation.messages)


@pytest.fixture
def photos(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths as a person types them: relative to where the chat runs
    for name in ("cat.png", "my photo.jpg", "my", "notes.txt"):
        (tmp_path / name).write_bytes(b"not read by the fake describer")
    return tmp_path


def test_image_alone_goes_with_the_next_message(chat, photos):
    from core.language.chat_commands import Ask

    shown = chat.command("/image cat.png")
    assert not isinstance(shown, Ask) and shown == "[Image cat.png: red] goes with your next message"
    assert chat.pending_images and not told_about(chat, "cat.png")
    "".join(chat.ask("What is it?"))
    assert chat.pending_images == [] and told_about(chat, "cat.png")


@pytest.mark.parametrize(
    ("line", "name", "question"),
    [
        ("/image cat.png What is it?", "cat.png", "What is it?"),
        ('/image "my photo.jpg" what is it', "my photo.jpg", "what is it"),
        ("/image 'my photo.jpg'   what is it", "my photo.jpg", "what is it"),
        ("/image my photo.jpg what is it", "my photo.jpg", "what is it"),  # the longest start that is a file
        ("/image my photo.jpg", "my photo.jpg", ""),
        ('/image "my photo.jpg"', "my photo.jpg", ""),
        ("/image my photo.jpg\nwhat is it,\nin two lines?", "my photo.jpg", "what is it,\nin two lines?"),
        ("/image my notes", "my", "notes"),  # "my" is a file, "my notes" is not
    ],
)  # fmt: skip
def test_image_with_a_question_asks_it_now(chat, photos, line, name, question):
    from core.language.chat_commands import Ask

    shown = chat.command(line)
    assert [image.path for image in chat.pending_images] == [str(photos / name)]
    if question:
        assert shown == Ask(question, f"[Image {name}: red]")
    else:
        assert shown == f"[Image {name}: red] goes with your next message"


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("/image", "give an image: /image PATH [QUESTION]"),
        ("/image dog.png what is it", "dog.png: no such file"),
        ("/image your dog.png what is it", "your dog.png: no such file"),  # what looks like the image is named
        ('/image "my dog.png" what', "my dog.png: no such file"),
        ("/image nowhere what is it", "nowhere: no such file"),
    ],
)  # fmt: skip
def test_a_missing_image_is_named_in_one_line(chat, photos, line, problem):
    with pytest.raises(BadInput) as raised:
        chat.command(line)
    assert str(raised.value).replace(str(photos) + "/", "") == problem
    assert chat.pending_images == []


def test_without_a_describer_images_are_not_available(chat, photos):
    chat.describer = None
    with pytest.raises(BadInput, match="images are not available"):
        chat.command("/image cat.png what is it")


# ---- the REPL -------------------------------------------------------------------------------------------------------


class Typed:
    """prompt_toolkit's PromptSession as the REPL uses it: these lines, then Ctrl-D."""

    def __init__(self, *lines: str) -> None:
        self.lines = list(lines)

    def prompt(self, _: str) -> str:
        if not self.lines:
            raise EOFError
        return self.lines.pop(0)


class VoiceOn:
    """``ReplVoice`` while the voice is on: typed turns go to the conversation thread."""

    on = True

    def __init__(self) -> None:
        self.turns: list[str] = []

    def typed(self, text: str) -> None:
        self.turns.append(text)


def _repl(chat, *lines: str, stream: bool = True, talk=None) -> tuple[str, str]:
    from tantra_cli.repl import ReplyPrinter, _read_eval_print

    console = Console(file=io.StringIO(), width=200, highlight=False)
    errors = Console(file=io.StringIO(), width=200, highlight=False)
    _read_eval_print(chat, Typed(*lines), console, errors, ReplyPrinter(console), stream, talk, None)
    return console.file.getvalue(), errors.file.getvalue()


@pytest.mark.parametrize("stream", [True, False])
def test_the_repl_asks_an_image_question_at_once(chat, photos, stream):
    shown, said = _repl(chat, "/image my photo.jpg what is it?", "/quit", stream=stream)
    assert "[Image my photo.jpg: red]" in said  # what the model was told, as for a path in a message
    assert "You said: what is it?." in shown  # the reply streamed (or was drawn) at once
    assert chat.conversation.messages[-1] == {"role": "assistant", "content": "You said: what is it?."}
    assert chat.pending_images == [] and told_about(chat, "my photo.jpg")


def test_the_repl_keeps_an_image_alone_for_the_next_message(chat, photos):
    shown, _ = _repl(chat, "/image cat.png", "Which colour?")
    assert "[Image cat.png: red] goes with your next message" in shown and "You said: Which colour?." in shown
    assert chat.pending_images == [] and told_about(chat, "cat.png")


def test_the_repl_names_a_missing_image_and_asks_nothing(chat, photos):
    shown, said = _repl(chat, "/image dog.png what is it", "/quit")
    assert said.strip() == "error: dog.png: no such file" and "You said" not in shown
    assert chat.conversation.messages == []


def test_with_the_voice_on_the_question_is_a_typed_turn(chat, photos):
    talk = VoiceOn()
    shown, said = _repl(chat, "/image cat.png what is it?", talk=talk)
    assert talk.turns == ["what is it?"] and "You said" not in shown  # the conversation thread answers, aloud
    assert [image.facts for image in chat.pending_images] == ["[Image cat.png: red]"]  # for that turn's ask
    assert "[Image cat.png: red]" in said
