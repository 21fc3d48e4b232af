"""Where synthesized audio goes: a sound device, an audio file, or a WAV stream on a pipe. Chunks are written as
they come, so nothing waits for (or holds) the whole text's audio."""

from __future__ import annotations

import struct
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from config.errors import BadInput
from core.runtime.sound_cards import find_device, portaudio
from core.voice.speaker import AudioChunk

FILE_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
                ".mp3": ("MP3", "MPEG_LAYER_III")}  # fmt: skip


class AudioPlayer:
    """Plays chunks on a sound device as they arrive; ``stop()`` (from any thread) silences it at once."""

    def __init__(self, device: str | None = None) -> None:
        """``device``: an index or part of a name, matched as the voice loop matches it (``core.runtime.sound_cards``);
        ``NoSoundDevice`` where there is none to play on."""
        self.sounddevice = portaudio()
        self.device = find_device(device, "output")
        self._stopped = threading.Event()
        self._stream = None

    def play(self, chunks: Iterable[AudioChunk]) -> float:
        """Play until the chunks end or ``stop()``; returns the seconds played."""
        played, finished = 0.0, False
        try:
            for chunk in chunks:
                if self._stopped.is_set():
                    break
                if self._stream is None:
                    self._stream = self.sounddevice.OutputStream(
                        samplerate=chunk.sample_rate, channels=1, dtype="float32", device=self.device.index
                    )
                    self._stream.start()
                self._stream.write(chunk.samples.reshape(-1, 1))
                played += chunk.seconds
            finished = not self._stopped.is_set()
        finally:
            if self._stream is not None:
                if finished:
                    self._stream.stop()  # let the last samples play out
                else:
                    self._stream.abort()  # stopped, Ctrl-C or an error: drop what is queued, silence now
                self._stream.close()
                self._stream = None
        return played

    def stop(self) -> None:
        self._stopped.set()
        if self._stream is not None:
            self._stream.abort()


def write_file(chunks: Iterator[AudioChunk], path: Path) -> float:
    """Write chunks to an audio file whose format follows the extension; returns its seconds of audio."""
    import soundfile

    kind = FILE_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise BadInput(f"{path}: unknown audio format; use one of {', '.join(FILE_FORMATS)}")
    first = next(chunks)  # synthesis errors (nothing to say, ...) come before a file is created
    try:
        handle = soundfile.SoundFile(path, "w", samplerate=first.sample_rate, channels=1, format=kind[0],
                                     subtype=kind[1])  # fmt: skip
    except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
        raise BadInput(f"cannot write {path}: {error}") from None
    seconds = 0.0
    with handle:
        for chunk in _chain(first, chunks):
            handle.write(chunk.samples)
            seconds += chunk.seconds
    return seconds


def _chain(first: AudioChunk, rest: Iterator[AudioChunk]) -> Iterator[AudioChunk]:
    yield first
    yield from rest


_UNKNOWN_LENGTH = 0xFFFFFFFF  # what streaming WAV writers put in the size fields when the end is not known yet


def _wav_header(sample_rate: int, data_bytes: int) -> bytes:
    riff_size = min(36 + data_bytes, _UNKNOWN_LENGTH)
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16
    ) + b"data" + struct.pack("<I", min(data_bytes, _UNKNOWN_LENGTH))  # fmt: skip


def wav_header_streaming(sample_rate: int) -> bytes:
    """The header of a 16-bit mono WAV whose length is not known yet (a stream)."""
    return _wav_header(sample_rate, _UNKNOWN_LENGTH)


def write_wav_stream(chunks: Iterator[AudioChunk], out: BinaryIO) -> float:
    """A 16-bit WAV written chunk by chunk (to stdout). The header comes first, before the length is known: on a
    pipe its sizes say "unknown", as streaming writers do; in a file it is rewritten with the real sizes at the end."""
    first = next(chunks)
    out.write(wav_header_streaming(first.sample_rate))
    data_bytes, seconds = 0, 0.0
    for chunk in _chain(first, chunks):
        pcm = (np.clip(chunk.samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        out.write(pcm)
        out.flush()
        data_bytes += len(pcm)
        seconds += chunk.seconds
    if out.seekable():
        out.seek(0)
        out.write(_wav_header(first.sample_rate, data_bytes))
        out.flush()
    return seconds


def stdout_binary() -> BinaryIO:
    if sys.stdout.isatty():
        raise BadInput("refusing to write audio to a terminal: redirect it (> out.wav) or pipe it (| aplay)")
    return sys.stdout.buffer
