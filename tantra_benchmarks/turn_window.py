"""Part of ``tantra bench transcribe``: a spoken turn read in a window cut to it (``transcribe_turn``, what the voice
loop hears with) against Whisper's usual 30 s window, on the same clips in one run: word error rate and seconds.

The clips are the voice benchmark's twelve questions and the sentences of ``samples/prose.txt``, said by the store's
Piper voice, and the first eighteen of them again by espeak-ng where it is installed (a robotic voice, harder), each
with half a second of silence before and 128 ms after, as the voice loop hands a turn over."""

from __future__ import annotations

import io
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable

import numpy as np

from config.settings import Settings
from tantra_benchmarks.common import model_loader, prose_text

BEFORE, AFTER = 8000, 2048  # samples of silence around each clip


def _words(text: str) -> list[str]:
    from tantra_benchmarks.voice import _plain

    return _plain(text).replace("colour", "color").split()


def word_errors(reference: str, hypothesis: str) -> int:
    """Substitutions, insertions and deletions that turn ``reference`` into ``hypothesis`` (words, case and
    punctuation aside)."""
    ref, hyp = _words(reference), _words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diagonal, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ref[i - 1] != hyp[j - 1]))
    return row[-1]


def _voices(loader) -> list[Callable[[str], np.ndarray]]:
    """text -> 16 kHz audio: the store's Piper voice, then espeak-ng where it is installed (robotic, harder)."""
    from core.voice.speaker import Speaker
    from tantra_benchmarks.voice import _spoken

    speaker = Speaker(loader.load_speaker("piper"))
    voices = [lambda text: _spoken(speaker, text)]
    espeak = shutil.which("espeak-ng")
    if espeak:

        def robot(text: str) -> np.ndarray:
            import soundfile
            import soxr

            wav = subprocess.run([espeak, "--stdout", text], capture_output=True, check=True).stdout
            audio, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
            return soxr.resample(audio, rate, 16000).astype(np.float32)

        voices.append(robot)
    return voices


def _clips(loader) -> list[tuple[str, np.ndarray]]:
    from core.voice.speech_text import sentences as split_sentences
    from tantra_benchmarks.voice import QUESTIONS

    sentences = [s for s in split_sentences(prose_text()) if 3 < len(s.split()) < 30][:24]
    texts = [*QUESTIONS, *sentences]
    piper, *others = _voices(loader)
    return [(text, piper(text)) for text in texts] + [(text, say(text)) for say in others for text in texts[:18]]


def bench_turn_window(settings: Settings) -> dict:
    from core.hearing.transcriber import TranscribeOptions, spoken_text

    loader = model_loader(settings)
    whisper = loader.load_whisper()
    options = TranscribeOptions(beam_size=loader.beam_size)
    ways = {"whisper_30s_window": lambda audio: spoken_text(whisper.transcribe_block(audio, options)[1]),
            "turn_window": lambda audio: whisper.transcribe_turn(audio, options)}  # fmt: skip
    clips = [(text, np.concatenate([np.zeros(BEFORE, np.float32), audio, np.zeros(AFTER, np.float32)]))
             for text, audio in _clips(loader)]  # fmt: skip
    words = sum(len(_words(text)) for text, _ in clips)
    result: dict = {"clips": len(clips), "words": words, "beam_size": options.beam_size}
    heard = {}
    for name, hear in ways.items():
        hear(clips[0][1])  # warm-up
        seconds, errors, heard[name] = [], 0, []
        for text, audio in clips:
            start = time.perf_counter()
            said = hear(audio)
            seconds.append(time.perf_counter() - start)
            said = "" if said is None else said  # declined: the voice loop would read it the usual way
            errors += word_errors(text, said)
            heard[name].append(said)
        result[name] = {"wer": round(errors / words, 4), "median_s": round(statistics.median(seconds), 3),
                        "mean_s": round(statistics.fmean(seconds), 3)}  # fmt: skip
    result["speedup"] = round(result["whisper_30s_window"]["median_s"] / result["turn_window"]["median_s"], 2)
    result["different_words"] = [
        {"said": text, "30s": a, "turn": b}
        for (text, _), a, b in zip(clips, heard["whisper_30s_window"], heard["turn_window"])
        if _words(a) != _words(b)
    ]  # fmt: skip
    return result
