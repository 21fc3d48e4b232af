"""``tantra transcribe --live``: captions from the microphone (or ``--mic-file``, a FIFO too) as you speak.

At a terminal the line being spoken is shown and replaced in place, and stays once final; in a pipe only final
lines are written, one per line, as each is said. ``-f srt|vtt`` writes cues with their true times (seconds since
listening began), to stdout or to ``-o FILE`` (then the terminal still shows the text). Ctrl-C ends the line being
spoken, writes it, and exits 0.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TextIO

from config.errors import BadInput
from core.hearing.transcript_formats import timestamp
from core.runtime.status import say

LIVE_FORMATS = ("txt", "srt", "vtt")


class CaptionWriter:
    """Captions to a stream in one format; partial lines only where ``show_partial`` (a terminal's txt)."""

    def __init__(self, out: TextIO, fmt: str, show_partial: bool) -> None:
        self.out, self.fmt, self.show_partial = out, fmt, show_partial
        self.cues = 0
        self._partial_shown = False
        if fmt == "vtt":
            self._write("WEBVTT\n\n")

    def __call__(self, caption) -> None:
        if not caption.final:
            if self.show_partial:
                width = shutil.get_terminal_size((80, 24)).columns - 1
                text = caption.text if len(caption.text) <= width else "…" + caption.text[-(width - 1) :]
                self._write(f"\r\033[K{text}")  # the line so far, over what was there
                self._partial_shown = True
            return
        self.cues += 1
        clear = "\r\033[K" if self._partial_shown else ""
        self._partial_shown = False
        if self.fmt == "srt":
            start, end = timestamp(caption.start, ",", True), timestamp(caption.end, ",", True)
            self._write(f"{self.cues}\n{start} --> {end}\n{_cue(caption.text)}\n\n")
        elif self.fmt == "vtt":
            self._write(f"{timestamp(caption.start)} --> {timestamp(caption.end)}\n{_cue(caption.text)}\n\n")
        else:
            self._write(f"{clear}{caption.text}\n")

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()  # a caption is for now: a pipe reader sees each line as it is said


def _cue(text: str) -> str:
    return text.replace("-->", "->")  # it would end the cue's timing line for srt and vtt readers


def check_live(inputs: list[str], fmt: str, output: Path | None, word_timestamps: bool) -> None:
    """The live options, refused in one line before any model loads."""
    if inputs:
        raise BadInput("--live captions the microphone (or --mic-file); give it no files")
    if fmt not in LIVE_FORMATS:
        raise BadInput(f"--live writes txt, srt or vtt, not {fmt}")
    if word_timestamps:
        raise BadInput("--live times whole lines; --word-timestamps is for files")
    if output is not None and output.is_dir():
        raise BadInput(f"-o {output}: with --live, -o names the captions file, not a directory")


def run_live(load_whisper, options, fmt: str, output: Path | None, mic_file: Path | None, input_device: str | None,
             verbose: bool = False) -> int:  # fmt: skip
    """Caption until the input ends or Ctrl-C; how many final lines were written. The input is opened (and a bad
    one refused) before Whisper loads."""
    from core.hearing.transcriber import spoken_text
    from core.talk.live_captions import LiveCaptioner
    from core.talk.vad import SileroVad

    link = _open_link(mic_file, input_device)
    if verbose:  # the captions' time 0 (a line's cue times count from here)
        say(f"listening to {mic_file or 'the microphone'}; speech to text is loading")
    try:
        whisper = load_whisper()
        partial_options = type(options)(language=options.language, task=options.task, beam_size=1)

        def hear(audio, final: bool) -> str:
            return spoken_text(whisper.transcribe_block(audio, options if final else partial_options)[1])

        captioner = LiveCaptioner(hear, SileroVad(), clock=link.clock)
        writers = _writers(fmt, output)
        lags = []  # how long after its last voiced sound each final line was written
        try:
            backlog = ()
            ctrl_c = _CtrlCClock(link.clock)
            try:
                for caption in captioner.captions(link.frames()):
                    for write in writers:
                        write(caption)
                    if caption.final:
                        lags.append(link.clock() - captioner.origin - caption.end)
            except KeyboardInterrupt:  # what was said until then is still written, below
                pressed = ctrl_c.at or link.clock()
                backlog = itertools.takewhile(lambda frame: frame.captured_at <= pressed, link.frames())
            finally:
                ctrl_c.close()
            for caption in captioner.flush(backlog):
                for write in writers:
                    write(caption)
        finally:
            for writer in writers:
                if writer.out is not sys.stdout:
                    writer.out.close()
        if lags and verbose:
            say(f"{len(lags)} final line(s), written {', '.join(f'{lag:.2f}' for lag in lags)} s after their speech")
        return writers[0].cues
    finally:
        link.close()


class _CtrlCClock:
    """When Ctrl-C came, on ``clock``. Python raises KeyboardInterrupt only once the main thread is back from a C
    call, such as a transcription of a second or more on a busy CPU; the signal's byte on a wakeup socket (written
    by Python's C handler at once) wakes a thread of its own here instead."""

    def __init__(self, clock) -> None:
        self.at: float | None = None
        self._read, self._write = socket.socketpair()
        self._write.setblocking(False)
        self._previous = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        threading.Thread(target=self._wait, args=(clock,), name="tantra-ctrl-c", daemon=True).start()

    def _wait(self, clock) -> None:
        try:
            while self.at is None:
                byte = self._read.recv(1)
                if not byte:
                    return
                if byte[0] == signal.SIGINT:
                    self.at = clock()
        except OSError:  # closed
            return

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous)
        self._write.close()
        self._read.close()


def _open_link(mic_file: Path | None, input_device: str | None):
    if mic_file is not None:
        from core.talk.stand_in_audio import StandInAudio, open_mic_file

        return StandInAudio(open_mic_file(mic_file), 16000)
    from core.talk.sound_devices import DeviceAudio

    return DeviceAudio(input_device, speaker=False)


def _writers(fmt: str, output: Path | None) -> list[CaptionWriter]:
    terminal = sys.stdout.isatty()
    if output is None:
        return [CaptionWriter(sys.stdout, fmt, show_partial=terminal and fmt == "txt")]
    try:
        file = output.open("w", encoding="utf-8")
    except OSError as failure:
        raise BadInput(f"-o {output}: cannot write it ({failure.strerror})") from None
    return [CaptionWriter(file, fmt, show_partial=False), CaptionWriter(sys.stdout, "txt", show_partial=terminal)]
