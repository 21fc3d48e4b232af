"""The interactive ``tantra chat``: a prompt-toolkit line editor with history and completion, replies through rich."""

from __future__ import annotations

import math
import re
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape

from config.errors import TantraError
from core.language.chat_commands import COMMANDS, SETTINGS, Ask
from core.language.chat_session import ChatSession

# Enough to be worth redrawing: fenced code, headings, lists, emphasis, inline code, tables.
_MARKDOWN = re.compile(r"```|^#{1,6} |^\s*([-*+]|\d+\.) |\*\*[^*]+\*\*|`[^`\n]+`|^\|.*\|$", re.MULTILINE)


class SlashCompleter(Completer):
    """Commands after a leading ``/``, setting names after ``/set``, paths after ``/save``, ``/load``, ``/image``."""

    def __init__(self) -> None:
        self.paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, complete_event) -> Iterable[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/"):
            return
        if " " not in text:
            for usage, what in COMMANDS:
                command = usage.split()[0]
                if command.startswith(text):
                    yield Completion(command, -len(text), display_meta=what)
            return
        command, _, rest = text.partition(" ")
        if command == "/set" and " " not in rest:
            for name in SETTINGS:
                if name.startswith(rest):
                    yield Completion(name, -len(rest))
        elif command in ("/save", "/load", "/image"):
            yield from self.paths.get_completions(Document(rest, len(rest)), complete_event)


def _key_bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("escape", "enter")  # Alt-Enter (or Esc, Enter): a new line instead of sending
    def _newline(event) -> None:
        event.current_buffer.insert_text("\n")

    return bindings


class ReplyPrinter:
    """Tokens go to the terminal as they come; a finished reply that holds Markdown is redrawn rendered."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def stream(self, pieces: Iterator[str]) -> str:
        text = ""
        try:
            for piece in pieces:
                self.console.out(piece, end="", highlight=False)
                text += piece
        finally:
            self.console.file.flush()
        return text

    def _rows(self, text: str) -> int:
        width = self.console.width
        return sum(max(1, math.ceil(len(line) / width)) for line in text.split("\n"))

    def finish(self, text: str) -> None:
        rows = self._rows(text)
        # Only what is still on screen can be redrawn; a longer reply stays as it streamed.
        if text.strip() and _MARKDOWN.search(text) and rows < self.console.height - 1:
            self.console.file.write(f"\r\x1b[{rows - 1}A\x1b[J" if rows > 1 else "\r\x1b[J")
            self.console.print(Markdown(text.strip()))
        else:
            self.console.out("")


def run_repl(session: ChatSession, history_file: Path, stream: bool = True, loader=None, request=None,
             voice: bool = False, images: list[Path] = ()) -> None:  # fmt: skip
    """Read, answer, repeat, until Ctrl-D or /quit. Ctrl-C stops a reply (or clears the line) and keeps going.

    ``loader`` lets ``/voice on`` load Whisper and the voice at any time, on the devices of ``request`` (a
    ``core.talk.start.VoiceRequest``); ``voice`` starts with the microphone on. ``images`` go with the first turn."""
    from contextlib import ExitStack

    from prompt_toolkit.patch_stdout import patch_stdout

    from core.talk.start import VoiceRequest
    from tantra_cli.repl_voice import ReplVoice

    console = Console(highlight=False)
    errors = Console(stderr=True, highlight=False)
    history_file.parent.mkdir(parents=True, exist_ok=True)
    prompt = PromptSession(
        history=FileHistory(str(history_file)),
        completer=SlashCompleter(),
        complete_while_typing=True,
        key_bindings=_key_bindings(),
        prompt_continuation="... ",
    )
    printer = ReplyPrinter(console)
    session.on_image = lambda note: errors.print(note, style="dim", markup=False)  # as `ollama run` says "Added image"
    where = escape(f" (on the {session.model.where})") if session.model.where else ""  # an IPv6 URL has brackets
    console.print(f"[bold]{session.model_name}[/bold]{where}: type a message; /help for commands, Alt-Enter for a "
                  "new line, Ctrl-C stops a reply, Ctrl-D leaves.", highlight=False)  # fmt: skip
    talk = ReplVoice(session, loader, request or VoiceRequest(), console, errors) if loader is not None else None
    screen = ExitStack()  # while the voice is on, turns print above the prompt, which stays at the bottom

    def switch_voice(on: bool) -> str:
        if talk is None:
            raise TantraError("the voice is not available in this chat")
        if not on:
            message = talk.stop()
            screen.close()
            return message
        message = talk.start(images)
        if talk.on:
            # Above a live prompt stdout is prompt_toolkit's proxy, whose width rich cannot ask: tell it.
            console.width = errors.width = shutil.get_terminal_size().columns
            screen.enter_context(patch_stdout(raw=True))
        return message

    if voice:
        console.print(switch_voice(True), markup=False, highlight=False)
    if images and not (talk is not None and talk.on):
        for path in images:
            session.attach(session.image_record(path))
    if talk is not None:
        prompt.default_buffer.on_text_changed += lambda _: talk.key_pressed()
    try:
        _read_eval_print(session, prompt, console, errors, printer, stream, talk, switch_voice)
    finally:
        if talk is not None and talk.on:
            talk.stop()
        screen.close()


def _read_eval_print(session, prompt, console, errors, printer, stream, talk, switch_voice) -> None:
    while True:
        try:
            line = prompt.prompt(">>> ")
        except KeyboardInterrupt:
            if talk is not None and talk.interrupt():
                errors.print("[dim](stopped)[/dim]")
            continue  # a cleared line, as in a shell
        except EOFError:
            break
        if not line.strip():
            if talk is not None and talk.on and talk.request.push_to_talk:
                errors.print(talk.push_to_talk(), style="dim", markup=False)
            continue
        try:
            if line.strip() in ("/voice", "/voice on", "/voice off"):
                console.print(switch_voice(line.strip() != "/voice off"), markup=False, highlight=False)
                continue
            if line.lstrip().startswith("/"):
                shown = session.command(line.strip())
                if not isinstance(shown, Ask):
                    console.print(shown, markup=False, highlight=False)
                    continue
                errors.print(shown.note, style="dim", markup=False, highlight=False)  # as for a path in a message
                line = shown.text  # "/image PATH QUESTION": the question is asked now, as if typed
            if talk is not None and talk.on:
                talk.typed(line)  # answered, and spoken, in turn with what is said
                continue
            if stream:
                printer.finish(printer.stream(session.ask(line)))
            else:
                with console.status("thinking"):
                    text = "".join(session.ask(line))
                console.print(Markdown(text.strip()))
        except KeyboardInterrupt:
            console.out("")
            errors.print("[dim](stopped)[/dim]")
        except EOFError:
            break
        except TantraError as error:
            errors.print(f"error: {error}", markup=False, highlight=False)
