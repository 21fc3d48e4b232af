"""``tantra bench voice``: the spoken conversation's latency, end of speech -> first audio, stage by stage.

Questions are spoken by the store's Piper voice and played into the stand-in microphone at real time, one at a time,
each once the previous answer has been spoken (as a person waits); the stand-in speaker keeps the true timeline.
The same run measures the defaults and ``--low-resource``, a barge-in, the idle cost of listening, and the peak
memory with all four roles resident (the first question comes with a photo).
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from config.settings import Settings
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
STAGES = ("transcribed", "first_token", "first_sentence", "first_audio")
MAX_TOKENS = 60  # a voice reply is a few sentences; the voice system prompt asks for that too


def _spoken(speaker, text: str) -> np.ndarray:
    """``text`` said by ``speaker``, at 16 kHz: the user's side of the conversation."""
    import soxr

    chunks = list(speaker.synthesize(text))
    audio = np.concatenate([chunk.samples for chunk in chunks])
    return soxr.resample(audio, chunks[0].sample_rate, 16000).astype(np.float32)


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))], 3)


def _summary(records: list) -> dict:
    stages = {}
    for stage in STAGES:
        values = [r.latency[stage] for r in records if r.latency[stage] is not None]
        stages[stage] = {"p50_s": _percentile(values, 0.5), "p95_s": _percentile(values, 0.95),
                         "mean_s": round(statistics.fmean(values), 3) if values else None}  # fmt: skip
    return {"turns": len(records), "latency": stages,
            "turns_heard_right": sum(r.heard.rstrip(".?!").lower() == q.rstrip(".?!").lower()
                                     for r, q in zip(records, QUESTIONS))}  # fmt: skip


def _conversation(settings: Settings, clips: list[np.ndarray], photo: Path | None, barge_in: str = "auto"):
    """One voice session over ``clips``; returns the loop, its turn records and the stand-in link."""
    from core.chat_session import ChatSession
    from core.describer import ImageDescriber
    from core.language_model import SamplingOptions
    from core.voice_loop import VOICE_SYSTEM_PROMPT, TurnDone, VoiceLoop, VoiceOptions
    from encoders.stand_in_audio import ScriptedSource, StandInAudio
    from encoders.vad import SileroVad
    from tantra_cli.voice import VoiceRequest, load_roles

    loader = model_loader(settings)
    describer = ImageDescriber(loader)
    holder = {}
    source = ScriptedSource(clips, ready=lambda: "loop" in holder and holder["loop"].idle(), pause=1.0)
    link = StandInAudio(source, 22050)
    loop = VoiceLoop(link, SileroVad(), VoiceOptions(barge_in=barge_in))
    holder["loop"] = loop
    if photo is not None:
        loop.attach_image(photo, describer.note(photo))

    def session():
        loaded = loader.load_spikingbrain()
        options = SamplingOptions(temperature=0.0, max_tokens=MAX_TOKENS, seed=0)
        return ChatSession(loaded["model"], loaded["tokenizer"], options, VOICE_SYSTEM_PROMPT, loaded["name"],
                           describer)  # fmt: skip

    records = [event.record for event in loop.run(lambda: load_roles(loader, session, VoiceRequest()))
               if isinstance(event, TurnDone)]  # fmt: skip
    link.close()
    return loop, records


def _idle_cpu(settings: Settings, seconds: float = 10.0) -> float:
    """Share of one core used while listening to silence (the microphone, the detector, nothing else)."""
    from core.voice_loop import VoiceLoop
    from encoders.stand_in_audio import RecordingSource, StandInAudio
    from encoders.vad import SileroVad

    link = StandInAudio(RecordingSource(np.zeros(int(16000 * (seconds + 2)), np.float32)), 22050)
    loop = VoiceLoop(link, SileroVad())
    loop.start()
    time.sleep(1.0)
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    time.sleep(seconds)
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - start
    loop.quit()
    link.close()
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return round(used / wall, 4)


def bench_voice(settings: Settings, photo: Path | None = None, turns: int = 10) -> dict:
    from tantra_benchmarks.describe import _photos

    loader = model_loader(settings)
    user_voice = loader.load_speaker("piper")
    from encoders.speaker import Speaker

    clips = [_spoken(Speaker(user_voice), question) for question in QUESTIONS[:turns]]
    with tempfile.TemporaryDirectory() as folder:
        photo = photo or _photos(Path(folder))[0]
        loop, records = _conversation(replace(settings, low_resource=False), clips, photo)
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        _, light = _conversation(replace(settings, low_resource=True), clips, None)
    return {
        "utterances": len(clips),
        "defaults": _summary(records),
        "low_resource": _summary(light),
        "replies": [{"heard": r.heard, "reply": r.reply} for r in records],
        "idle_cpu_share_of_one_core": _idle_cpu(settings),
        "peak_rss_mb_all_four_roles": round(peak_rss),
        "targets": {"defaults_p50_s": 1.2, "defaults_p95_s": 2.0, "low_resource_p50_s": 0.9, "rss_mb": 1200,
                    "idle_cpu": 0.10, "barge_in_stop_s": 0.2},  # fmt: skip
    }
