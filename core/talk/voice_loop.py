"""The spoken conversation: microphone -> voice activity -> Whisper -> SpikingBrain -> voice -> speaker, overlapped.

Threads, each with one job, so that two cores are shared without one stage starving another:

- the sound link's own thread (or PortAudio's) captures frames and plays what is queued;
- the listener (``core.talk.listener``) reads the frames, runs the voice-activity detector (0.07 ms a frame) and
  the turn detector, and starts Whisper speculatively once the user has been silent for 64 ms (300 ms without
  Smart Turn);
- one hearing thread runs Whisper, speculative or final;
- the conversation (``run``'s caller) streams the reply from the language model (which decodes on a thread of
  its own) and cuts it into pieces to say;
- one voice thread (``core.talk.voice_thread``) synthesizes piece n+1 while piece n plays.

``run`` is an iterator of events (what was heard, reply text as it streams, a record of each turn: the types are in
``core.talk.events``) and the caller decides how to show them. Ctrl-C is ``interrupt()``: it stops what is going
on (a recording, a reply) and the conversation goes on.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from config.errors import TantraError
from core.language.grounding import VOICE_SYSTEM
from core.memory.chat_log import ImageRecord
from core.runtime.decoding_pause import decoding_paused
from core.talk.barge_in_hold import BargeInHold
from core.talk.draft import Draft
from core.talk.events import Event, Heard, Note, ReplyText, Roles, TurnDone, TurnRecord, VoiceOptions
from core.talk.heard_filter import is_echo, is_noise
from core.talk.listener import InputLost, Listener, ReadAhead
from core.talk.spoken_reply import ReplyPieces, heard_part
from core.talk.turns import Ended, Speculate, TurnDetector, Utterance
from core.talk.voice_thread import VoiceThread
from core.talk.wake_word import listening_chime, strip_wake_word

VOICE_SYSTEM_PROMPT = VOICE_SYSTEM
"""Short spoken answers that use the facts a turn is given (``core.language.grounding``)."""
ECHO_AFTER_PAUSE = 0.32  # seconds of speech after a barge-in paused the voice that a loudspeaker's echo never has
ECHO_BURST_SECONDS = 0.67  # ... nor this much speech in all (pre-roll included) when it passes for a barge-in
LOUDER_THAN_ROOM_FRAMES = 3  # ... unless this many of its frames were louder than the echo would be uncancelled
ECHO_REACH = 1.0  # seconds after Tantra's voice falls quiet that the room may still bring it back (reverberation)
FIRST_SOUND_WAIT = 0.5  # seconds the local model's decoding waits at most for a reply's first audio to be made


@dataclass(frozen=True)
class _Typed:
    text: str


@dataclass(frozen=True)
class _HeardTurn:
    """A barge-in that was words: its turn, already transcribed (when the reply it stopped was held)."""

    utterance: Utterance
    text: str
    transcribed: float


class VoiceLoop:
    def __init__(self, link, vad: Callable[[np.ndarray], float], options: VoiceOptions = VoiceOptions()) -> None:
        """``link``: a ``core.talk.sound_io.AudioLink``; ``vad``: frame -> probability of speech."""
        self.link, self.options = link, options
        self.canceller = options.echo_canceller
        turns = options.turns
        if self.canceller is not None:
            turns = replace(turns, barge_in_probability=turns.cancelled_barge_in_probability)
        self.detector = TurnDetector(turns)
        self.replying = threading.Event()
        self._stop_reply = threading.Event()
        self._quit = threading.Event()
        self._turns: queue.Queue = queue.Queue()
        self._roles: Roles | None = None
        self._hearing = ThreadPoolExecutor(1, thread_name_prefix="tantra-hear")
        self._voice: VoiceThread | None = None
        self._said: deque[tuple[float, str]] = deque()  # (when, text) of what Tantra said
        self._images: list[tuple[str, str]] = []  # (path, what it shows) for the next turn
        self._turn = 0
        self._hold = BargeInHold(link.playback, self.replying, link.clock)
        """A barge-in holds the reply, its voice paused, until the turn that made it is heard (``_settle_hold``)."""
        self.listener = Listener(link, vad, options, self.detector, self._turns, self.replying, self._hold,
                                 images_waiting=lambda: bool(self._images), going_on=self._user_goes_on)  # fmt: skip
        self.full_duplex = self.listener.full_duplex
        """The microphone is heard while Tantra speaks: headphones, or an echo canceller on loudspeakers."""
        self.barge_ins = self.listener.barge_ins
        """The sound link's clock at each barge-in decision (the benchmark times the silence that follows)."""
        self.resumed: list[str] = []
        """Why each barge-in was not one (Tantra's own voice, noise): the reply it held went on."""
        self._answering_spoken = False  # a spoken turn's answer has begun (its words are known)
        self._went_on = False  # the user went on with it before its answer made a sound (``_user_goes_on``)
        self._went_on_from: np.ndarray | None = None  # ... and its audio comes before the next turn's
        if self.canceller is not None:
            self.canceller.attach(link.playback, link.output_rate)

    # ---- control, from any thread --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start listening (speech before the models are ready is kept and answered once they are)."""
        self.listener.start()

    def interrupt(self) -> str:
        """Ctrl-C or a key: stop the reply, or drop the recording; returns which ("reply", "recording", "")."""
        if self.replying.is_set():
            self._stop_speaking()
            return "reply"
        if self.detector.in_turn or self.listener.recording is not None:
            self.listener.drop_recording.set()
            return "recording"
        return ""

    def _stop_speaking(self) -> None:
        """The reply stops: its model, its voice, and what is queued to play."""
        self._stop_reply.set()
        if self._voice is not None:
            self._voice.cancel()
        self.link.playback.clear()

    @property
    def loaded(self) -> bool:
        """The models are loaded: a turn said now is answered as soon as it ends, not once they are."""
        return self._voice is not None

    def idle(self) -> bool:
        """Nobody speaks and nothing is being answered or said."""
        voice_idle = self._voice is None or self._voice.idle()
        return (self._turns.empty() and not self.replying.is_set() and not self.detector.in_turn and voice_idle
                and not self.link.playback.busy)  # fmt: skip

    def quit(self) -> None:
        self._quit.set()
        self.listener.quit()
        self.interrupt()
        self._turns.put(None)

    def attach_image(self, path: Path, image: ImageRecord) -> None:
        """An image for the next turn: what it shows (``image.facts``) goes to the model with it."""
        self._images.append((str(path), image))

    def typed(self, text: str) -> None:
        """A typed turn (the REPL with the voice on): answered in order with the spoken ones, and spoken too."""
        self._turns.put(_Typed(text))

    @property
    def push_to_talk(self) -> bool:
        """Turns start and stop with ``talk`` alone, not with the voice."""
        return self.listener.push_to_talk

    @push_to_talk.setter
    def push_to_talk(self, on: bool) -> None:
        self.listener.push_to_talk = on

    def talk(self, pressed: bool) -> None:
        """Push-to-talk: start (True; it stops a reply) or stop (False) a turn."""
        if pressed:
            self.interrupt()
        self.listener.talk(pressed)

    # ---- the conversation --------------------------------------------------------------------------------------

    def run(self, load: Callable[[], Roles]) -> Iterator[Event]:
        """Listen, then answer every turn until the input ends (a stand-in file) or ``quit()``. ``load`` gives the
        models; speech heard while they load is answered once they are ready.

        A reply is drafted speculatively: after 300 ms of silence the turn is transcribed and the model starts
        answering into a buffer; when the silence reaches 600 ms the draft is kept (and spoken at once), and if
        the user speaks again it is thrown away and nothing of it reaches the conversation. With Smart Turn (the
        roles' ``end_of_turn``) every pause is drafted after 64 ms, and a complete-sounding turn kept after 300 ms."""
        self.start()
        self._roles = load()
        end_of_turn = self._roles.end_of_turn
        self.detector.end_of_turn = None if end_of_turn is None else self.listener.judge_end(end_of_turn)
        self._voice = VoiceThread(self._roles.speaker, self.link)
        draft: Draft | None = None
        try:
            while not self._quit.is_set():
                if draft is not None and draft.writing:
                    try:
                        item = self._turns.get_nowait()
                    except queue.Empty:
                        draft.write()  # one more token into the draft, then look at the queue again
                        continue
                else:
                    item = self._turns.get()
                if isinstance(item, ReadAhead):
                    if draft is None:
                        self._read_ahead()
                    continue
                if item is None or isinstance(item, InputLost):
                    if isinstance(item, InputLost):
                        yield Note(f"the microphone stopped: {item.reason}")
                    break
                if isinstance(item, Ended) and draft is not None and draft.matches(item.utterance):
                    draft, kept = None, draft
                    yield from self._answer(item.utterance, kept)
                    continue
                if draft is not None:
                    self._discard(draft)
                    draft = None
                if isinstance(item, Speculate):
                    draft = self._draft(item.utterance)
                    if draft.stream is not None and draft.text.endswith("?"):
                        self.detector.heard_a_question(item.utterance.voiced_frames)
                elif isinstance(item, Ended):
                    yield from self._answer(item.utterance, None)
                elif isinstance(item, _Typed):
                    yield from self._answer(None, self._draft(None, item.text))
                elif isinstance(item, _HeardTurn):
                    heard = (item.text, item.transcribed)
                    yield from self._answer(item.utterance, self._draft(item.utterance, heard=heard))
            self._wait_for_voice()
        finally:
            if draft is not None:
                self._discard(draft)
            self._voice.close()
            # Whisper's thread ends here, not at exit: CTranslate2 keeps per-thread state, and a thread still alive
            # when the interpreter exits aborts the process ("terminate called without an active exception").
            self._hearing.shutdown(wait=True, cancel_futures=True)

    def _read_ahead(self) -> None:
        """While the user speaks about a picture shown for this turn, the model reads what the turn's prompt will
        begin with (``ChatSession.read_ahead``): the end of the last reply and the picture's note, 40-60 tokens.

        Only then: other turns begin with a few tokens (about 0.02 s), and a prompt read in two parts makes the
        spiking model's greedy replies differ (its spike counts follow the rounding of each part's products; the
        plain network's are the same). With it on every turn, the loudspeaker barge-in benchmark stopped 8 and 11
        of 20 stories, against 14-19 in three runs without (docs/BENCHMARKS.md)."""
        try:
            self._roles.session.read_ahead([image for _, image in self._images])
        except (TantraError, RuntimeError):
            pass  # the turn's own prompt runs it again and says what is wrong

    def _wait_for_voice(self) -> None:
        """Until the last reply has been spoken (or stopped)."""
        while not self._quit.is_set() and not self._stop_reply.is_set():
            if self._voice.idle() and not self.link.playback.busy:
                return
            time.sleep(0.02)

    def _recently_said(self, since: float) -> str:
        while self._said and self._said[0][0] < since - self.options.echo_window:
            self._said.popleft()
        return " ".join(text for _, text in self._said)

    def _hear(self, audio: np.ndarray) -> tuple[str, float]:
        """What was said, and when the transcript was ready; Ctrl-C (or a barge-in) while Whisper works stops it."""
        future = self._hearing.submit(self._roles.hear, audio)
        while True:
            try:
                return future.result(timeout=0.05).strip(), self.link.clock()
            except TimeoutError:
                if self._stop_reply.is_set():
                    raise KeyboardInterrupt from None

    def _draft(self, utterance: Utterance | None, typed: str | None = None,
               heard: tuple[str, float] | None = None) -> Draft:  # fmt: skip
        """Transcribe ``utterance`` (unless it was: ``heard`` is its text and when) and, unless it is noise or an
        echo, start the reply to it (or to ``typed``). Where the user went on with the turn before it
        (``_user_goes_on``), the two are one turn, and read as one."""
        if typed is not None:
            draft = Draft(None, typed, self.link.clock(), clock=self.link.clock)
        else:
            audio = utterance.audio
            if self._went_on_from is not None and heard is None:
                audio = np.concatenate([self._went_on_from, audio])
            try:
                draft = Draft(utterance, *(heard or self._hear(audio)), clock=self.link.clock, audio=audio)
            except (TantraError, RuntimeError, ValueError) as error:  # a turn is lost, not the conversation
                return Draft(utterance, "", self.link.clock(), dropped=f"Whisper failed on that turn: {error}")
            if utterance.woken:
                draft.text = strip_wake_word(draft.text, self.options.wake.detector.spoken)
                if not draft.text:  # the word alone: the question comes next (the cue, once the turn is over)
                    draft.dropped, draft.wake_only = f"(heard {self.options.wake.detector.spoken!r}: listening)", True
                    return draft
            draft.dropped = self._not_a_turn(draft.text, utterance)
            if draft.dropped:
                return draft
        session = self._roles.session
        draft.images, self._images = self._images, []
        draft.mark = session.turn_mark()
        for _, image in draft.images:
            session.attach(image)
        draft.stream = session.ask(draft.text, source="typed" if typed is not None else "voice")
        return draft

    def _listening_cue(self) -> None:
        """A short rising chime: the wake word was heard, the next turn needs none."""
        self.listener.armed_until = self.link.clock() + self.options.follow_up_seconds
        self.link.playback.add(listening_chime(self.link.output_rate), tag=-1)

    def _not_a_turn(self, text: str, utterance: Utterance, saying: str = "") -> str:
        """Why a transcript is not the user talking to Tantra (a note to show), or "" when it is. ``saying``: what
        the reply being spoken has said so far."""
        if is_noise(text):
            return f"(not a question: {text!r})" if text else "(heard no words)"
        said = self._recently_said(utterance.last_voiced - utterance.seconds)
        if self._voice_could_be_in(utterance) and is_echo(text, f"{said} {saying}"):
            return f"(my own voice came back: {text!r}{self.listener.echo_report()})"
        return ""

    def _voice_could_be_in(self, utterance: Utterance) -> bool:
        """Whether Tantra's voice, or its echo, can be what started ``utterance``: it sounded less than ``ECHO_REACH``
        before the turn's speech began (0, unknown: it can). A question asked after a quiet moment is the user's even
        when it repeats the answer's words (in a barge-in benchmark "Tell me the story about a little robot." was
        dropped as an echo of "The story of a little robot is one...", said 20 s before)."""
        return utterance.began < self.link.playback.last_sound_at + ECHO_REACH

    def _settle_hold(self, tags: list[int]) -> Iterator[Event]:
        """Once the turn of a barge-in that holds the reply (``tags``: its pieces) has ended, the reply goes on
        where it paused if the turn was Tantra's own voice: speech that stopped with the voice (a real room's
        echo that the canceller let through as sure speech, misheard words and all), or words that are what it
        was saying, or a noise. Otherwise the reply stops and the turn is answered next, its transcript kept. (On
        loudspeakers a lone short word that ends as the voice pauses is taken for the echo too: say more.)"""
        held = self._hold.take()
        if held is None:
            return
        utterance, spoken_to = held
        playback = self.link.playback
        # On loudspeakers the echo stops with the voice; the user, who was not listening to stop, speaks on. (Measured
        # on PulseAudio: the echo's last voiced frame 0.06-0.25 s after the pause, a question's 0.39-0.47 s.) Or the
        # user had said much already: a short interruption whose first word alone decided nothing ("Wait," then
        # "that is enough." decided 1.0-1.2 s after it began) ends soon after the pause. In the stand-in room such
        # turns held 0.77-1.0 s of speech, the echo's bursts taken for barge-ins 0.32-0.58 s.
        # But the canceller sometimes lets the echo through for a moment, about as loud as the room makes it (the
        # stand-in room: bursts of 0.29-0.80 s of speech, at most 0.02-0.07 RMS; the user's turns 0.11-0.35), and
        # Whisper hears words in it that are not what Tantra said ("That sounds great, Jennifer."): the user's turn
        # has frames louder than the echo would be uncancelled, measured on the microphone before the canceller.
        spoke_on = utterance.last_voiced >= self._hold.paused_at + playback.latency + ECHO_AFTER_PAUSE
        said_for = utterance.voiced_seconds
        start = utterance.last_voiced - utterance.seconds
        loud = (self.canceller is None
                or self.listener.frames_louder_than_room(start, utterance.last_voiced) >= LOUDER_THAN_ROOM_FRAMES)
        if self.options.barge_in != "on" and not spoke_on and (said_for < ECHO_BURST_SECONDS or not loud):
            quiet = "" if loud else ", no louder than the echo uncancelled"
            yield from self._resume(f"(nothing was said once my voice paused: {said_for:.2f} s of speech{quiet}"
                                    f"{self.listener.echo_report()})")
            return
        try:
            text, transcribed = self._hear(utterance.audio)
        except KeyboardInterrupt:  # Ctrl-C stops the reply; the turn is still answered (``_answer``'s release)
            self._hold.put_back(held)
            raise
        saying = " ".join(self._voice.said[tag] for tag in tags if tag in playback.played and
                          playback.played[tag].samples)  # fmt: skip
        why = self._not_a_turn(text, utterance, saying)
        if why:
            yield from self._resume(why + (self.listener.echo_report() if is_noise(text) else ""))
            return
        self.interrupt()
        if spoken_to:
            self._turns.put(_HeardTurn(utterance, text, transcribed))

    def _user_goes_on(self) -> bool:
        """The user goes on speaking before the answer made a sound (the listener's thread): a pause after a whole
        sentence ("I am planning a trip to Paris with my children." ... "We only have three days. Which museums
        should we see?") ended their turn too soon. The answer stops unheard, ``_answer_turn`` takes it back, and
        the next turn is read with this one's audio before it (``_draft``). False when no spoken turn's answer
        has begun (its words are still being read): a barge-in then."""
        if not self.replying.is_set() or not self._answering_spoken:
            return False
        self._went_on = True
        self._stop_speaking()
        return True

    def _resume(self, why: str) -> Iterator[Event]:
        """A held reply goes on: it was no barge-in."""
        self.resumed.append(why)
        yield Note(f"not a barge-in, the reply goes on: {why}")
        self._hold.resume()

    def _discard(self, draft: Draft) -> None:
        """The user went on speaking: the draft never happened."""
        if draft.stream is None:
            return
        draft.stream.close()
        session = self._roles.session
        session.retract(draft.mark)
        self._images = draft.images + self._images

    def _answer(self, utterance: Utterance | None, draft: Draft | None) -> Iterator[Event]:
        self._stop_reply.clear()
        self._went_on = False
        self.replying.set()
        try:
            yield from self._answer_turn(utterance, draft)
        except KeyboardInterrupt:
            if draft is not None and draft.stream is not None:
                draft.stream.close()
            yield Note("stopped")
        finally:
            self._answering_spoken = False
            self.replying.clear()
            self._stop_reply.clear()
            held = self._hold.release()  # a barge-in's turn held for the reply is now a turn like any other
            if held is not None and held[1]:
                self._turns.put(Ended(held[0]))

    def _answer_turn(self, utterance: Utterance | None, draft: Draft | None) -> Iterator[Event]:
        """Answer a spoken turn (``utterance``, perhaps already drafted) or a typed one (``draft`` alone)."""
        voice, playback = self._voice, self.link.playback
        if utterance is not None and utterance.cut:
            yield Note(f"your turn was cut at {self.options.turns.longest_seconds:.0f} s; go on in the next one")
        draft = draft or self._draft(utterance)
        end = utterance.last_voiced if utterance is not None else draft.transcribed
        if draft.dropped:
            if draft.wake_only:
                self._listening_cue()
            yield Note(draft.dropped)
            return
        self._turn += 1
        self._answering_spoken = utterance is not None
        self._went_on_from = None  # (it was read with this turn)
        yield Heard(self._turn, draft.text, typed=utterance is None)
        latency: dict[str, float | None] = {"transcribed": draft.transcribed - end, "first_token": None,
                                            "first_sentence": None, "first_audio": None}  # fmt: skip
        pieces, tags, reply = ReplyPieces(), [], ""
        base = self._turn * 10_000  # tags of this turn's pieces: unique in the playback queue's record

        def say(piece: str) -> None:
            tags.append(base + len(tags))
            if latency["first_sentence"] is not None:
                voice.say(tags[-1], piece)
                return
            latency["first_sentence"] = self.link.clock() - end
            with decoding_paused():  # the first audio is what the user waits for: the model catches up as it plays
                voice.say(tags[-1], piece)
                voice.wait_for_sound(tags[-1], FIRST_SOUND_WAIT)

        try:
            for token in draft.tokens_then_rest():
                if latency["first_token"] is None:
                    latency["first_token"] = draft.first_token_at - end
                reply += token
                yield ReplyText(token)
                for piece in pieces.feed(token):
                    say(piece)
                yield from self._settle_hold(tags)
                if self._stop_reply.is_set():
                    break
            else:
                for piece in pieces.finish():
                    say(piece)
        finally:
            draft.stream.close()
        while not self._stop_reply.is_set() and not (voice.idle() and not playback.busy):
            yield from self._settle_hold(tags)
            time.sleep(0.01)
        interrupted = self._stop_reply.is_set()
        if self._went_on:  # the user went on speaking before hearing anything: the next turn is this one, asked whole
            self._discard(draft)  # (its images go with the next turn)
            self._went_on_from = draft.audio
            yield TurnDone(TurnRecord(self._turn, draft.text, "", True, [], {name: None for name in latency},
                                      went_on=True))  # fmt: skip
            return
        if draft.failure:
            yield Note(f"no answer: {draft.failure}")
        if voice.failure:
            yield Note(f"the voice failed: {voice.failure}")
            voice.failure = None
        heard = self._heard(tags, voice) if interrupted else reply.strip()
        if interrupted:
            self._roles.session.keep_heard(heard)  # it remembers what was heard
        for tag in tags:
            if tag in playback.played:
                self._said.append((self.link.clock(), voice.said[tag]))
        first = playback.played.get(tags[0]) if tags else None
        if first is not None and first.first_at is not None:
            latency["first_audio"] = first.first_at - end
        latency = {name: None if value is None else round(value, 3) for name, value in latency.items()}
        images = [path for path, _ in draft.images]
        self.listener.armed_until = self.link.clock() + self.options.follow_up_seconds  # a follow-up needs no wake word
        yield TurnDone(TurnRecord(self._turn, draft.text, heard, interrupted, images, latency))

    def _heard(self, tags: list[int], voice: VoiceThread) -> str:
        """The reply as far as it played: whole pieces, then the played share of the piece that was cut."""
        parts = []
        for tag in tags:
            played = self.link.playback.played.get(tag)
            if played is None or not played.samples:
                break
            parts.append(heard_part(voice.said[tag], played.samples / max(played.total, 1)))
        return " ".join(part for part in parts if part)
