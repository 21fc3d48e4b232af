"""``tantra bench transcribe``: the real-time factor of each Whisper engine against openai-whisper's own
``transcribe()`` on the same converted weights, the cold start and peak memory of ``tantra`` commands, and a turn
read in a window cut to it (``tantra_benchmarks.turn_window``)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from config.model_config import MODEL_CONFIG, WHISPER_ENGINES
from config.settings import Settings
from core.hearing.audio_io import SAMPLE_RATE
from tantra_benchmarks.common import (
    ROOT,
    SPEECH,
    TANTRA,
    measure_child,
    median_seconds,
    model_loader,
    tantra_env,
)


def ten_second_clip(path: Path) -> Path:
    """The bundled sample, twice, with a second of silence after each: a 10 s clip of real speech."""
    import soundfile

    speech, rate = soundfile.read(SPEECH, dtype="float32")
    pause = np.zeros(rate, dtype=np.float32)
    clip = np.concatenate([speech, pause, speech, pause])
    clip = np.concatenate([clip, np.zeros(max(0, 10 * rate - len(clip)), dtype=np.float32)])[: 10 * rate]
    soundfile.write(path, clip, rate)
    return path


def bench_transcribe(settings: Settings, clip: Path | None, repeats: int) -> dict:
    import whisper

    from core.hearing.audio_io import load_audio, probe
    from core.hearing.transcriber import TranscribeOptions, transcribe

    with tempfile.TemporaryDirectory(prefix="tantra-bench-") as scratch:
        clip = clip or ten_second_clip(Path(scratch) / "clip10.wav")
        info = probe(clip)
        audio = load_audio(info)
        duration = len(audio) / SAMPLE_RATE
        loader = model_loader(settings)
        model = MODEL_CONFIG.hearing.default
        result: dict = {"clip": str(clip), "clip_seconds": round(duration, 2), "model": model, "repeats": repeats}

        engines = {}
        for name in WHISPER_ENGINES:
            start = time.perf_counter()
            engine = loader.load_whisper(model, name)
            engines[name] = {"load_seconds": round(time.perf_counter() - start, 3)}
            for beam in (5, 1):
                options = TranscribeOptions(beam_size=beam)
                text = " ".join(s.text.strip() for s in transcribe(engine, info, options))  # warm-up, and the text
                elapsed = median_seconds(lambda: list(transcribe(engine, info, options)), repeats)
                engines[name][f"beam_{beam}"] = {"rtf": round(elapsed / duration, 4), "text": text}

        # The reference: openai-whisper's own transcribe() on the same converted weights.
        reference_model = loader.load_whisper(model, "openai-whisper").model
        reference = {}
        for beam in (5, 1):
            kwargs = {"beam_size": beam} if beam > 1 else {}  # transcribe()'s own default decodes greedily

            def run() -> dict:
                return whisper.transcribe(reference_model, audio, fp16=False, verbose=None, **kwargs)

            run()
            reference[f"beam_{beam}"] = {"rtf": round(median_seconds(run, repeats) / duration, 4)}
        result["reference_openai_whisper_transcribe"] = reference
        for name, measured in engines.items():
            for beam in ("beam_5", "beam_1"):
                measured[beam]["speedup_vs_reference"] = round(reference[beam]["rtf"] / measured[beam]["rtf"], 2)
        result["engines"] = engines
        result["default_engine"] = MODEL_CONFIG.hearing.engines.entries[0]

        result["cold_start"] = _cold_start(clip, settings, repeats)
    from tantra_benchmarks.turn_parts import bench_turn_parts
    from tantra_benchmarks.turn_window import bench_turn_window

    result["turn_window"] = bench_turn_window(settings)
    result["long_turns_read_in_parts"] = bench_turn_parts(settings)
    return result


def _cold_start(clip: Path, settings: Settings, repeats: int) -> dict:
    env = tantra_env(settings)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    measured = {}
    for label, command in {
        "help": TANTRA + ["--help"],
        "transcribe_10s_faster_whisper": TANTRA + ["transcribe", str(clip), "--engine", "faster-whisper"],
        "transcribe_10s_openai_whisper": TANTRA + ["transcribe", str(clip), "--engine", "openai-whisper"],
    }.items():
        runs = [measure_child(command, env) for _ in range(repeats)]
        if any(run.code != 0 for run in runs):
            measured[label] = {"error": f"exit codes {[run.code for run in runs]}"}
            continue
        measured[label] = {
            "wall_seconds": round(statistics.median(run.seconds for run in runs), 3),
            "peak_rss_mb": max(run.peak_rss_mb for run in runs),
        }
    return measured
