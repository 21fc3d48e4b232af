"""``tantra bench voice``: the spoken conversation's latency, end of speech -> first audio, stage by stage.

Questions are spoken by the store's Piper voice and played into the stand-in microphone at real time, one at a time,
each once the previous answer has been spoken (as a person waits); the stand-in speaker keeps the true timeline.
The same run measures the defaults and ``--low-resource``, long answers, long turns said with pauses, barge-ins,
the idle cost of listening, and the peak memory with all four roles resident (the first question comes with a photo).
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from config.settings import Settings
from core.talk.stand_in_audio import MicSource
from tantra_benchmarks.common import model_loader

QUESTIONS = (
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What colour is the sky on a clear day?",
    "Can you name a fruit that is yellow?",
    "What do bees make?",
    "Why do we need sleep?",
    "What is two plus two?",
    "Tell me something about the moon.",
    "Which animal is known as the king of the jungle?",
    "What should I cook for dinner tonight?",
    "Where does rain come from?",
    "What is the largest ocean on Earth?",
)
LONG_ASKS = (
    ("I am planning a trip to Paris next spring with my two children.", "We would like to see the museums,",
     "but we only have three days.", "Which ones should we visit first?"),
    ("My tomato plants have yellow leaves at the bottom,", "and some of the fruit has black spots.",
     "I water them every evening.", "What am I doing wrong?"),
    ("I want to start running in the mornings before work.", "I have not exercised for about two years,",
     "and my knees sometimes hurt.", "How should I begin?"),
)
"""Long turns, said clause by clause with ``LONG_PAUSE`` between clauses: how much is left to transcribe at the end."""
LONG_PAUSE = 0.25  # seconds: inside a turn even where Smart Turn finds the sentence before complete (it ends at 0.3 s)
STAGES = ("transcribed", "first_token", "first_sentence", "first_audio")
MAX_TOKENS = 60  # a voice reply is a few sentences; the voice system prompt asks for that too


def _spoken(speaker, text: str) -> np.ndarray:
    """``text`` said by ``speaker``, at 16 kHz: the user's side of the conversation."""
    import soxr

    chunks = list(speaker.synthesize(text))
    audio = np.concatenate([chunk.samples for chunk in chunks])
    return soxr.resample(audio, chunks[0].sample_rate, 16000).astype(np.float32)


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9 ]", " ", text.lower()).split())


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))], 3)


def _long_turn(speaker, clauses: tuple[str, ...]) -> np.ndarray:
    pause = np.zeros(round(LONG_PAUSE * 16000), np.float32)
    return np.concatenate([part for clause in clauses for part in (_spoken(speaker, clause), pause)][:-1])


def _long_summary(records: list) -> dict:
    """``_summary`` of the long turns, with the share of their words heard wrong (a long turn is rarely heard word
    for word) and what was heard. More turns than asks: a pause ended one too soon, and the answer had sounded
    before the user went on (the rest was another turn)."""
    from tantra_benchmarks.turn_window import _words, word_errors

    asked = tuple(" ".join(clauses) for clauses in LONG_ASKS)
    heard = [record.heard for record in records if not record.went_on]
    # All asks against all turns heard: a turn split in two (the answer sounded before the user went on) loses no
    # words, and one lost does
    errors = word_errors(" ".join(asked), " ".join(heard))
    return {**_summary(records, asked), "word_error_rate": round(errors / len(_words(" ".join(asked))), 4),
            "heard": heard}


def _summary(records: list, asked: tuple[str, ...] = QUESTIONS) -> dict:
    went_on = sum(record.went_on for record in records)  # a pause ended a turn too soon: the next is the whole of it
    records = [record for record in records if not record.went_on]
    stages = {}
    for stage in STAGES:
        values = [r.latency[stage] for r in records if r.latency[stage] is not None]
        stages[stage] = {"p50_s": _percentile(values, 0.5), "p95_s": _percentile(values, 0.95),
                         "mean_s": round(statistics.fmean(values), 3) if values else None}  # fmt: skip
    return {"turns": len(records), "went_on": went_on, "latency": stages,
            "first_audio_each_s": [r.latency["first_audio"] for r in records],
            "turns_heard_right": sum(r.heard.rstrip(".?!").lower() == q.rstrip(".?!").lower()
                                     for r, q in zip(records, asked))}  # fmt: skip


def _turns(loader, loop, system: str, describer=None, model: str | None = None) -> list:
    """Run ``loop`` to the end of its stand-in microphone with greedy answers from ``model`` (a name or directory,
    as ``tantra chat -m`` takes; the default model when None); the records of its turns."""
    from core.language.chat_session import ChatSession
    from core.language.conversation import SamplingOptions
    from core.talk.events import TurnDone
    from core.talk.start import VoiceRequest, load_roles

    def session():
        loaded = loader.load_spikingbrain(model=model)
        options = SamplingOptions(temperature=0.0, max_tokens=MAX_TOKENS, seed=0)
        return ChatSession.of(loaded, options, system, describer=describer)

    events = loop.run(lambda: load_roles(loader, session, VoiceRequest()))
    records = [event.record for event in events if isinstance(event, TurnDone)]
    loop.link.close()
    return records


def _conversation(settings: Settings, clips: list[np.ndarray], photo: Path | None, loudspeakers: bool = False,
                  model: str | None = None, system: str | None = None, cancel_echo: bool = False):
    """One voice session over ``clips`` (the first with ``photo``); the records of its turns, and the loop. With
    ``loudspeakers``: the stand-in room's echo, and the echo canceller (barge-in auto, so the user could talk
    over it: nobody does, and an answer that stops itself is a self-interruption). With ``cancel_echo``: the
    canceller in a room without echo (``tantra chat``'s default; the other runs are half-duplex, as without it)."""
    from core.language.chat_images import image_record
    from core.talk.echo_canceller import EchoCanceller
    from core.talk.events import VoiceOptions
    from core.talk.stand_in_audio import Room, ScriptedSource, StandInAudio
    from core.talk.vad import SileroVad
    from core.talk.voice_loop import VOICE_SYSTEM_PROMPT, VoiceLoop
    from core.vision.describer import ImageDescriber

    loader = model_loader(settings)
    describer = ImageDescriber(loader)
    holder = {}
    # The first question waits for the models, as a person waits for the prompt: its latency is not the loading's.
    source = ScriptedSource(clips, ready=lambda: "loop" in holder and holder["loop"].loaded and holder["loop"].idle(),
                            pause=1.0)  # fmt: skip
    room = Room(**LOUDSPEAKERS) if loudspeakers else None
    options = VoiceOptions(echo_canceller=EchoCanceller()) if loudspeakers or cancel_echo else VoiceOptions()
    loop = holder["loop"] = VoiceLoop(StandInAudio(source, 22050, room=room), SileroVad(), options)
    if photo is not None:
        loop.attach_image(photo, image_record(describer, photo))
    return _turns(loader, loop, system or VOICE_SYSTEM_PROMPT, describer, model), loop


def _idle_cpu(settings: Settings, seconds: float = 10.0) -> float:
    """Share of one core used while listening to silence (the microphone, the detector, nothing else)."""
    from core.talk.stand_in_audio import RecordingSource, StandInAudio
    from core.talk.vad import SileroVad
    from core.talk.voice_loop import VoiceLoop

    link = StandInAudio(RecordingSource(np.zeros(int(16000 * (seconds + 2)), np.float32)), 22050)
    loop = VoiceLoop(link, SileroVad())
    loop.start()
    time.sleep(1.0)
    before, start = time.process_time(), time.perf_counter()  # the process's CPU time, user and system: portable
    time.sleep(seconds)
    used, wall = time.process_time() - before, time.perf_counter() - start
    loop.quit()
    link.close()
    return round(used / wall, 4)


INTERRUPTIONS = ("Stop. Tell me about cats instead.", "Wait, that is enough.", "No, let me ask something else.")
STORY_ASKS = ("Tell me a long story about a dragon.", "Tell me a story about a lighthouse keeper.",
              "Tell me a long story about a fox in the forest.", "Tell me a story about a little robot.")
STORYTELLER = "You tell very long and detailed stories."
"""What the barge-ins interrupt: answers that outlast the interruption 1 s into them, whatever the model. Everyday
questions got answers of one short sentence ("Bees make honey."), over before a barge-in could be decided, so a
try measured the model's brevity (1 of 3 once, with 4-bit weights, against 3 of 3 with INT8)."""


DECIDING_SECONDS = 1.2
"""The longest a barge-in took to be decided, from the start of the interruption, in the 20-try runs: a first word
too short to count ("Wait,"), then 300 ms of sure speech."""


class _Interrupter(MicSource):
    """A stand-in microphone for barge-ins: a question, then an interruption 1 s after the answer's first audio,
    then the next question once the assistant is quiet."""

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.pairs, self.loop, self.link = list(pairs), None, None
        self._clip, self._state, self._quiet = None, "question", 0
        self._earlier: set[int] = set()  # pieces played before the current question
        self.not_made = 0  # tries whose answer was over (or never came) before it could be interrupted
        self.over_first = 0
        """Tries whose answer ended by itself less than ``DECIDING_SECONDS`` into the interruption, no barge-in
        decided: there was nothing left to talk over, and the interruption was the next turn."""
        self._interrupted_at: float | None = None  # while an interruption may still be decided
        self._decided_before = 0

    def read(self, count: int) -> np.ndarray | None:
        from core.talk.stand_in_audio import RecordingSource

        if self._interrupted_at is not None:
            self._watch_interruption()
        if self._clip is not None:
            piece = self._clip.read(count)
            if piece is not None:
                return piece
            self._clip = None
        silence = np.zeros(count, dtype=np.float32)
        quiet = self.loop is not None and self.loop.loaded and self.loop.idle()
        self._quiet = self._quiet + 1 if quiet else 0
        if self._state == "question":
            if not self.pairs:
                return None
            if self._quiet * count >= 16000:  # a second of quiet
                self._clip, self._state = RecordingSource(self.pairs[0][0]), "answer"
                self._earlier = set(self.link.playback.played)
                self._quiet = 0
        elif self._state == "answer" and self._quiet * count >= 3 * 16000:  # no answer to interrupt: the next try
            self.pairs.pop(0)
            self._state, self.not_made = "question", self.not_made + 1
        elif self._state == "answer":
            played = self.link.playback.played
            started = [played[tag].first_at for tag in set(played) - self._earlier if played[tag].first_at is not None]
            first = min(started, default=None)
            if first is not None and self.link.clock() - first >= 1.0 and self.link.playback.busy:
                self._clip, self._state = RecordingSource(self.pairs.pop(0)[1]), "question"
                self._quiet = 0
                self._interrupted_at, self._decided_before = self.link.clock(), len(self.loop.barge_ins)
        return silence

    def _watch_interruption(self) -> None:
        decided = len(self.loop.barge_ins) > self._decided_before
        if decided or self.link.clock() - self._interrupted_at > DECIDING_SECONDS:
            self._interrupted_at = None  # decided, or the answer outlasted the time a decision takes: a try
        elif not self.loop.replying.is_set():
            self.over_first, self._interrupted_at = self.over_first + 1, None


LOUDSPEAKERS = dict(gain_db=-10.0, delay=0.08)
"""The stand-in room of the loudspeaker runs: Tantra's voice comes back 10 dB quieter, 80 ms late."""


def _barge_ins(settings: Settings, speaker, loudspeakers: bool = False, tries: int = 3,
               model: str | None = None) -> dict:
    """Answers interrupted by the user 1 s after their first audio: from the decision to stop (300 ms of sure
    speech) to the speaker's silence, and from the start of the interrupting speech. Headphones (barge-in on, no
    echo), or ``loudspeakers``: the stand-in room's echo, barge-in auto with the echo canceller."""
    from core.talk.echo_canceller import EchoCanceller
    from core.talk.events import VoiceOptions
    from core.talk.stand_in_audio import Room, StandInAudio
    from core.talk.vad import SileroVad
    from core.talk.voice_loop import VoiceLoop

    asked = [(STORY_ASKS[n % len(STORY_ASKS)], INTERRUPTIONS[n % len(INTERRUPTIONS)]) for n in range(tries)]
    pairs = [(_spoken(speaker, question), _spoken(speaker, interruption)) for question, interruption in asked]
    source = _Interrupter(pairs)
    link = StandInAudio(source, 22050, room=Room(**LOUDSPEAKERS) if loudspeakers else None)
    options = VoiceOptions(barge_in="auto", echo_canceller=EchoCanceller()) if loudspeakers else VoiceOptions(
        barge_in="on")  # fmt: skip
    loop = VoiceLoop(link, SileroVad(), options)
    source.loop, source.link = loop, link
    records = _turns(model_loader(settings), loop, STORYTELLER, model=model)
    stops = [silent - decided for decided, silent in zip(loop.barge_ins, link.playback.silenced_at)]
    return {
        "tries": len(pairs),
        "tries_not_made": source.not_made,
        "answers_over_first": source.over_first,  # nothing left to talk over: an interruption can only be a turn
        "barge_ins": len(loop.barge_ins),
        "interrupted_turns": sum(r.interrupted for r in records),
        "resumed": len(loop.resumed),  # barge-ins heard as Tantra's own voice or noise: the answer went on
        "resumed_why": list(loop.resumed),
        "heard": [r.heard for r in records],
        # An interruption heard as a turn: whole, or in part (its first word can go to the 300 ms that decide it).
        "interruptions_heard_whole": sum(_plain(r.heard) in {_plain(i) for i in INTERRUPTIONS} for r in records),
        "interruptions_heard_in_part": sum(bool(_plain(r.heard)) and any(
            f" {_plain(r.heard)} " in f" {_plain(i)} " for i in INTERRUPTIONS) for r in records),  # fmt: skip
        "echo_cancelled_db": loop.canceller.cancellation_db if loop.canceller else None,
        "stop_after_decision_s": {"max": round(max(stops), 3) if stops else None,
                                  "p50": _percentile(stops, 0.5)},  # fmt: skip
        "decision_needs_s": 0.3,  # of speech at probability >= 0.8: the interrupting speech starts this much earlier
    }


def _peak_rss(settings: Settings, clip: np.ndarray, photo: Path, folder: Path, model: str | None = None) -> int:
    """Peak resident memory (MB) of ``tantra chat --voice`` as a user runs it, with all four roles loaded: a spoken
    question about a photo (Whisper, SpikingBrain, the classifier and OCR, the voice), in a process of its own."""
    import soundfile

    from tantra_benchmarks.common import TANTRA, measure_child, tantra_env

    question = folder / "question.wav"
    soundfile.write(question, np.concatenate([np.zeros(8000, np.float32), clip]), 16000)
    command = [*TANTRA, "chat", "--mic-file", str(question), "-i", str(photo), "--json", "-t", "0", "-n", "40",
               *(["-m", model] if model else [])]
    run = measure_child(command, tantra_env(settings))
    if run.code != 0:
        raise RuntimeError(f"tantra chat --mic-file failed with exit code {run.code}")
    return run.peak_rss_mb


def bench_voice(settings: Settings, photo: Path | None = None, turns: int = 10, barge_ins: int = 3,
                model: str | None = None) -> dict:
    """Every measurement of ``tantra bench voice``, with ``model`` answering (the default model when None)."""
    from tantra_benchmarks.describe import _photos

    loader = model_loader(settings)
    user_voice = loader.load_speaker("piper")
    from core.voice.speaker import Speaker

    clips = [_spoken(Speaker(user_voice), question) for question in QUESTIONS[:turns]]
    story_clips = [_spoken(Speaker(user_voice), ask) for ask in STORY_ASKS]
    long_clips = [_long_turn(Speaker(user_voice), clauses) for clauses in LONG_ASKS]
    with tempfile.TemporaryDirectory() as folder:
        photo = photo or _photos(Path(folder))[0]
        records, _ = _conversation(replace(settings, low_resource=False), clips, photo, model=model)
        peak_rss = _peak_rss(settings, clips[0], photo, Path(folder), model)
        light, _ = _conversation(replace(settings, low_resource=True), clips, None, model=model)
        # The same defaults with silence alone deciding the end of a turn: what Smart Turn changes, side by side.
        silence_only, _ = _conversation(replace(settings, low_resource=False, end_of_turn="silence"), clips, photo,
                                        model=model)  # fmt: skip
        # Long answers: their first piece is voiced while the model still has most of the reply to write.
        stories, _ = _conversation(replace(settings, low_resource=False), story_clips, None, model=model,
                                   system=STORYTELLER)  # fmt: skip
    barge_in = _barge_ins(replace(settings, low_resource=False), Speaker(user_voice), tries=barge_ins, model=model)
    loud, loud_loop = _conversation(replace(settings, low_resource=False), clips, None, loudspeakers=True,
                                    model=model)  # fmt: skip
    loud_barge_in = _barge_ins(replace(settings, low_resource=False), Speaker(user_voice), loudspeakers=True,
                               tries=barge_ins, model=model)  # fmt: skip
    # Long turns, said with pauses: a pause after a whole sentence may end the turn before the user goes on. (Last:
    # in two of four runs with it before the loudspeaker runs, those cancelled 2-7 dB of the echo, not 60.)
    long_turns, _ = _conversation(replace(settings, low_resource=False), long_clips, None, model=model,
                                  cancel_echo=True)  # fmt: skip
    return {
        "utterances": len(clips),
        "model": model or "default",
        "defaults": _summary(records),
        "low_resource": _summary(light),
        "defaults_silence_end_of_turn": _summary(silence_only),
        "long_answers": _summary(stories, STORY_ASKS),
        "long_turns": _long_summary(long_turns),
        "replies": [{"heard": r.heard, "reply": r.reply} for r in records],
        "barge_in": barge_in,
        "loudspeakers": {
            "room": LOUDSPEAKERS,
            "conversation": _summary(loud),
            "self_interruptions": sum(r.interrupted for r in loud),
            # Barge-ins made of Tantra's own voice: the answer paused until they were heard, then went on.
            "false_barge_ins_resumed": len(loud_loop.resumed),
            "echo_cancelled_db": loud_loop.canceller.cancellation_db,
            "barge_in": loud_barge_in,
        },
        "idle_cpu_share_of_one_core": _idle_cpu(settings),
        "peak_rss_mb_all_four_roles": peak_rss,
        # Issue 23's latency targets (issue 11's were 1.2 / 2.0 / 0.9 s), and issue 11's others.
        "targets": {"defaults_p50_s": 0.6, "defaults_p95_s": 0.9, "low_resource_p50_s": 0.45, "rss_mb": 1200,
                    "idle_cpu": 0.10, "barge_in_stop_s": 0.2},  # fmt: skip
    }
