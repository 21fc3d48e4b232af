"""Turn taking: when the user starts and stops speaking, from one voice-activity probability per 32 ms frame.

Pure logic, no audio library and no clock of its own (each frame carries the time it was captured), so every rule
here is tested with made-up probabilities. The defaults are what the best voice assistants settled on: GLaDOS ends
a turn after 640 ms of silence, RealtimeSTT after 0.6 s; Silero's own detector keeps 0.5 as its threshold and
0.15 less to stay in speech.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
FRAME = 512  # samples per frame: what Silero VAD reads at 16 kHz
FRAME_SECONDS = FRAME / SAMPLE_RATE  # 32 ms


@dataclass(frozen=True)
class TurnSettings:
    start_probability: float = 0.5
    """Speech starts when the probability stays at or above this ..."""
    start_seconds: float = 0.25
    """... for this long (a cough or a click is shorter)."""
    preroll_seconds: float = 0.5
    """Audio kept from before the start, so the first syllable is not lost to the detector's delay."""
    barge_in_preroll_seconds: float = 1.0
    """The same for a barge-in, whose first word ("Stop.", "Wait,") is often too short to decide it alone."""
    stay_probability: float = 0.35
    """Once speaking, a frame this likely still counts as speech (Silero's own hysteresis)."""
    end_silence_seconds: float = 0.6
    """The turn ends after this much silence."""
    speculate_silence_seconds: float = 0.3
    """Transcription starts after this much silence; thrown away if speech resumes."""
    transcribe_silence_seconds: float = 0.064
    """With an end-of-turn model (Smart Turn), transcription starts after this much silence (a pause that turns out
    to be mid-sentence costs one Whisper run thrown away; over 47 spoken sentences, 33 such runs against 20 at
    128 ms, and the same words heard) ..."""
    ask_silence_seconds: float = 0.16
    """... and the model is asked after this much, while Whisper runs: what it hears includes the pause, so it is
    asked when it always was ..."""
    complete_probability: float = 0.5
    """... and a turn it finds this likely complete ..."""
    complete_end_seconds: float = 0.3
    """... ends after this much silence."""
    unfinished_end_seconds: float = 1.0
    """A turn it finds unfinished, asked again at ``speculate_silence_seconds``, ends after this much silence: a
    thinking pause is waited out."""
    longest_seconds: float = 30.0
    """A turn is cut here (Whisper reads 30 s at a time)."""
    barge_in_probability: float = 0.8
    """While Tantra speaks (barge-in on), speech must be this sure ..."""
    barge_in_seconds: float = 0.3
    """... for this long to interrupt it: its own echo rarely is."""
    barge_in_end_seconds: float = 0.8
    """A barge-in's turn ends after this much silence, whatever the end-of-turn model says: its first word ("Wait,",
    "Stop.") is often said alone as the voice pauses, and what the user says next belongs with it (Smart Turn found
    "Wait," complete and ended the turn there)."""
    cancelled_barge_in_probability: float = 0.6
    """The sureness asked instead while the echo canceller runs. What it leaves of the echo stays under 0.5 (at most
    0.47 in the stand-in room), and it softens the user's words over the echo too (its double-talk suppression,
    strongest when the two voices are alike): at 0.8, 9 of 28 interruptions in the stand-in room were decided only
    as they ended, or never; at 0.6, only a lone "Stop."."""


@dataclass(frozen=True)
class Utterance:
    audio: np.ndarray
    """16 kHz float32, from the pre-roll to shortly after the last voiced frame."""
    last_voiced: float
    """When the last voiced sample was captured (the clock of the frames): latencies count from here."""
    voiced_frames: int
    """How many frames of the turn were voiced: a speculative transcript is still good if this did not change."""
    cut: bool = False
    """True when the turn reached ``longest_seconds`` and was cut there."""
    woken: bool = False
    """True when the wake word was heard in it (``--wake``): its transcript starts with the word."""
    began: float = 0.0
    """When the run of speech that started the turn began (its pre-roll not counted; 0: unknown)."""

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def voiced_seconds(self) -> float:
        return self.voiced_frames * FRAME_SECONDS


@dataclass(frozen=True)
class Started:
    at: float
    barge_in: bool
    """True when it started while Tantra was speaking (barge-in on): the reply must stop."""
    began: float = 0.0
    """When the run of speech that decided it began (``Utterance.began``)."""


@dataclass(frozen=True)
class Speculate:
    utterance: Utterance


@dataclass(frozen=True)
class Resumed:
    """Speech came back after a ``Speculate``: whatever was begun on it is to be thrown away."""


@dataclass(frozen=True)
class Ended:
    utterance: Utterance


def _frames(seconds: float) -> int:
    return max(1, round(seconds / FRAME_SECONDS))


class TurnDetector:
    """Feed it frames in order; it says when a turn starts, when to transcribe speculatively, and when it ends.

    ``end_of_turn`` (audio -> probability that the turn is complete, ``core.talk.end_of_turn``), where given, moves
    the end: every pause is transcribed after ``transcribe_silence_seconds`` and the model asked at
    ``ask_silence_seconds``; a complete-sounding turn ends after ``complete_end_seconds``, an unfinished-sounding
    one is asked again when the silence reaches ``speculate_silence_seconds`` and ends after
    ``end_silence_seconds`` if complete then (or heard as a question, ``heard_a_question``), else after
    ``unfinished_end_seconds``. Without it, silence alone decides (transcribed at 300 ms, ended at 600 ms); so it
    does for a barge-in's turn, which ends after ``barge_in_end_seconds``."""

    def __init__(self, settings: TurnSettings = TurnSettings(), end_of_turn=None) -> None:
        self.settings = settings
        self.end_of_turn = end_of_turn
        # The frames before a turn: its pre-roll, and the run of speech that is deciding whether it starts. Each is
        # (samples, voiced: sure enough to start a turn, echo, speech: likely enough to stay in one).
        self._barge_in = _frames(settings.barge_in_seconds)  # sure frames that decide a barge-in ...
        self._barge_in_window = self._barge_in + self._barge_in // 2  # ... within this many (``_starts``)
        preroll = max(settings.preroll_seconds, settings.barge_in_preroll_seconds)
        self._recent: deque[tuple[np.ndarray, bool, bool, bool]] = deque(
            maxlen=_frames(preroll) + self._barge_in_window
        )
        self._turn: list[np.ndarray] | None = None
        self._voiced_frames = 0
        self._last_voiced_index = 0  # frames of the turn up to and including the last voiced one
        self._last_voiced_at = 0.0
        self._began_at = 0.0  # when the run of speech that started the turn began
        self._silent_frames = 0
        self._barge_in_turn = False  # the turn started while Tantra spoke
        self._speculated = False  # a Speculate was sent since the last voiced frame
        self._complete = False  # the end-of-turn model found this pause's turn complete
        self._a_question = False  # Whisper heard this pause's turn end with a question mark (``heard_a_question``)
        self._end_frames = _frames(settings.end_silence_seconds)  # of silence that end this pause's turn

    @property
    def in_turn(self) -> bool:
        """Speech has started and not yet ended."""
        return self._turn is not None

    def audio_so_far(self) -> np.ndarray:
        """The turn's audio until now, pre-roll included (live captions transcribe it while it is spoken)."""
        return np.concatenate(self._turn) if self._turn else np.zeros(0, np.float32)

    def reset(self) -> None:
        """Forget everything heard (the microphone is ignored while Tantra speaks, or the user pressed Ctrl-C)."""
        self._recent.clear()
        self._turn = None

    def _starts(self, strict: bool) -> int:
        """How many of the recent frames make the start of a turn (0: it does not start yet). Normally the last
        250 ms must all be speech. While Tantra speaks (``strict``) 300 ms of surer speech is needed, but within
        a window half as long again: the short dips between words must not reset the count, and an echo that
        is only nearly as sure does not add up."""
        settings = self.settings
        if not self._recent[-1][1]:
            return 0
        if not strict:
            needed = _frames(settings.start_seconds)
            recent = list(self._recent)[-needed:]
            return needed if len(recent) == needed and all(voiced for _, voiced, _, _ in recent) else 0
        window = list(self._recent)[-self._barge_in_window :]
        return len(window) if sum(voiced for _, voiced, _, _ in window) >= self._barge_in else 0

    def _opening(self, run: int, strict: bool) -> tuple[list[np.ndarray], int]:
        """The turn's first frames and how many of them were speech: the deciding run and the pre-roll before it,
        where every frame that was no more than Tantra's own echo is silence. A barge-in's first word is rarely as
        sure as the 300 ms that decide it ("Stop." before "Tell me about cats"; without a pre-roll "What do bees
        make?" was heard as "to bees make."), and it is said over the echo: the echo's frames between it and the run
        must not end the pre-roll, nor be heard (what the canceller leaves of the echo was transcribed as words)."""
        settings = self.settings
        preroll = settings.barge_in_preroll_seconds if strict else settings.preroll_seconds
        kept = list(self._recent)[-(run + _frames(preroll)) :]
        return [np.zeros_like(frame) if echo else frame for frame, _, echo, _ in kept], sum(s for *_, s in kept)

    def feed(
        self, frame: np.ndarray, probability: float, captured_at: float, strict: bool = False, echo: bool = False
    ) -> list:
        """Events caused by one frame. ``captured_at`` is when its last sample was captured; ``strict`` asks for
        the barge-in thresholds, for speech while Tantra is speaking; ``echo`` says the frame is no more than
        Tantra's own voice coming back (it is silence to the turn, and in its audio)."""
        settings = self.settings
        if echo:
            probability = 0.0
        if self._turn is None:
            threshold = settings.barge_in_probability if strict else settings.start_probability
            self._recent.append((frame, probability >= threshold, echo, probability >= settings.stay_probability))
            run = self._starts(strict)
            if not run:
                return []
            self._turn, speech = self._opening(run, strict)
            self._began_at = captured_at - run * FRAME_SECONDS
            self._barge_in_turn = strict
            self._recent.clear()
            self._voiced_frames = speech - 1  # the opening's speech, this frame but for ``_mark_voiced``'s count
            self._mark_voiced(captured_at)
            return [Started(captured_at - len(self._turn) * FRAME_SECONDS, barge_in=strict, began=self._began_at)]

        self._turn.append(np.zeros_like(frame) if echo else frame)
        if probability >= settings.stay_probability:
            speculated = self._speculated
            self._mark_voiced(captured_at)
            if speculated:
                return [Resumed()]
        else:
            self._silent_frames += 1
        if len(self._turn) >= _frames(settings.longest_seconds):
            return [Ended(self._finish(cut=True))]
        if self._silent_frames >= self._end_frames:
            return [Ended(self._finish())]
        if self.end_of_turn is None or self._barge_in_turn:
            return self._speculate() if self._silent_frames == _frames(settings.speculate_silence_seconds) else []
        # With the model: Whisper starts early in the pause and the model is asked while it runs; an
        # unfinished-sounding turn is asked once more.
        silent = self._silent_frames
        events = self._speculate() if silent == _frames(settings.transcribe_silence_seconds) else []
        asked, again = _frames(settings.ask_silence_seconds), _frames(settings.speculate_silence_seconds)
        if silent == asked or (silent == again and not self._complete):
            self._complete = self._sounds_complete()
            if not self._complete:
                end = settings.end_silence_seconds if self._a_question else settings.unfinished_end_seconds
            elif silent == asked:
                end = settings.complete_end_seconds
            else:  # complete at the second question
                end = settings.end_silence_seconds
            self._end_frames = _frames(end)
        return events

    def heard_a_question(self, voiced_frames: int) -> None:
        """Whisper heard the turn, as it was ``voiced_frames`` of speech ago, end with a question mark. Smart Turn
        hears only the sound, and it sometimes finds a whole question unfinished ("What do bees make?" was waited
        out for a second in one benchmark run of three): in words it is complete, so the pause ends the turn after
        ``end_silence_seconds``, as silence alone would end it. Only this pause, and only if nothing was said since
        (called from the thread that transcribes, while this one goes on feeding frames)."""
        if self._turn is None or self._barge_in_turn or voiced_frames != self._voiced_frames:
            return
        self._a_question = True
        if not self._complete:
            self._end_frames = min(self._end_frames, _frames(self.settings.end_silence_seconds))

    def goes_on(self) -> None:
        """The turn that just started as a barge-in is the user going on with the turn before, whose answer has made
        no sound yet (a pause after a whole sentence ended it too soon): it ends as a turn does, not as a barge-in."""
        if self._turn is not None and self._barge_in_turn:
            self._barge_in_turn = False
            self._end_frames = _frames(self.settings.end_silence_seconds)

    def _sounds_complete(self) -> bool:
        return self.end_of_turn(np.concatenate(self._turn)) >= self.settings.complete_probability

    def _speculate(self) -> list:
        self._speculated = True
        return [Speculate(self._utterance())]

    def _mark_voiced(self, captured_at: float) -> None:
        self._voiced_frames += 1
        self._last_voiced_index = len(self._turn)
        self._last_voiced_at = captured_at
        self._silent_frames = 0
        self._speculated = self._complete = self._a_question = False
        settings = self.settings
        end = settings.barge_in_end_seconds if self._barge_in_turn else settings.end_silence_seconds
        self._end_frames = _frames(end)

    def _utterance(self, cut: bool = False) -> Utterance:
        # Up to the last voiced frame and the speculation wait after it (or the shorter one with an end-of-turn
        # model: what there is by then): the speculative and the final utterance are then the same audio when
        # nobody spoke in between, and one transcript serves both.
        settings = self.settings
        quick = self.end_of_turn is not None
        wait = settings.transcribe_silence_seconds if quick else settings.speculate_silence_seconds
        end = self._last_voiced_index + _frames(wait)
        audio = np.concatenate(self._turn[:end]) if self._turn else np.zeros(0, np.float32)
        return Utterance(audio, self._last_voiced_at, self._voiced_frames, cut, began=self._began_at)

    def _finish(self, cut: bool = False) -> Utterance:
        utterance = self._utterance(cut)
        self._turn = None
        return utterance
