"""The voice in the interactive REPL, driven through tmux as a person would: a spoken turn from the stand-in
microphone, ``/image``, a typed turn that is spoken too, Ctrl-C while it speaks, ``/voice off``, Ctrl-D."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.conftest import ROOT, SAMPLE

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"),
]
SESSION = "tantra-voice-test"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


def screen() -> str:
    """What the terminal shows, its lines joined: a long line may be wrapped anywhere."""
    return " ".join(tmux("capture-pane", "-p", "-J", "-S", "-300", "-t", SESSION).split())


def wait_for(text: str, times: int = 1, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = screen()
        if shown.count(text) >= times:
            return shown
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared {times} time(s); the screen shows:\n{screen()}")


def test_talk_type_look_and_interrupt_in_the_repl(tmp_path, tiny_en):
    import soxr
    from PIL import Image

    audio, rate = soundfile.read(SAMPLE, dtype="float32")
    question = soxr.resample(audio, rate, 16000).astype(np.float32)
    mic = tmp_path / "mic.wav"
    pause, after = np.zeros(8000, np.float32), np.zeros(16000 * 150, np.float32)
    soundfile.write(mic, np.concatenate([pause, question, after]), 16000)
    photo = tmp_path / "red.png"
    Image.new("RGB", (64, 64), (220, 20, 30)).save(photo)
    tantra = f"{ROOT}/.venv/bin/tantra" if (ROOT / ".venv/bin/tantra").exists() else "tantra"
    command = f"cd {ROOT} && {tantra} chat --voice --mic-file {mic} --speaker-file {tmp_path / 'out.wav'} -t 0 -n 200"
    command += " --system 'You tell very long and detailed stories.'"
    tmux("kill-session", "-t", SESSION)
    tmux("new-session", "-d", "-s", SESSION, "-x", "160", "-y", "50", command + "; sleep 30")
    try:
        wait_for("listening")
        wait_for("you said:")
        assert "superlative degree" in wait_for("superlative")  # what the microphone said
        time.sleep(3)  # the answer is being spoken (a long story: it is asked for)
        tmux("send-keys", "-t", SESSION, "C-c")
        wait_for("(stopped)")
        tmux("send-keys", "-t", SESSION, f"/image {photo}", "Enter")
        wait_for("goes with your next message")
        tmux("send-keys", "-t", SESSION, "Tell me a very long story about this picture.", "Enter")
        time.sleep(4)  # it is speaking the story now
        tmux("send-keys", "-t", SESSION, "C-c")
        wait_for("(stopped)", times=2)
        wait_for("(interrupted)", times=2)
        tmux("send-keys", "-t", SESSION, "/voice off", "Enter")
        wait_for("the voice is off")
        tmux("send-keys", "-t", SESSION, "C-d")
        time.sleep(1.5)
        shown = screen()
        assert "Traceback" not in shown
    finally:
        tmux("kill-session", "-t", SESSION)
    spoken, rate = soundfile.read(tmp_path / "out.wav")
    assert np.abs(spoken).max() > 0.1  # both answers were spoken
    assert Path(tmp_path / "out.wav").stat().st_size > 0
