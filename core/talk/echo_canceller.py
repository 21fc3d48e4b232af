"""Echo cancellation: the microphone without Tantra's own voice, so that on loudspeakers the user can talk over it.

WebRTC's AEC3 (the canceller in every browser's calls, from the pinned ``pywebrtc-audio`` wheel) subtracts from the
microphone what it predicts of the loudspeaker's sound, given that sound as its reference. Tantra knows the reference
exactly: the playback queue reports every block it hands the device with the time it sounds (``on_take``), and
each microphone frame is cleaned with the reference of its own time span (on a timeline that counts the
microphone's samples, ``_frame_start``: the frames' own stamps wander). The echo reaches the microphone later
than that (the room, the input's buffers: tens to hundreds of ms), never earlier, which is what AEC3's delay
estimator needs; it also follows changes of delay and volume. AEC3 works on 10 ms blocks: the 32 ms frames are cut
to them and joined again, 10 ms later at most.

``cancellation_db`` says how much quieter the microphone was made while something played (the echo return loss
enhancement, since the start).
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from config.errors import ModelUnavailable

RATE = 16_000
BLOCK = RATE // 100  # AEC3's 10 ms
KEPT_SECONDS = 3.0  # reference audio kept: more than any echo delay
QUIET = 1e-4  # mean square below which nothing is playing
GAP = 0.2  # seconds between a frame's stamp and the microphone's running count that mean samples were lost
DRIFT = 0.02  # seconds the earliest stamps may move from the running count before it follows them


class EchoCanceller:
    """``canceller.clean(frame, captured_at)`` for each microphone frame, once ``attach`` gave it the playback."""

    def __init__(self) -> None:
        try:
            from pywebrtc_audio import EchoCanceller as Aec3
        except ImportError:
            raise ModelUnavailable("echo cancellation needs pywebrtc-audio (pip install pywebrtc-audio)") from None
        self._aec = Aec3(sample_rate=RATE)
        self._lock = threading.Lock()
        self._resampler = None
        self._far = np.zeros(0, np.float32)  # the reference at 16 kHz ...
        self._far_start = 0.0  # ... from this time on the link's clock
        self._near_rest = np.zeros(0, np.float32)  # less than a block, waiting for the next frame
        self._far_rest = np.zeros(0, np.float32)
        self._out = np.zeros(BLOCK, np.float32)  # cleaned audio not yet handed back: 10 ms ahead at start
        self._mic_at: float | None = None  # when the next microphone frame starts, counted in samples ...
        self._lateness: deque[float] = deque(maxlen=100)  # ... and how late the last 3 s of frames were stamped
        self._energy_in = self._energy_out = 0.0  # of the microphone before and after, while something played

    def attach(self, playback, output_rate: int) -> None:
        """Take the reference from ``playback`` (a ``core.talk.sound_io.PlaybackQueue`` at ``output_rate``)."""
        if output_rate != RATE:
            import soxr

            self._resampler = soxr.ResampleStream(output_rate, RATE, 1, dtype="float32")
        playback.on_take = self.played

    def played(self, samples: np.ndarray, sounds_at: float) -> None:
        """A block handed to the loudspeaker (silence too), sounding from ``sounds_at``."""
        block = samples if self._resampler is None else self._resampler.resample_chunk(samples)
        with self._lock:
            expected = self._far_start + len(self._far) / RATE
            if not len(self._far) or abs(sounds_at - expected) > 0.1:  # the first block, or a gap: start afresh
                self._far, self._far_start = np.zeros(0, np.float32), sounds_at
            self._far = np.concatenate([self._far, block.astype(np.float32, copy=False)])
            extra = len(self._far) - round(KEPT_SECONDS * RATE)
            if extra > 0:
                self._far, self._far_start = self._far[extra:], self._far_start + extra / RATE

    def _reference(self, start: float, count: int) -> np.ndarray:
        """What sounded from ``start`` for ``count`` samples (silence where nothing was recorded)."""
        out = np.zeros(count, np.float32)
        with self._lock:
            offset = round((start - self._far_start) * RATE)
            lo, hi = max(offset, 0), min(offset + count, len(self._far))
            if hi > lo:
                out[lo - offset : hi - offset] = self._far[lo:hi]
        return out

    def clean(self, samples: np.ndarray, captured_at: float) -> np.ndarray:
        """The frame (16 kHz float32, its last sample captured at ``captured_at``) without the loudspeaker's echo."""
        far = self._reference(self._frame_start(captured_at, len(samples)), len(samples))
        near = np.concatenate([self._near_rest, samples])
        far = np.concatenate([self._far_rest, far])
        whole = len(near) // BLOCK * BLOCK
        self._near_rest, self._far_rest = near[whole:], far[whole:]
        if whole:
            self._out = np.concatenate([self._out, self._aec.process(near[:whole], far[:whole])])
        cleaned, self._out = self._out[: len(samples)], self._out[len(samples) :]
        if float(np.mean(np.square(far))) > QUIET:
            self._energy_in += float(np.sum(np.square(samples)))
            self._energy_out += float(np.sum(np.square(cleaned)))
        return cleaned

    def _frame_start(self, captured_at: float, count: int) -> float:
        """When a frame of ``count`` samples stamped ``captured_at`` started, on a timeline that counts samples.

        AEC3 models the echo as the reference delayed by a steady amount, so the reference it is given must run on
        without a break, as the microphone does. A frame's stamp is when its block reached Tantra, never before it
        was captured and often well after: through PulseAudio successive 32 ms frames were stamped -2 to 54 ms
        apart, and a reference cut at each stamp repeated and skipped pieces of itself (3-8 dB of a loopback's echo
        cancelled). So the timeline counts samples from the earliest-arriving frame of the last few seconds, and
        moves only when that earliest arrival does by ``DRIFT`` (two clocks), or at a gap (samples lost)."""
        stamped = captured_at - count / RATE
        if self._mic_at is None or abs(stamped - self._mic_at) > GAP:
            self._mic_at = stamped
            self._lateness.clear()
        self._lateness.append(stamped - self._mic_at)
        earliest = min(self._lateness)
        if abs(earliest) > DRIFT:
            self._mic_at += earliest
            self._lateness = deque((late - earliest for late in self._lateness), maxlen=self._lateness.maxlen)
        start = self._mic_at
        self._mic_at += count / RATE
        return start

    @property
    def cancellation_db(self) -> float | None:
        """How much quieter the microphone was made while something played, since the start (None: nothing has
        played). Whatever the user said over it counts as echo left: it is a lower bound."""
        if not self._energy_in:
            return None
        return round(10 * np.log10((self._energy_in + 1e-12) / (self._energy_out + 1e-12)), 1)
