"""What the voice loop needs of a sound card, whichever it is: microphone frames in, a playback queue out.

Two implementations: ``core.talk.sound_devices.DeviceAudio`` (PortAudio, its devices found by
``core.runtime.sound_cards``) and ``core.talk.stand_in_audio.StandInAudio`` (a file played as the microphone, a WAV file
as the speaker). Both take the samples to play from a ``PlaybackQueue``, which knows what has really been played: that
is what the user heard when a reply is interrupted, and when its first sample sounded.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16_000  # microphone frames are always 16 kHz mono, whatever the device records at
FRAME = 512  # samples per microphone frame (32 ms): what the voice-activity detector reads


def rms(samples: np.ndarray) -> float:
    """The level of ``samples``: the playback queue records what it plays by it, and the echo gates compare the
    microphone's frames with that record by it."""
    return float(np.sqrt(np.mean(np.square(samples))))


@dataclass(frozen=True)
class Frame:
    samples: np.ndarray
    """FRAME float32 samples at 16 kHz."""
    captured_at: float
    """When its last sample was captured, on the link's clock."""


class AudioLink(Protocol):
    """A microphone and a speaker that run together."""

    playback: PlaybackQueue
    output_rate: int
    """The rate ``playback`` takes samples at (the loop resamples the voice to it)."""

    def clock(self) -> float:
        """Seconds on the link's timeline (``time.monotonic()`` for real devices): every time stamp is on it."""
        ...

    def frames(self) -> Iterator[Frame]:
        """Microphone frames as they are captured; ends when the input does (a stand-in file, a lost device)."""
        ...

    def close(self) -> None: ...


@dataclass
class _Queued:
    samples: np.ndarray
    tag: int
    taken: int = 0


@dataclass
class Played:
    """How much of one tagged piece of audio has gone out."""

    total: int = 0
    """Samples queued."""
    samples: int = 0
    """Samples played."""
    first_at: float | None = None
    """When its first sample went out, on the link's clock."""


class PlaybackQueue:
    """Audio waiting to be played, in order, each piece tagged (a sentence number). Thread-safe: synthesis adds,
    the device's callback takes, and ``clear()`` (Ctrl-C, a barge-in) silences it from any thread at the next block;
    ``pause()`` (a barge-in not yet heard) silences it the same way but keeps what is queued for ``resume()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[_Queued] = deque()
        self.played: dict[int, Played] = {}
        self.drained = threading.Event()
        self.drained.set()
        self.last_sound_at = 0.0
        """When the last non-silent block went out: echo can still be in the room after it."""
        self.latency = 0.0
        """Seconds from ``take`` to the loudspeaker (the device's output latency; 0 for the stand-in)."""
        self._levels: deque[tuple[float, float, float]] = deque(maxlen=512)  # (start, end, RMS) of the last blocks
        self.silenced_at: list[float] = []
        """When the speaker fell silent after each ``clear()`` or ``pause()`` that cut audio off (the barge-in
        benchmark)."""
        self._cut = False
        self._paused = False
        self.on_take: Callable[[np.ndarray, float], None] | None = None
        """Told of every block handed to the device, silence too, and when it sounds (the echo canceller)."""

    def add(self, samples: np.ndarray, tag: int) -> None:
        with self._lock:
            piece = _Queued(np.asarray(samples, dtype=np.float32).reshape(-1), tag)
            self._queue.append(piece)
            self.played.setdefault(tag, Played()).total += len(piece.samples)
            self.drained.clear()

    def take(self, count: int, at: float | Callable[[], float] | None = None, rate: int = 0) -> np.ndarray:
        """The next ``count`` samples to play (silence where nothing is queued); ``at`` is when they sound (or the
        clock that says it, read once the queue is held: a piece added just before then cannot seem to sound before
        it was added), at ``rate`` samples a second (for the record of levels)."""
        out = np.zeros(count, dtype=np.float32)
        filled = 0
        with self._lock:
            at = at() if callable(at) else time.monotonic() if at is None else at
            while filled < count and self._queue and not self._paused:
                piece = self._queue[0]
                n = min(count - filled, len(piece.samples) - piece.taken)
                out[filled : filled + n] = piece.samples[piece.taken : piece.taken + n]
                played = self.played.setdefault(piece.tag, Played())
                if played.first_at is None:
                    played.first_at = at  # the block's start: exact to one block (32 ms or less)
                played.samples += n
                piece.taken += n
                filled += n
                if piece.taken == len(piece.samples):
                    self._queue.popleft()
            if self._cut:  # the first block after a cut: the sound stops where it starts
                self.silenced_at.append(at + self.latency)
                self._cut = False
            start = at + self.latency
            if self.on_take is not None:
                self.on_take(out, start)
            if filled:
                self.last_sound_at = start
            if rate:
                level = rms(out) if filled else 0.0
                self._levels.append((start, start + count / rate, level))
            if not self._queue:
                self.drained.set()
        return out

    def clear(self) -> None:
        """Drop everything not yet played (and end a pause)."""
        with self._lock:
            self._cut = self._cut or (bool(self._queue) and not self._paused)
            self._queue.clear()
            self._paused = False
            self.drained.set()

    def pause(self) -> None:
        """Play silence from the next block on, keeping what is queued: it is still ``busy``."""
        with self._lock:
            self._cut = self._cut or (bool(self._queue) and not self._paused)
            self._paused = True

    def resume(self) -> None:
        """Play what a ``pause()`` kept, from where it stopped."""
        with self._lock:
            self._paused = False

    def level_at(self, moment: float) -> float:
        """The RMS level that was sounding at ``moment`` (0 when nothing was, or it is too long ago)."""
        with self._lock:
            for start, end, level in reversed(self._levels):
                if start <= moment:
                    return level if moment < end else 0.0
        return 0.0

    @property
    def busy(self) -> bool:
        return not self.drained.is_set()
