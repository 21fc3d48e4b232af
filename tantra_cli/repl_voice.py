"""The microphone in the interactive REPL: ``tantra chat --voice`` and ``/voice on|off``.

One conversation thread owns the chat while the voice is on: spoken turns and typed lines both go through the voice
loop (a typed line is a turn that needs no Whisper), so the two never answer at once, and every reply is spoken.
The prompt stays at the bottom of the screen while turns print above it.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from rich.console import Console

from config.errors import TantraError

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


class ReplVoice:
    """The voice side of one REPL session: started by ``/voice on`` (or ``--voice``), stopped by ``/voice off``."""

    def __init__(self, session, loader, request, console: Console, errors: Console) -> None:
        self.session, self.loader, self.request = session, loader, request
        self.console, self.errors = console, errors
        self.loop = None
        self._thread: threading.Thread | None = None
        self._recording = False
        self._pending = ""  # reply text not yet shown: the end of a sentence still to come
        self._short_answers: str | None = None  # the system prompt /voice on set, to take back at /voice off
        self._typed_system: str | None = None  # the one it replaced

    @property
    def on(self) -> bool:
        return self.loop is not None

    def start(self, images: list[Path] = ()) -> str:
        """Open the devices and listen while the models load; a missing device is one line and the REPL goes on."""
        if self.on:
            return "the voice is already on"
        from core.language.grounding import DEFAULT_SYSTEM
        from core.talk.start import load_roles, open_link, voice_options
        from core.talk.vad import SileroVad
        from core.talk.voice_loop import VOICE_SYSTEM_PROMPT, VoiceLoop

        try:
            options = voice_options(self.request)
            link = open_link(self.request)
        except TantraError as error:
            return f"no voice: {error}; the chat goes on in text"
        self.loop = VoiceLoop(link, SileroVad(), options)
        if self.session.conversation.system in (None, DEFAULT_SYSTEM):  # spoken answers are short; a user's own stays
            self._typed_system = self.session.conversation.system
            self.session.conversation.system = self._short_answers = VOICE_SYSTEM_PROMPT
        self.loop.push_to_talk = self.request.push_to_talk
        for path in images:
            self.loop.attach_image(path, self.session.image_record(path))
        roles = lambda: load_roles(self.loader, lambda: self.session, self.request)  # noqa: E731
        self._thread = threading.Thread(target=self._converse, args=(roles,), name="tantra-converse", daemon=True)
        self._thread.start()
        how = "Enter on an empty line starts and stops a turn" if self.request.push_to_talk else "just speak"
        return f"listening ({how}; Ctrl-C stops a reply, /voice off ends it)"

    def stop(self) -> str:
        if not self.on:
            return "the voice is already off"
        loop, self.loop = self.loop, None
        if self._short_answers is not None and self.session.conversation.system == self._short_answers:
            self.session.conversation.system, self._short_answers = self._typed_system, None
        loop.quit()
        loop.link.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return "the voice is off; type to chat"

    def _converse(self, load) -> None:
        from core.talk.events import Heard, Note, ReplyText, TurnDone

        loop = self.loop
        try:
            for event in loop.run(load):
                if isinstance(event, Note):
                    self.errors.print(event.text, style="dim", markup=False, highlight=False)
                elif isinstance(event, Heard) and not event.typed:
                    self.console.print(f"[bold]you said:[/bold] {event.text}", highlight=False)
                elif isinstance(event, ReplyText):
                    self._show(event.text)
                elif isinstance(event, TurnDone):
                    record = event.record
                    self._show(" (you went on)" if record.went_on else " (interrupted)" if record.interrupted else "",
                               end=True)
        except TantraError as error:
            self.errors.print(f"error: {error}; the voice is off", markup=False, highlight=False)
        if self.loop is loop:  # the input ended by itself (a --mic-file is over, a device is gone)
            self.loop = None
            loop.link.close()
            self.errors.print("the microphone is off; type to chat (/voice on to listen again)", style="dim")

    def _show(self, text: str, end: bool = False) -> None:
        """Reply text a sentence per line: above a live prompt only whole lines can be printed (a partial line is
        drawn over by the prompt), and sentences are also what the voice says, so the two keep pace."""
        self._pending += text
        *done, self._pending = _SENTENCE_END.split(self._pending)
        if end:
            done, self._pending = [*done, self._pending], ""
        for sentence in (part.strip() for part in done):
            if sentence:
                self.console.print(sentence, markup=False, highlight=False)

    def typed(self, text: str) -> None:
        """A typed line while the voice is on: answered (and spoken) by the conversation thread."""
        self.loop.typed(text)

    def key_pressed(self) -> None:
        """Typing stops the voice when the microphone rests while it speaks (the user cannot talk over it)."""
        if self.on and not self.loop.full_duplex and self.loop.replying.is_set():
            self.loop.interrupt()

    def interrupt(self) -> bool:
        """Ctrl-C: stop the reply or the recording; False when there was nothing to stop."""
        return bool(self.on and self.loop.interrupt())

    def push_to_talk(self) -> str:
        """Enter on an empty line under --ptt: start, or stop and send, a turn."""
        self._recording = not self._recording
        self.loop.talk(self._recording)
        return "recording: Enter again to send" if self._recording else "sent"
