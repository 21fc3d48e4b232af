"""Live captions: a microphone's speech as text while it is spoken (``tantra transcribe --live``).

The voice loop's own turn taking (``core.talk.turns``) cuts the stream into lines: a line starts when speech does
and ends after 0.5 s of silence, or at ``longest_seconds`` of continuous speech. While a line is being spoken its
audio so far is transcribed again every ``partial_seconds`` (greedily: a partial is replaced a moment later), and
once 0.2 s of silence suggests the end, the whole line is transcribed as the final one will be; if nobody speaks
again before the end, that transcript is the final caption, so the final line follows the speech by the end-of-turn
silence rather than by a transcription too. Pure logic over frames and two callables (the transcriber, the
voice-activity detector): tested with made-up audio and probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from core.talk.sound_io import Frame
from core.talk.turns import Ended, Resumed, Speculate, Started, TurnDetector, TurnSettings

LINE_SETTINGS = TurnSettings(end_silence_seconds=0.5, speculate_silence_seconds=0.2, longest_seconds=12.0)
"""A line ends after half a second of silence (a conversation's turn waits 0.6 s: a caption loses nothing by ending
sooner, the next words begin the next line), and is transcribed for the last time from 0.2 s, so the final line
follows its speech by about 0.7 s. A line is cut after 12 s of continuous speech: each partial transcribes the line
so far again, and a shorter line keeps that cheap (a lecture does not pause every 30 s)."""


@dataclass(frozen=True)
class Caption:
    text: str
    start: float
    """Seconds from the start of listening to the line's first sound (the turn's pre-roll included)."""
    end: float
    """Seconds from the start of listening to its last voiced frame (for a partial: to now)."""
    final: bool
    """False for a partial line, which the next caption replaces."""


class LiveCaptioner:
    """``captions(frames)`` turns microphone frames into partial and final captions; ``flush()`` ends the line in
    progress (Ctrl-C), so its last words are not lost.

    ``hear(audio, final)`` transcribes 16 kHz audio (``final`` False: a partial, which may be quicker and rougher);
    ``vad(samples)`` is the probability that a frame holds speech."""

    def __init__(self, hear: Callable[[np.ndarray, bool], str], vad: Callable[[np.ndarray], float],
                 settings: TurnSettings = LINE_SETTINGS, partial_seconds: float = 0.6,
                 clock: Callable[[], float] | None = None) -> None:  # fmt: skip
        """``clock`` (the frames' clock) lets partials give way when transcribing has fallen behind the microphone:
        a partial of audio already a second old helps nobody, and it delays the final line."""
        self.hear, self.vad, self.partial_seconds, self.clock = hear, vad, partial_seconds, clock
        self.detector = TurnDetector(settings)
        self.origin: float | None = None  # the clock reading of the start of listening
        self._line_start = 0.0
        self._next_partial = 0.0
        self._speculation: tuple[int, str] | None = None  # (voiced frames, transcript) of the line's likely end
        self._now = 0.0

    def captions(self, frames: Iterable[Frame]) -> Iterator[Caption]:
        for frame in frames:
            if self.origin is None:
                self.origin = frame.captured_at - len(frame.samples) / 16000
            self._now = frame.captured_at
            for event in self.detector.feed(frame.samples, self.vad(frame.samples), frame.captured_at):
                caption = self._on(event)
                if caption is not None:
                    yield caption
            if self._partial_due(frame):
                self._next_partial = frame.captured_at + self.partial_seconds
                text = self.hear(self.detector.audio_so_far(), False)
                if text:
                    yield Caption(text, self._line_start, frame.captured_at - self.origin, final=False)

    def _partial_due(self, frame: Frame) -> bool:
        """Time for a partial: in a line, not waiting on the line's likely end (its transcript is the line's
        text), and not behind the microphone."""
        if not self.detector.in_turn or self._speculation is not None or frame.captured_at < self._next_partial:
            return False
        return self.clock is None or self.clock() - frame.captured_at <= self.partial_seconds / 2

    def _on(self, event) -> Caption | None:
        if isinstance(event, Started):
            self._line_start = event.at - self.origin
            self._next_partial = self._now + self.partial_seconds
            self._speculation = None
        elif isinstance(event, Speculate):
            text = self.hear(event.utterance.audio, True)
            self._speculation = (event.utterance.voiced_frames, text)
            if text:
                return Caption(text, self._line_start, self._now - self.origin, final=False)
        elif isinstance(event, Resumed):
            self._speculation = None
        elif isinstance(event, Ended):
            utterance = event.utterance
            if self._speculation is not None and self._speculation[0] == utterance.voiced_frames:
                text = self._speculation[1]  # nothing was said since: the same audio, the same words
            else:
                text = self.hear(utterance.audio, True)
            self._speculation = None
            if text:
                return Caption(text, self._line_start, utterance.last_voiced - self.origin, final=True)
        return None

    def flush(self, backlog: Iterable[Frame] = ()) -> list[Caption]:
        """What is owed at Ctrl-C (or when the input ended mid-line): the lines in ``backlog``, the frames captured
        until then that transcribing had not caught up with, heard without partials; then the line being spoken,
        final as it is."""
        captions = []
        for frame in backlog:
            self._now = frame.captured_at
            for event in self.detector.feed(frame.samples, self.vad(frame.samples), frame.captured_at):
                caption = self._on(event) if isinstance(event, Started | Ended) else None
                if caption is not None:
                    captions.append(caption)
        if self.detector.in_turn:
            audio = self.detector.audio_so_far()
            self.detector.reset()
            if text := self.hear(audio, True):
                captions.append(Caption(text, self._line_start, self._now - self.origin, final=True))
        return captions
