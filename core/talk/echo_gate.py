"""Is the microphone hearing the user, or only Tantra's own voice coming back from the loudspeaker?

No local voice assistant cancels echo (GLaDOS #38, pipecat #188, RealtimeSTT #156), and Silero rates an echo as
speech as surely as the user. But Tantra knows what it played and when. The echo is that signal, some time later
(the room, the sound system's buffers: 80 ms to a few hundred) and some amount quieter (the volume, the distance;
nothing with headphones). Both are measured while Tantra speaks, from frame levels alone: the delay is the lag at
which the microphone's level follows the played level best, the strength is how loud the microphone gets at that
lag (the median ratio of the two). A frame counts as the user only when it is clearly louder than the echo
predicted for it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

FRAME_SECONDS = 0.032
LAGS = tuple(i * FRAME_SECONDS for i in range(16))  # 0 to 480 ms: the delays looked for
HISTORY_FRAMES = 94  # 3 s of frames while Tantra speaks: enough to measure, recent enough to follow a volume change
MEASURED_AFTER = 16  # frames of history before the measurement is trusted (half a second of speech)
QUIET = 1e-3  # RMS below which nothing was played


class EchoGate:
    """``gate.is_echo(level, now)`` for each microphone frame heard while Tantra speaks."""

    def __init__(self, played_level: Callable[[float], float], margin: float = 2.0) -> None:
        """``played_level(t)``: the RMS level that was sounding at time ``t`` (the playback queue's record).
        ``margin``: how much louder than the predicted echo the user must be."""
        self.played_level, self.margin = played_level, margin
        self.history: deque[tuple[float, np.ndarray]] = deque(maxlen=HISTORY_FRAMES)
        self._levels: deque[float] = deque(maxlen=3)
        self._measured: tuple[int, float] | None = None  # ``measure()`` of the history as it is

    def is_echo(self, level: float, now: float, user_speaking: bool = False) -> bool:
        """Whether a frame of RMS ``level`` that ended at ``now`` is no louder than the echo. Frames while the user
        is known to speak (``user_speaking``) are judged but not learned from."""
        self._levels.append(level)
        heard = max(self._levels)  # a syllable's level carries over the short dips between words
        played = self._played(now)
        if played.max() < QUIET:
            return False  # nothing was played that could come back
        if not user_speaking:
            self.history.append((level, played))
            self._measured = None
        return heard < self._loudest_echo(played)

    def louder_than_echo(self, level: float, now: float) -> bool:
        """Whether a frame of RMS ``level`` that ended at ``now`` (from another signal than the one this gate learns
        from: the microphone after the echo canceller) is louder than the echo this gate predicts for it. Nothing
        is learned."""
        played = self._played(now)
        return played.max() < QUIET or level >= self._loudest_echo(played)

    def _played(self, now: float) -> np.ndarray:
        """The levels played at each of ``LAGS`` before the middle of the frame that ended at ``now``."""
        return np.array([self.played_level(now - FRAME_SECONDS / 2 - lag) for lag in LAGS])

    def _loudest_echo(self, played: np.ndarray) -> float:
        """How loud the echo of ``played`` (the levels at each of ``LAGS`` ago) may be now."""
        if len(self.history) < MEASURED_AFTER:
            return float(played.max())  # not measured yet: assume a loud room
        lag, strength = self.measure()
        # Anything played from the echo's delay ago until now may be sounding in the room (the delay wavers, a
        # room reverberates): the loudest of it is the echo to beat.
        recent = played[: lag + 2].max()
        return self.margin * strength * recent + QUIET

    def measure(self) -> tuple[int, float]:
        """(the echo's delay as an index into ``LAGS``, its strength: microphone level over played level). Made once
        for each state of the history: the listener asks for every frame while Tantra speaks, some frames twice."""
        if self._measured is None:
            self._measured = self._measure()
        return self._measured

    def _measure(self) -> tuple[int, float]:
        mic = np.array([level for level, _ in self.history])
        played = np.stack([levels for _, levels in self.history])  # (frames, lags)
        if mic.std() < 1e-9:
            return 0, 0.0  # a silent microphone (headphones): no echo at all
        centred = played - played.mean(axis=0)
        spread = np.sqrt((centred**2).sum(axis=0) * ((mic - mic.mean()) ** 2).sum()) + 1e-12
        correlation = centred.T @ (mic - mic.mean()) / spread
        lag = int(np.flatnonzero(correlation >= correlation.max() - 0.05)[0])  # of near ties, the shortest delay
        sounding = played[:, lag] > QUIET
        if not sounding.any():
            return lag, 0.0
        # The median: the user talking over the echo for the 300 ms a barge-in takes must not raise it.
        return lag, float(np.median(mic[sounding] / played[sounding, lag]))

    def report(self, cancelled_db: float | None = None) -> str:
        """What was measured of the echo, for a note on Tantra hearing itself ("; echo about 96 ms late, 41 dB of
        it cancelled"), or "" before it is measured. ``cancelled_db``: what an echo canceller took out of it."""
        if len(self.history) < MEASURED_AFTER:
            return ""
        lag, _ = self.measure()
        parts = [f"echo about {LAGS[lag] * 1000:.0f} ms late"]
        if cancelled_db is not None:
            parts.append(f"{cancelled_db:.0f} dB of it cancelled")
        return "; " + ", ".join(parts)
