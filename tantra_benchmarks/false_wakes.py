"""``tantra bench wake``: false wakes over long speech without any wake word. Sentences of the project's README and
benchmark notes (their prose: no tables, code or headings, and none that names a wake word) are said by the store's
Piper voice until the minutes asked for are reached, then streamed through each real detector in 80 ms pieces; a wake
is counted once per 2 s, as the voice loop would start one turn."""

from __future__ import annotations

import re
import time

import numpy as np

from config.settings import Settings
from tantra_benchmarks.common import ROOT, model_loader

PIECE = 1280  # samples: what the detector reads at a time (80 ms)


def _sentences() -> list[str]:
    from core.voice.speech_text import sentences

    text = "\n".join((ROOT / name).read_text() for name in ("README.md", "docs/BENCHMARKS.md"))
    lines = [line for line in text.splitlines() if line and not line.startswith(("|", "```", "#", "    ", "{"))]
    prose = re.sub(r"`[^`]*`", " ", " ".join(lines))
    named = ("jarvis", "alexa", "mycroft", "rhasspy", "nabu")
    return [s for s in sentences(prose) if 4 <= len(s.split()) <= 40 and not any(w in s.lower() for w in named)]


def bench_false_wakes(settings: Settings, minutes: float, words: tuple[str, ...]) -> dict:
    import soxr

    from core.talk.wake_word import WakeWord
    from core.voice.speaker import Speaker

    speaker = Speaker(model_loader(settings).load_speaker("piper"))
    pieces, seconds, said = [], 0.0, 0
    for sentence in _sentences():
        chunks = list(speaker.synthesize(sentence))
        audio = np.concatenate([chunk.samples for chunk in chunks])
        pieces += [soxr.resample(audio, chunks[0].sample_rate, 16000).astype(np.float32), np.zeros(4800, np.float32)]
        seconds, said = seconds + len(pieces[-2]) / 16000 + 0.3, said + 1
        if seconds >= minutes * 60:
            break
    speech = np.concatenate(pieces)
    result: dict = {"speech_minutes": round(len(speech) / 16000 / 60, 1), "sentences": said, "words": {}}
    for name in words:
        detector, wakes, last = WakeWord(name), [], -10.0
        start = time.process_time()
        for at in range(0, len(speech) - PIECE + 1, PIECE):
            if detector.heard(speech[at : at + PIECE]) and at / 16000 - last > 2.0:
                last = at / 16000
                wakes.append(round(last, 1))
        cpu = time.process_time() - start
        result["words"][name] = {"false_wakes": len(wakes), "at_s": wakes,
                                 "cpu_share_of_real_time": round(cpu / (len(speech) / 16000), 3)}  # fmt: skip
    return result
