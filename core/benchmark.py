"""Benchmarks behind ``tantra bench``: each measures ours against a reference in one run, on the same input.

Times on a shared machine drift between runs, so what to compare are the ratios measured within one run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from config.model_config import MODEL_CONFIG, WHISPER_ENGINES
from config.settings import Settings
from encoders.audio_io import SAMPLE_RATE

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "arctic_a0007.wav"


def seconds(run: Callable[[], object]) -> float:
    """Wall seconds of one call of ``run``."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _median_seconds(run: Callable[[], object], repeats: int) -> float:
    return statistics.median(seconds(run) for _ in range(repeats))


# Runs the command and reports its peak RSS. A child forked straight from a big process (this one, with models
# loaded) counts the parent's pages in its ru_maxrss until it execs, so a small launcher does the forking.
_LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
report = {"seconds": time.perf_counter() - start, "code": os.waitstatus_to_exitcode(status),
          "peak_rss_mb": round(usage.ru_maxrss / 1024)}  # Linux reports KiB
open(sys.argv[1], "w").write(json.dumps(report))
"""


@dataclass(frozen=True)
class ChildRun:
    seconds: float
    code: int
    peak_rss_mb: int
    stdout: bytes


def measure_child(command: list[str], env: dict[str, str] | None = None) -> ChildRun:
    """Wall seconds, exit code, peak resident memory (MB) and stdout of one command."""
    with tempfile.NamedTemporaryFile(suffix=".json") as report:
        launched = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, report.name, *command],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        measured = json.loads(Path(report.name).read_text() or "null")
    if launched.returncode != 0 or measured is None:
        raise RuntimeError(f"the measuring launcher failed for {command}")
    return ChildRun(measured["seconds"], measured["code"], measured["peak_rss_mb"], launched.stdout)


def ten_second_clip(path: Path) -> Path:
    """The bundled sample, twice, with a second of silence after each: a 10 s clip of real speech."""
    import soundfile

    speech, rate = soundfile.read(SAMPLE, dtype="float32")
    pause = np.zeros(rate, dtype=np.float32)
    clip = np.concatenate([speech, pause, speech, pause])
    clip = np.concatenate([clip, np.zeros(max(0, 10 * rate - len(clip)), dtype=np.float32)])[: 10 * rate]
    soundfile.write(path, clip, rate)
    return path


def bench_transcribe(settings: Settings, clip: Path | None, repeats: int) -> dict:
    import whisper

    from core.model_loader import ModelLoader
    from core.transcriber import TranscribeOptions, transcribe
    from encoders.audio_io import load_audio, probe

    with tempfile.TemporaryDirectory(prefix="tantra-bench-") as scratch:
        clip = clip or ten_second_clip(Path(scratch) / "clip10.wav")
        info = probe(clip)
        audio = load_audio(info)
        duration = len(audio) / SAMPLE_RATE
        loader = ModelLoader(MODEL_CONFIG, settings)
        model = MODEL_CONFIG["audio"]["default"]
        result: dict = {"clip": str(clip), "clip_seconds": round(duration, 2), "model": model, "repeats": repeats}

        engines = {}
        for name in WHISPER_ENGINES:
            start = time.perf_counter()
            engine = loader.load_whisper(model, name)
            engines[name] = {"load_seconds": round(time.perf_counter() - start, 3)}
            for beam in (5, 1):
                options = TranscribeOptions(beam_size=beam)
                text = " ".join(s.text.strip() for s in transcribe(engine, info, options))  # warm-up, and the text
                elapsed = _median_seconds(lambda: list(transcribe(engine, info, options)), repeats)
                engines[name][f"beam_{beam}"] = {"rtf": round(elapsed / duration, 4), "text": text}

        # The reference: openai-whisper's own transcribe() on the same converted weights.
        reference_model = loader.load_whisper(model, "openai-whisper").model
        reference = {}
        for beam in (5, 1):
            kwargs = {"beam_size": beam} if beam > 1 else {}  # transcribe()'s own default decodes greedily

            def run() -> dict:
                return whisper.transcribe(reference_model, audio, fp16=False, verbose=None, **kwargs)

            run()
            reference[f"beam_{beam}"] = {"rtf": round(_median_seconds(run, repeats) / duration, 4)}
        result["reference_openai_whisper_transcribe"] = reference
        for name, measured in engines.items():
            for beam in ("beam_5", "beam_1"):
                measured[beam]["speedup_vs_reference"] = round(reference[beam]["rtf"] / measured[beam]["rtf"], 2)
        result["engines"] = engines
        result["default_engine"] = MODEL_CONFIG["audio"]["chain"][0]

        result["cold_start"] = _cold_start(clip, settings, repeats)
    return result


def _cold_start(clip: Path, settings: Settings, repeats: int) -> dict:
    tantra = [sys.executable, "-m", "tantra_cli"]
    env = dict(os.environ, TANTRA_HOME=str(settings.home))
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    measured = {}
    for label, command in {
        "help": tantra + ["--help"],
        "transcribe_10s_faster_whisper": tantra + ["transcribe", str(clip), "--engine", "faster-whisper"],
        "transcribe_10s_openai_whisper": tantra + ["transcribe", str(clip), "--engine", "openai-whisper"],
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
