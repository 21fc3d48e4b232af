"""``tantra chat --voice`` as a person runs it, on the stand-in microphone and speaker: bad input first (fast, no
model is loaded before it is refused), then the real models end to end (slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.conftest import ROOT, SAMPLE, SAMPLE_TEXT, normalise, run_tantra


def wav(path: Path, *parts: np.ndarray, rate: int = 16000) -> Path:
    soundfile.write(path, np.concatenate(parts), rate)
    return path


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 16000), np.float32)


def speech() -> np.ndarray:
    import soxr

    audio, rate = soundfile.read(SAMPLE, dtype="float32")
    return soxr.resample(audio, rate, 16000).astype(np.float32)


def one_error_line(result) -> str:
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1, result.stderr.decode()
    assert lines and lines[-1].startswith("tantra: error: "), lines
    assert "Traceback" not in result.stderr.decode()
    return lines[-1]


# ---- bad input: one line, exit 1, before any model loads ---------------------------------------------------------


def test_a_mic_file_that_is_text_is_refused(tmp_path):
    notes = tmp_path / "notes.wav"
    notes.write_text("this is not audio\n")
    assert "looks like text" in one_error_line(run_tantra("chat", "--mic-file", str(notes)))


def test_an_empty_mic_file_is_refused(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert "is empty" in one_error_line(run_tantra("chat", "--mic-file", str(empty)))


def test_a_missing_mic_file_is_refused(tmp_path):
    assert "no such file" in one_error_line(run_tantra("chat", "--mic-file", str(tmp_path / "gone.wav")))


def test_ten_minutes_of_silence_is_refused_at_once(tmp_path):
    quiet = wav(tmp_path / "quiet.wav", silence(600))
    start = time.perf_counter()
    line = one_error_line(run_tantra("chat", "--mic-file", str(quiet)))
    assert "no speech in its 600 s" in line
    assert time.perf_counter() - start < 30  # not ten minutes of listening


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--voice", "--barge-in", "sometimes"], "--barge-in 'sometimes'"),
        (["--speaker-file", "out.wav"], "--speaker-file goes with --mic-file"),
        (["--voice", "-i", "gone.jpg"], "gone.jpg: no such image file"),
        (["--ptt", "--mic-file", str(SAMPLE)], "--ptt needs a terminal"),
    ],
)
def test_voice_options_that_cannot_work_say_why(args, says):
    assert says in one_error_line(run_tantra("chat", *args))


def test_no_microphone_is_one_line():
    result = run_tantra("chat", "--voice", env={"PULSE_SERVER": "unix:/nonexistent"})
    line = one_error_line(result)
    assert "device" in line or "PortAudio" in line


def test_devices_lists_or_says_there_are_none():
    result = run_tantra("devices", env={"PULSE_SERVER": "unix:/nonexistent"})
    assert result.returncode == 0
    assert "inputs:" in result.stdout.decode() or "no sound devices" in result.stderr.decode()


def test_ctrl_c_never_waits_on_a_lock_the_interrupted_code_holds():
    """Ctrl-C lands while the voice loop holds a lock that stopping takes too (the turn queue's): the stopping
    happens once the lock is free, and the session ends with 130, where a handler doing it in place waited on itself."""
    from types import SimpleNamespace

    from tantra_cli.voice import run_headless

    lock, ended = threading.Lock(), threading.Event()
    waited_on_itself = []

    class Loop:
        link = SimpleNamespace(close=lambda: None)

        def interrupt(self) -> str:
            if not lock.acquire(timeout=2):
                waited_on_itself.append(True)
                return ""
            lock.release()
            return ""

        def quit(self) -> None:
            ended.set()

        def run(self, load):
            with lock:
                signal.raise_signal(signal.SIGINT)  # the handler runs now, on this thread, the lock held
            ended.wait(5)
            yield from ()

    assert run_headless(Loop(), lambda: None, as_json=True) == 130
    assert not waited_on_itself


# ---- the real models, end to end --------------------------------------------------------------------------------


def transcribe(path: Path) -> str:
    result = run_tantra("transcribe", str(path))
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = normalise(reference).split(), normalise(hypothesis).split()
    distance = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        previous, distance[0] = distance[0], i
        for j, heard in enumerate(hyp, 1):
            previous, distance[j] = distance[j], min(distance[j] + 1, distance[j - 1] + 1, previous + (word != heard))
    return distance[-1] / max(len(ref), 1)


@pytest.mark.slow
def test_a_spoken_question_is_answered_aloud_and_the_answer_transcribes_back(tmp_path, tiny_en):
    mic = wav(tmp_path / "mic.wav", silence(0.5), speech(), silence(0.5))
    speaker = tmp_path / "speaker.wav"
    result = run_tantra("chat", "--mic-file", str(mic), "--speaker-file", str(speaker), "--json", "-t", "0", "-n", "40")
    assert result.returncode == 0, result.stderr.decode()
    [line] = result.stdout.decode().splitlines()
    turn = json.loads(line)
    assert normalise(turn["heard"]) == normalise(SAMPLE_TEXT)
    assert turn["turn"] == 1 and not turn["interrupted"] and turn["images"] == []
    latency = turn["latency"]
    assert 0 < latency["transcribed"] <= latency["first_token"] <= latency["first_sentence"] <= latency["first_audio"]
    audio, rate = soundfile.read(speaker)
    assert len(audio) / rate > 0.5 + len(speech()) / 16000 + 0.6  # the timeline: question, silence, then the reply
    assert word_error_rate(turn["reply"], transcribe(speaker)) <= 0.35


@pytest.mark.slow
def test_a_fifo_microphone_and_plain_text_output(tmp_path, tiny_en):
    fifo = tmp_path / "mic.fifo"
    os.mkfifo(fifo)
    question = wav(tmp_path / "question.wav", silence(0.3), speech(), silence(0.3))

    def feed():  # a recorder that writes as it records: the stand-in never runs ahead of it
        with open(fifo, "wb") as sink:
            sink.write(question.read_bytes())

    threading.Thread(target=feed, daemon=True).start()
    result = run_tantra("chat", "--mic-file", str(fifo), "-t", "0", "-n", "20")
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert out.startswith("you: ") and normalise(out.splitlines()[0][5:]) == normalise(SAMPLE_TEXT)
    assert "\ntantra: " in out


@pytest.mark.slow
def test_ctrl_c_stops_a_reply_and_then_ends_the_session(tmp_path, tiny_en):
    mic = wav(tmp_path / "mic.wav", silence(0.3), speech(), silence(30))
    process = subprocess.Popen(
        [sys.executable, "-m", "tantra_cli", "chat", "--mic-file", str(mic), "--json", "-t", "0", "-n", "200",
         "--system", "You tell very long stories."],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    errors: list[str] = []
    threading.Thread(target=lambda: errors.extend(line.decode() for line in process.stderr), daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("heard:" in line for line in errors):
            time.sleep(0.1)
        time.sleep(1.5)  # the reply is being spoken now
        process.send_signal(signal.SIGINT)  # the reply stops, the session goes on
        turn = json.loads(process.stdout.readline())
        assert turn["interrupted"] and normalise(turn["heard"]) == normalise(SAMPLE_TEXT)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)  # nothing going on: the session ends
        process.wait(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 130
    said = "".join(errors)
    assert "stopped the reply" in said and "Traceback" not in said


@pytest.mark.slow
def test_an_image_goes_with_a_one_shot_question(tmp_path, tiny_en):
    from PIL import Image

    photo = tmp_path / "red.png"
    Image.new("RGB", (64, 64), (220, 20, 30)).save(photo)
    result = run_tantra("chat", "-i", str(photo), "What is in the picture?", "-t", "0", "-n", "20")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip()


def test_wake_list_names_the_words_and_an_unknown_one_is_refused_in_one_line():
    listed = run_tantra("chat", "--wake")  # alone: the words
    assert listed.returncode == 0 and "hey_jarvis\they Jarvis" in listed.stdout.decode().splitlines()
    assert "okay_nabu" in one_error_line(run_tantra("chat", "--voice", "--wake", "computer"))


@pytest.mark.slow
def test_a_wake_word_said_by_a_voice_is_heard_and_speech_without_it_is_not(tmp_path):
    """The real detector (pyopen-wakeword's hey_jarvis) on Piper's voice: openWakeWord's models are trained on
    synthetic speech like it. The first question has no wake word and is ignored; the second is answered."""
    import soxr

    from core.talk.wake_word import WakeWord

    clips = {}
    for name, text in (("wake", "Hey Jarvis, what is the capital of France?"),
                       ("plain", "What is the capital of France? Tell me about the weather in Paris.")):  # fmt: skip
        assert run_tantra("speak", text, "-o", str(tmp_path / f"{name}.wav")).returncode == 0
        audio, rate = soundfile.read(tmp_path / f"{name}.wav", dtype="float32")
        clips[name] = soxr.resample(audio, rate, 16000).astype(np.float32)
    for name, expected in (("wake", True), ("plain", False)):
        detector, audio = WakeWord("hey_jarvis"), np.concatenate([silence(0.5), clips[name], silence(1.0)])
        best = max(detector(audio[i : i + 512]) for i in range(0, len(audio) - 511, 512))
        assert (best >= detector.threshold) is expected, (name, best)
    mic = wav(tmp_path / "mic.wav", silence(1.0), clips["plain"], silence(2.0), clips["wake"], silence(8.0))
    result = run_tantra("chat", "--mic-file", str(mic), "--wake", "hey jarvis", "--no-log", "--no-memory", "--json")
    assert result.returncode == 0, result.stderr.decode()
    turns = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [normalise(turn["heard"]) for turn in turns] == ["what is the capital of france"]
