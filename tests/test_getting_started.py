"""The README's Getting Started (the spec's, with ``utils.model_loader``) runs verbatim, on the real models."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # every role's real model loads


def test_the_readmes_getting_started_runs_verbatim():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"## Python API\n.*?```python\n(.*?)```", readme, re.DOTALL)
    done = subprocess.run([sys.executable, "-c", block], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    name, whisper, tts, image_shape, audio_shape = re.fullmatch(
        r"(\S+) (\S+) (\S+) (\(\d+,\)) (\(\d+,\))\n", done.stdout
    ).groups()
    assert name.startswith("spikingbrain") and whisper and tts == "coqui"
    assert image_shape == audio_shape == "(768,)"
    from core.voice.speaker import coqui_model_is_local

    if not coqui_model_is_local("tts_models/en/ljspeech/tacotron2-DDC"):  # offline: Piper's voice, one note
        assert done.stderr.count("Coqui speaks the Piper voice") == 1, done.stderr
