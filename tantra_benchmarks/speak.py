"""``tantra bench speak``: time to first audio, real-time factor and memory of each speech backend, and of
``tantra speak`` against piper's own CLI on the same voice, in one run."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from config.model_config import MODEL_CONFIG, find_store_model
from config.settings import Settings
from core.runtime import model_store
from tantra_benchmarks.common import TANTRA, model_loader, prose_text, tantra_env
from tantra_benchmarks.peak_memory import wait_for_peak

REPLY = (
    "Paris is the capital of France. It has been the country's largest city for centuries, "
    "and it is known for its museums, its cafes and the Eiffel Tower. Would you like to know more about it?"
)
LONG_WORDS = 2000
WAV_HEADER = 44


def long_text() -> str:
    words, prose = [], prose_text().split()
    while len(words) < LONG_WORDS:
        words += prose
    return " ".join(words[:LONG_WORDS])


def _warm(speaker, text: str) -> dict:
    """Time to the first chunk and the real-time factor, the model already loaded."""
    start = time.perf_counter()
    first, audio = None, 0.0
    for chunk in speaker.synthesize(text):
        first = first if first is not None else time.perf_counter() - start
        audio += chunk.seconds
    total = time.perf_counter() - start
    return {"first_audio_s": round(first, 3), "rtf": round(total / audio, 4), "audio_s": round(audio, 1)}


def _cold(command: list[str], text: str, header: int, env: dict) -> dict:
    """A fresh process as a user runs it: text on stdin, audio on stdout. Seconds to the first audio bytes, to
    the end, and the process's peak resident memory."""
    start = time.perf_counter()
    child = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    child.stdin.write(text.encode())
    child.stdin.close()
    child.stdout.read(header + 1024)
    first = time.perf_counter() - start
    child.stdout.read()
    code, peak = wait_for_peak(child)
    if code != 0:
        raise RuntimeError(f"{command[:4]} failed")
    return {"first_audio_s": round(first, 3), "total_s": round(time.perf_counter() - start, 3), "peak_rss_mb": peak}


def bench_speak(settings: Settings, repeats: int = 3) -> dict:
    voice = find_store_model(MODEL_CONFIG.voice.voices["piper"])
    root = model_store.ensure(voice, settings)
    texts = {"reply_3_sentences": REPLY, f"text_{LONG_WORDS}_words": long_text()}
    env = tantra_env(settings)  # the children use this store
    # Cold processes first, while this one is still small (a forked child briefly counts its parent's pages).
    ours = [*TANTRA, "speak", "--backend", "piper", "-o", "-"]
    theirs = [sys.executable, "-m", "piper", "-m", str(root / "voice.onnx"), "--output-raw"]
    cold = {
        name: {"tantra speak": _cold(ours, text, WAV_HEADER, env), "piper CLI": _cold(theirs, text, 0, env)}
        for name, text in texts.items()
    }

    from core.voice.speaker import Speaker

    loader = model_loader(settings)
    warm = {}
    for backend in MODEL_CONFIG.voice.chain.entries:
        try:  # Coqui runs the same Piper voice through its own VITS code when its default voice cannot be had
            speaker = Speaker(loader.load_coqui_tts() if backend == "coqui" else loader.load_speaker(backend))
        except Exception as error:  # noqa: BLE001 - a backend that cannot run here is reported, not fatal
            warm[backend] = {"unavailable": str(error)}
            continue
        _warm(speaker, "Warm up.")
        runs = [_warm(speaker, REPLY) for _ in range(repeats)]
        reply = min(runs, key=lambda run: run["first_audio_s"]) | {
            "first_audio_s": statistics.median(r["first_audio_s"] for r in runs),
            "rtf": statistics.median(r["rtf"] for r in runs),
        }
        long = _warm(speaker, texts[f"text_{LONG_WORDS}_words"])
        warm[f"{backend} ({speaker.backend.voice})"] = {"reply_3_sentences": reply, f"text_{LONG_WORDS}_words": long}
    default = warm.get(f"piper ({voice.name.removeprefix('piper-')})", {})
    first_reply = default.get("reply_3_sentences", {}).get("first_audio_s", float("inf"))
    long_rtf = default.get(f"text_{LONG_WORDS}_words", {}).get("rtf", float("inf"))
    return {
        "voice": voice.name,
        "warm_in_process": warm,
        "cold_cli": cold,
        "targets": {
            "first_audio_under_0.3s_reply_default_voice": first_reply < 0.3,
            "rtf_at_most_0.06_default_voice": long_rtf <= 0.06,
            "resident_memory_under_300mb": max(run["tantra speak"]["peak_rss_mb"] for run in cold.values()) < 300,
        },
    }
