"""The voice loop's ear: every microphone frame, on a thread of its own, through the echo canceller, the
voice-activity detector, the echo gates and the wake word into the turn detector, whose turns it queues for the
conversation (``core.talk.voice_loop``). A barge-in it decides pauses the reply at once (``BargeInHold``); the
conversation judges it.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from config.errors import TantraError
from core.talk.barge_in_hold import BargeInHold
from core.talk.echo_gate import EchoGate
from core.talk.events import VoiceOptions
from core.talk.sound_io import rms
from core.talk.turns import FRAME, FRAME_SECONDS, Ended, Resumed, Speculate, Started, TurnDetector, Utterance

WAKE_PAUSE_SECONDS = 1.0  # a pause this soon after the wake word is a comma before the question, not its end
USER_QUIET_SECONDS = 0.3  # the answer's first sound, held while the user made sounds, waits this long after the last


@dataclass(frozen=True)
class InputLost:
    """The microphone stopped (unplugged, its server gone): the conversation ends with a note saying why."""

    reason: str


class ReadAhead:
    """The user started to speak: what the next prompt begins with can be read meanwhile."""


class Listener:
    def __init__(self, link, vad: Callable[[np.ndarray], float], options: VoiceOptions, detector: TurnDetector,
                 turns: queue.Queue, replying: threading.Event, hold: BargeInHold,
                 images_waiting: Callable[[], bool], going_on: Callable[[], bool]) -> None:  # fmt: skip
        """``link``: a ``core.talk.sound_io.AudioLink``; ``vad``: frame -> probability of speech; ``turns``: where
        the detector's events go (then ``InputLost``, ``ReadAhead``, or None when the input ends); ``replying``: set
        while the conversation answers; ``images_waiting``: a picture was shown for the next turn; ``going_on``:
        the user goes on with the turn being answered, before its answer made a sound (True: it is taken back)."""
        self.link, self.vad, self.options, self.detector = link, vad, options, detector
        self.turns, self.replying, self.hold, self.images_waiting = turns, replying, hold, images_waiting
        self.going_on = going_on
        self.canceller = options.echo_canceller
        self.echo = EchoGate(link.playback.level_at, options.echo_margin)
        self.room_echo = None if self.canceller is None else EchoGate(link.playback.level_at, options.echo_margin)
        """With the canceller: the echo as the microphone hears it before cancelling."""
        self.over_room_echo: deque[float] = deque(maxlen=100)  # when speech frames were louder than that
        self.full_duplex = options.barge_in == "on" or (options.barge_in == "auto" and self.canceller is not None)
        """The microphone is heard while Tantra speaks: headphones, or an echo canceller on loudspeakers."""
        self.barge_ins: list[float] = []
        """The sound link's clock at each barge-in decision (the benchmark times the silence that follows)."""
        self.push_to_talk = False
        self.recording: list[np.ndarray] | None = None  # push-to-talk: the frames since the key went down
        self.drop_recording = threading.Event()
        self.armed_until = -1e9  # until when a turn needs no wake word (a follow-up)
        self._turn_started_at = 0.0
        self._last_turn_end = -1e9  # when the last turn handed on was last voiced (the sound link's clock)
        self._answer_sounded_at: float | None = None  # when Tantra first made a sound after that (its answer)
        self._turn_goes_on = False  # the turn in progress goes on with the last one (``going_on``)
        self._held_for_user_at: float | None = None  # the last sound of the user that holds the answer back
        self._woken_at = -1e9  # when the wake word was last heard
        self._frame_at = 0.0  # when the frame being heard was captured
        self._user_heard_at = -1e9  # when a frame heard while Tantra spoke was last the user's speech
        self._thread = threading.Thread(target=self._listen, name="tantra-listen", daemon=True)
        self._quit = threading.Event()

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def quit(self) -> None:
        self._quit.set()

    def talk(self, pressed: bool) -> None:
        """Push-to-talk: start (True) or stop (False) a turn."""
        if pressed:
            self.recording = []
        elif self.recording is not None:
            audio, self.recording = self.recording, None
            if audio:
                self.turns.put(Ended(Utterance(np.concatenate(audio), self.link.clock(), len(audio))))

    def judge_end(self, end_of_turn: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], float]:
        """Smart Turn's verdict on the turn so far, but for a pause just after the wake word: "Hey Jarvis," alone
        sounds complete, and its question comes after the comma."""

        def judged(audio: np.ndarray) -> float:
            return 0.0 if self._frame_at - self._woken_at < WAKE_PAUSE_SECONDS else end_of_turn(audio)

        return judged

    def frames_louder_than_room(self, start: float, end: float) -> int:
        """How many speech frames between ``start`` and ``end`` were louder than the echo uncancelled would be."""
        return sum(start <= at <= end for at in self.over_room_echo)

    def echo_report(self) -> str:
        """For a note on Tantra hearing itself: "; echo about 96 ms late, 41 dB of it cancelled"."""
        return self.echo.report(None if self.canceller is None else self.canceller.cancellation_db)

    def _deaf(self, now: float) -> bool:
        """Half-duplex: while Tantra answers, and a moment after its voice stops, the microphone is not heard. With
        the echo canceller on loudspeakers it is heard while Tantra speaks (barge-in), but not for that moment after
        its voice stops: what is left of a real room's echo then (reverberation, a reference a little off) made
        false turns on PulseAudio. Unless the user was heard speaking as the voice stopped: a question begun over
        the end of an answer, too soon to be decided before it, lost its start there (PulseAudio: "three
        daughters." of "Tell me a long story about a king and his three daughters."). Headphones (barge-in on) are
        never deaf. Nor is half-duplex until the answer makes its first sound: there is no echo to hear yet."""
        if self.options.barge_in == "on":
            return False
        playback = self.link.playback
        tail = self._in_echo_tail(now)
        if self.full_duplex:
            return tail and not playback.busy and now - self._user_heard_at > self.options.echo_tail
        if self._answer_unheard():
            return tail
        return self.replying.is_set() or playback.busy or tail

    def _answer_unheard(self, since: float | None = None) -> bool:
        """Tantra is answering, and had made no sound since the user's last turn ended (until ``since``, else now):
        whoever speaks then is the user going on with their turn, not talking over the answer (the voice loop takes
        the answer back and joins the two)."""
        sounded = self._answer_sounded_at
        return self.replying.is_set() and (sounded is None or (since is not None and sounded > since))

    def _wait_for_user(self, probability: float, now: float) -> None:
        """Tantra does not begin its answer over the user: speech before its first sound holds the sound back, as
        the user may be going on with their turn (the turn that follows then joins it, ``going_on``). It goes on
        after ``USER_QUIET_SECONDS`` of quiet that began no turn (a cough, a breath)."""
        playback = self.link.playback
        if probability >= self.detector.settings.stay_probability and self._answer_unheard():
            if self._held_for_user_at is None:
                playback.pause()
            self._held_for_user_at = now
        elif self._held_for_user_at is not None and not self.detector.in_turn:
            if not self.replying.is_set() or now - self._held_for_user_at >= USER_QUIET_SECONDS:
                self._held_for_user_at = None
                playback.resume()

    def _in_echo_tail(self, now: float) -> bool:
        """Tantra's voice fell quiet less than ``echo_tail`` ago: the room may still be echoing it."""
        return now - self.link.playback.last_sound_at < self.options.echo_tail

    def _listen(self) -> None:
        try:
            for frame in self.link.frames():
                if self._quit.is_set():
                    return
                self._hear_frame(frame.samples, frame.captured_at)
            self._hear_out()
        except TantraError as error:
            self.turns.put(InputLost(str(error)))
            return
        self.turns.put(None)  # the input is over (a stand-in file ended)

    def _hear_out(self) -> None:
        """The input ended (a stand-in file) in the middle of a turn: it ends as silence would end it. A barge-in's
        turn holds the reply paused until it is judged, and one left unended held it for ever (a bench run on
        loudspeakers hung so, an echo taken for a barge-in in the last second of the input)."""
        silence, now = np.zeros(FRAME, np.float32), self._frame_at
        while self.detector.in_turn and not self._quit.is_set():
            now += FRAME_SECONDS
            self._hear_frame(silence, now)

    def _hear_frame(self, samples: np.ndarray, now: float) -> None:
        if self.drop_recording.is_set():
            self.drop_recording.clear()
            self.detector.reset()
            self.recording = None
            self.turns.put(Resumed())  # a reply drafted on it is thrown away too
        playback = self.link.playback
        if self._answer_sounded_at is None and playback.last_sound_at > self._last_turn_end:
            self._answer_sounded_at = playback.last_sound_at
        if self.recording is not None:
            self.recording.append(samples)
            return
        heard = samples  # what the microphone heard, echo and all
        if self.canceller is not None:
            samples = self.canceller.clean(samples, now)  # every frame: the canceller follows the stream
        if self.push_to_talk or self._deaf(now):
            self.detector.reset()
            return
        probability = self.vad(samples)
        # While Tantra speaks, and for the echo's tail after it, only sure speech is the user's (full duplex: the
        # canceller leaves a little of a real room's echo, and the tail outlasts the sound by the room's delay).
        strict = self.replying.is_set() or playback.busy or self._in_echo_tail(now)
        echo = False  # True: the frame is no louder than Tantra's own voice coming back, not the user
        if strict:
            level = rms(samples)
            echo = self.echo.is_echo(level, now, user_speaking=self.detector.in_turn)
            if not echo and probability >= self.detector.settings.stay_probability:
                self._user_heard_at = now  # (``_deaf``)
                if self.room_echo is not None and self.room_echo.louder_than_echo(level, now):
                    self.over_room_echo.append(now)
            if self.room_echo is not None:
                self.room_echo.is_echo(rms(heard), now, user_speaking=self.detector.in_turn)  # learns the room
        wake = self.options.wake
        if wake is not None and not strict and wake.feed(samples, probability):
            self._woken_at = now
        self._frame_at = now
        self._wait_for_user(0.0 if echo else probability, now)
        for event in self.detector.feed(samples, probability, now, strict=strict, echo=echo):
            if isinstance(event, Started):
                self._turn_started_at, self._turn_goes_on = event.at, False
                if event.barge_in and self._answer_unheard(since=event.began) and self.going_on():
                    self._turn_goes_on, self._held_for_user_at = True, None  # (the answer is gone, its pause too)
                    self.detector.goes_on()
                elif event.barge_in and (self.replying.is_set() or playback.busy):  # not in the echo's tail alone
                    self.barge_ins.append(self.link.clock())
                    self.hold.pause()
                    self._held_for_user_at = None  # (the hold keeps the answer paused now)
                elif self.images_waiting() and not self.replying.is_set():
                    self.turns.put(ReadAhead())
                continue
            spoken_to = True
            if isinstance(event, Speculate | Ended) and wake is not None:
                woken = self._woken_at >= self._turn_started_at
                # Not spoken to Tantra, unless it follows an answer or goes on with a question
                spoken_to = woken or self._turn_started_at <= self.armed_until or self._turn_goes_on
                event = type(event)(replace(event.utterance, woken=woken))
            if self.hold.keep(event, spoken_to):  # the held reply's fate waits for this turn's end, and its words
                continue
            if spoken_to:
                if isinstance(event, Ended):  # (a barge-in's turn held above does not count: the answer had sounded)
                    self._last_turn_end, self._answer_sounded_at = event.utterance.last_voiced, None
                self.turns.put(event)
