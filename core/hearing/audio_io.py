"""Audio in: a file or stdin -> 16 kHz mono float32, streamed in bounded blocks.

soundfile (libsndfile) reads wav, flac, ogg and mp3 without a system ffmpeg; anything else (m4a, mp4, webm, ...)
goes through the ffmpeg binary that ``imageio-ffmpeg`` ships in its wheel. Long recordings are never held whole:
they arrive in blocks of a few minutes, each cut at the quietest moment near its end so no word is split.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from config.errors import BadInput
from core.runtime.files import ffmpeg_exe, ffmpeg_report

SAMPLE_RATE = 16_000  # what Whisper was trained on
BLOCK_SECONDS = 300  # 5 min of 16 kHz float32 = 19 MB: memory stays bounded however long the input
_CUT_SEARCH_SECONDS = 10  # look this far back from a block's end for a quiet place to cut
_READ_SECONDS = 10


@dataclass(frozen=True)
class AudioInfo:
    label: str
    """How to name the input in messages and output files: the path as given, or ``stdin``."""
    path: Path
    duration: float | None
    """Seconds, when the container says; None when only decoding would tell."""
    reader: str
    """soundfile or ffmpeg."""


def _not_audio_reason(path: Path) -> str:
    head = path.open("rb").read(512)
    try:
        head.decode("utf-8")
        return "it looks like text, not audio"
    except UnicodeDecodeError:
        return "not an audio format tantra can read (wav, flac, ogg, mp3, or anything ffmpeg decodes)"


def _check_riff_length(path: Path, label: str) -> None:
    """Refuse a WAV whose data chunk promises more bytes than the file holds (a cut-off recording)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return
        position, byte_rate = 12, 0
        while position + 8 <= size:
            handle.seek(position)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"fmt ":
                fmt = handle.read(16)
                byte_rate = struct.unpack("<I", fmt[8:12])[0] if len(fmt) == 16 else 0
            if chunk_id == b"data":
                available = size - position - 8
                # 0 and 0xFFFFFFFF mean "length unknown" (a stream written live); libsndfile handles those.
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    promised = f"{chunk_size / byte_rate:.2f} s" if byte_rate else f"{chunk_size} bytes"
                    holds = f"{available / byte_rate:.2f} s" if byte_rate else f"{available} bytes"
                    raise BadInput(
                        f"{label}: truncated WAV: its header promises {promised} of audio but the file holds "
                        f"{holds}; the recording or copy is incomplete, export or copy it again"
                    )
                return
            position += 8 + chunk_size + (chunk_size & 1)
    raise BadInput(f"{label}: WAV file without audio data (no data chunk); it is damaged")


def _ffmpeg_probe(path: Path, label: str) -> float | None:
    """Duration in seconds if ffmpeg finds an audio stream in ``path``; a BadInput error otherwise."""
    report, duration = ffmpeg_report(path)
    if " Audio: " not in report:
        if "Stream #" in report:
            raise BadInput(f"{label}: has no audio stream")
        raise BadInput(f"{label}: {_not_audio_reason(path)}")
    return duration


def probe(path: Path, label: str | None = None) -> AudioInfo:
    """Check that ``path`` is usable audio and say how to read it; a one-line BadInput error if not."""
    label = label or str(path)
    if not path.exists():
        raise BadInput(f"{label}: no such file")
    if path.is_dir():
        raise BadInput(f"{label}: is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise BadInput(f"{label}: is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise BadInput(f"{label}: permission denied")
    _check_riff_length(path, label)
    import soundfile

    try:
        with _quiet_native_stderr():
            info = soundfile.info(str(path))
        if info.frames <= 0 or info.samplerate <= 0:
            raise BadInput(f"{label}: contains no audio samples")
        return AudioInfo(label, path, info.frames / info.samplerate, "soundfile")
    except soundfile.LibsndfileError:
        pass  # not a libsndfile format: ffmpeg may still read it
    return AudioInfo(label, path, _ffmpeg_probe(path, label), "ffmpeg")


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Hide what C decoders print straight to file descriptor 2 (libmpg123 warns about garbage it probes);
    tantra reports a failure in its own one line instead."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _soundfile_chunks(info: AudioInfo) -> Iterator[np.ndarray]:
    import soundfile
    import soxr

    try:
        with soundfile.SoundFile(str(info.path)) as sound:
            resampler = None
            if sound.samplerate != SAMPLE_RATE:
                resampler = soxr.ResampleStream(sound.samplerate, SAMPLE_RATE, 1, dtype="float32")
            frames = sound.samplerate * _READ_SECONDS
            while True:
                chunk = sound.read(frames, dtype="float32", always_2d=True)
                last = len(chunk) < frames
                mono = chunk.mean(axis=1, dtype=np.float32)
                yield resampler.resample_chunk(mono, last=last) if resampler else mono
                if last:
                    return
    except soundfile.LibsndfileError as error:
        raise BadInput(f"{info.label}: cannot be decoded ({error}); the file may be damaged") from None


def _ffmpeg_chunks(info: AudioInfo) -> Iterator[np.ndarray]:
    command = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(info.path)]
    command += ["-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "pipe:1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        chunk_bytes = SAMPLE_RATE * 4 * _READ_SECONDS
        while data := process.stdout.read(chunk_bytes):
            yield np.frombuffer(data[: len(data) // 4 * 4], dtype=np.float32)
        if process.wait() != 0:
            error = process.stderr.read().decode(errors="replace").strip().splitlines()
            raise BadInput(f"{info.label}: ffmpeg could not decode it ({error[-1] if error else 'no reason given'})")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()


def _quietest_cut(audio: np.ndarray, search_from: int) -> int:
    """Index of the quietest 100 ms frame at or after ``search_from``: a place where no word is spoken."""
    frame = SAMPLE_RATE // 10
    tail = audio[search_from:]
    usable = len(tail) // frame * frame
    if usable == 0:
        return len(audio)
    energy = np.square(tail[:usable].reshape(-1, frame)).mean(axis=1)
    return search_from + int(np.argmin(energy)) * frame + frame // 2


def _decoded_chunks(info: AudioInfo) -> Iterator[np.ndarray]:
    return _soundfile_chunks(info) if info.reader == "soundfile" else _ffmpeg_chunks(info)


def read_blocks(info: AudioInfo, block_seconds: float = BLOCK_SECONDS) -> Iterator[tuple[float, np.ndarray]]:
    """(start time in seconds, 16 kHz mono float32 samples) for consecutive blocks of the whole input."""
    chunks = _decoded_chunks(info)
    block_size = int(block_seconds * SAMPLE_RATE)
    pending: list[np.ndarray] = []
    pending_size, start = 0, 0
    for chunk in chunks:
        pending.append(chunk)
        pending_size += len(chunk)
        while pending_size >= block_size:
            audio = np.concatenate(pending)
            search_from = max(block_size // 2, block_size - _CUT_SEARCH_SECONDS * SAMPLE_RATE)
            cut = _quietest_cut(audio[:block_size], search_from)
            yield start / SAMPLE_RATE, audio[:cut]
            start += cut
            pending, pending_size = [audio[cut:]], len(audio) - cut
    if pending_size:
        yield start / SAMPLE_RATE, np.concatenate(pending)


def load_audio(info: AudioInfo) -> np.ndarray:
    """The whole input as one 16 kHz mono float32 array (for short clips; long ones use ``read_blocks``)."""
    return np.concatenate(list(_decoded_chunks(info)))


@contextmanager
def open_input(source: str) -> Iterator[AudioInfo]:
    """Probe a path, or spool ``-`` (stdin) to a temporary file first: decoders need to seek."""
    if source != "-":
        yield probe(Path(source))
        return
    if sys.stdin is None or sys.stdin.isatty():
        raise BadInput(
            "stdin is a terminal or closed, not audio: pipe a file in, e.g. `tantra transcribe - < talk.wav`"
        )
    with tempfile.NamedTemporaryFile(prefix="tantra-stdin-") as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
        spool.flush()
        if spool.tell() == 0:
            raise BadInput("stdin: is empty; pipe audio in, e.g. `tantra transcribe - < talk.wav`")
        yield probe(Path(spool.name), label="stdin")
