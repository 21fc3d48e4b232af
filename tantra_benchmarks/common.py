"""What the benchmarks share: timing, a child process's peak memory, the sample inputs, and the model config."""

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
from typing import TYPE_CHECKING

from config.model_config import MODEL_CONFIG
from config.settings import Settings
from core.runtime.placement import Placement

if TYPE_CHECKING:
    from core.model_loader import ModelLoader

ROOT = Path(__file__).resolve().parent.parent
# The repository's samples: beside the code in a clone (and `make`'s editable install), in the current folder when
# `pip install .` copied the code away from them.
SAMPLES = next((p for p in (ROOT / "samples", Path.cwd() / "samples") if p.is_dir()), ROOT / "samples")
SPEECH = SAMPLES / "arctic_a0007.wav"
PROSE = SAMPLES / "prose.txt"
TANTRA = [sys.executable, "-m", "tantra_cli"]
"""The command line of ``tantra`` run from this interpreter."""


def machine(settings: Settings) -> dict:
    """What the numbers were measured on: machines of the same kind differ, so every benchmark says it."""
    import platform

    import torch

    from core.runtime.cpu_facts import EXTENSIONS, cpu_flags, cpu_name

    return {
        "cpu": cpu_name(),
        "isa": [name for name in EXTENSIONS if name in cpu_flags() and name not in ("sse4_1", "avx512bw", "avx512vl")],
        "logical_cpus": os.cpu_count(),
        "threads": Placement(settings, warn=print).threads,  # CTranslate2's and onnxruntime's
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def prose_text() -> str:
    """``samples/prose.txt``: ordinary English prose, written for this project, read by the chat and speech
    benchmarks."""
    return PROSE.read_text()


def tantra_env(settings: Settings) -> dict[str, str]:
    """The environment of a child ``tantra`` process: this one's, with the same model store."""
    return {**os.environ, "TANTRA_HOME": str(settings.home)}


# ---- timing ---------------------------------------------------------------------------------------------------------


def seconds(run: Callable[[], object]) -> float:
    """Wall seconds of one call of ``run``."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """The median wall seconds of ``repeats`` calls of ``run``."""
    return statistics.median(seconds(run) for _ in range(repeats))


# Runs the command and reports its peak RSS. A child forked straight from a big process (this one, with models
# loaded) counts the parent's pages in its ru_maxrss until it execs, so a small launcher does the forking.
_LAUNCHER = """
import json, subprocess, sys, time
from tantra_benchmarks.peak_memory import wait_for_peak
start = time.perf_counter()
code, peak = wait_for_peak(subprocess.Popen(sys.argv[2:]))
report = {"seconds": time.perf_counter() - start, "code": code, "peak_rss_mb": peak}
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


def model_loader(settings: Settings) -> ModelLoader:
    """A new ``ModelLoader`` (one instance caches what it loaded, so a new one loads afresh)."""
    from core.model_loader import ModelLoader

    return ModelLoader(MODEL_CONFIG, settings)
