"""``tantra transcribe`` with the real Whisper tiny.en on real human speech (CMU ARCTIC arctic_a0007)."""

from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pytest
import soundfile
from typer.testing import CliRunner

from tantra_cli.app import app
from tests.conftest import SAMPLE, SAMPLE_TEXT, normalise, run_tantra

runner = CliRunner()


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["faster-whisper", "openai-whisper"])
def test_word_exact_transcript_with_each_engine(tiny_en, engine):
    result = runner.invoke(app, ["transcribe", str(SAMPLE), "--engine", engine])
    assert result.exit_code == 0, result.output
    assert normalise(result.stdout) == normalise(SAMPLE_TEXT)


@pytest.mark.slow
def test_default_engine_through_a_real_pipe(tiny_en):
    result = run_tantra("transcribe", "-", stdin=SAMPLE.read_bytes())
    assert result.returncode == 0, result.stderr
    assert normalise(result.stdout.decode()) == normalise(SAMPLE_TEXT)
    assert result.stderr == b""  # nothing but data when the model is already pulled


@pytest.mark.slow
def test_a_damaged_ct2_model_falls_back_to_openai_whisper_with_one_note(tiny_en, tmp_path):
    """Same size, other bytes (a file that rotted on disk): its checksum fails, and the other engine, which reads
    its own converted checkpoint, answers."""
    home = tmp_path / "home"
    shutil.copytree(tiny_en, home / "models" / tiny_en.name)
    model_bin = home / "models" / tiny_en.name / "ct2" / "model.bin"
    with model_bin.open("r+b") as handle:
        handle.seek(model_bin.stat().st_size // 2)
        handle.write(bytes(4096))
    result = run_tantra("transcribe", str(SAMPLE), env={"TANTRA_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert normalise(result.stdout.decode()) == normalise(SAMPLE_TEXT)
    said = result.stderr.decode().strip().splitlines()
    assert len(said) == 1 and said[0].startswith("tantra: faster-whisper cannot be used") and "corrupt" in said[0]
    assert said[0].endswith(f"tantra models pull {tiny_en.name} --force); trying openai-whisper")


def _srt_times(text: str) -> list[tuple[float, float]]:
    def seconds(stamp: str) -> float:
        hours, minutes, rest = stamp.replace(",", ".").split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(rest)

    return [(seconds(a), seconds(b)) for a, b in re.findall(r"^(\S+) --> (\S+)$", text, flags=re.M)]


def _vtt_times(text: str) -> list[tuple[float, float]]:
    def seconds(stamp: str) -> float:
        parts = [float(p) for p in stamp.split(":")]
        return sum(value * 60**power for power, value in enumerate(reversed(parts)))

    return [(seconds(a), seconds(b)) for a, b in re.findall(r"^(\S+) --> (\S+)$", text, flags=re.M)]


def _monotone(times: list[tuple[float, float]]) -> bool:
    flat = [t for pair in times for t in pair]
    return bool(times) and all(a <= b for a, b in zip(flat, flat[1:]))


@pytest.mark.slow
def test_every_output_format_parses(tiny_en, tmp_path):
    # Two copies of the sentence with a pause: several segments, so time order is really checked.
    speech, rate = soundfile.read(SAMPLE, dtype="float32")
    clip = tmp_path / "twice.wav"
    soundfile.write(clip, np.concatenate([speech, np.zeros(rate, np.float32), speech]), rate)
    result = runner.invoke(
        app, ["transcribe", str(clip), "-f", "all", "-o", str(tmp_path / "out"), "--word-timestamps"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # files were asked for: stdout stays empty
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["twice.json", "twice.srt", "twice.tsv", "twice.txt", "twice.vtt"]

    document = json.loads((out / "twice.json").read_text())
    assert normalise(document["text"]).count("superlative degree") == 2
    assert document["language"] == "en" and document["segments"]
    words = [w for s in document["segments"] for w in s["words"]]
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)
    assert any(normalise(w["word"]) == "superlative" for w in words)

    srt = (out / "twice.srt").read_text()
    assert _monotone(_srt_times(srt)) and srt.startswith("1\n00:00:")
    vtt = (out / "twice.vtt").read_text()
    assert vtt.startswith("WEBVTT\n\n") and _monotone(_vtt_times(vtt))
    rows = list(csv.DictReader((out / "twice.tsv").open(), delimiter="\t"))
    assert rows and all(int(r["start"]) <= int(r["end"]) for r in rows)
    assert normalise((out / "twice.txt").read_text()).count("superlative degree") == 2


@pytest.mark.slow
def test_audio_longer_than_30_seconds_is_transcribed_whole(tiny_en, tmp_path):
    speech, rate = soundfile.read(SAMPLE, dtype="float32")
    gap = np.zeros(34 * rate, np.float32)  # the second sentence starts past Whisper's first 30-s window
    clip = tmp_path / "long.flac"
    soundfile.write(clip, np.concatenate([speech, gap, speech]), rate)
    result = runner.invoke(app, ["transcribe", str(clip), "-f", "json", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    segments = json.loads((tmp_path / "long.json").read_text())["segments"]
    assert normalise(" ".join(s["text"] for s in segments)) == normalise(SAMPLE_TEXT + " " + SAMPLE_TEXT)
    assert segments[-1]["start"] >= 30 and segments[-1]["end"] <= 42.5  # spoken from 38 s to 42 s


def test_blocks_cover_the_input_and_cut_in_quiet_places(tmp_path):
    from core.hearing.audio_io import SAMPLE_RATE, probe, read_blocks

    speech, rate = soundfile.read(SAMPLE, dtype="float32")
    pause = np.zeros(rate, np.float32)
    whole = np.concatenate([speech, pause, speech, pause, speech])
    path = tmp_path / "three.wav"
    soundfile.write(path, whole, rate)
    blocks = list(read_blocks(probe(path), block_seconds=6))
    assert len(blocks) >= 2
    assert np.array_equal(np.concatenate([b for _, b in blocks]), whole)  # nothing lost, nothing repeated
    for (start, block), (next_start, _) in zip(blocks, blocks[1:]):
        assert next_start == pytest.approx(start + len(block) / SAMPLE_RATE)
        cut = int(next_start * SAMPLE_RATE)
        assert np.abs(whole[cut - 800 : cut + 800]).max() < 0.01  # cut inside a pause, not a word


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["flac", "ogg", "mp3"])
def test_soundfile_formats_at_other_rates(tiny_en, tmp_path, suffix):
    speech, rate = soundfile.read(SAMPLE, dtype="float32")
    stereo_44k = np.repeat(np.interp(np.arange(0, len(speech), rate / 44100), np.arange(len(speech)), speech), 1)
    path = tmp_path / f"sample.{suffix}"
    soundfile.write(path, np.stack([stereo_44k, stereo_44k], axis=1), 44100)
    result = runner.invoke(app, ["transcribe", str(path)])
    assert result.exit_code == 0, result.output
    assert normalise(result.stdout) == normalise(SAMPLE_TEXT)


@pytest.mark.slow
def test_other_containers_go_through_bundled_ffmpeg(tiny_en, tmp_path):
    import subprocess

    from core.runtime.files import ffmpeg_exe

    m4a = tmp_path / "sample.m4a"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(SAMPLE), str(m4a)], check=True)
    result = run_tantra("-v", "transcribe", str(m4a))
    assert result.returncode == 0, result.stderr
    assert b"read with ffmpeg" in result.stderr
    assert normalise(result.stdout.decode()) == normalise(SAMPLE_TEXT)


@pytest.mark.slow
def test_silence_gives_an_empty_transcript(tiny_en, tmp_path):
    rate = 16000
    noise = np.random.default_rng(0).standard_normal(5 * rate).astype(np.float32) * 0.002  # faint hiss
    for name, audio in {"zeros.wav": np.zeros(5 * rate, np.float32), "hiss.wav": noise}.items():
        soundfile.write(tmp_path / name, audio, rate)
        result = runner.invoke(app, ["transcribe", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "", name


@pytest.mark.slow
def test_two_hours_stream_in_bounded_memory(tiny_en, tmp_path):
    import sys

    from tantra_benchmarks.common import measure_child

    path = tmp_path / "two_hours.flac"
    rate = 16000
    with soundfile.SoundFile(path, "w", rate, 1, format="FLAC") as sound:
        block = np.zeros(600 * rate, np.float32)
        for _ in range(12):  # 12 x 10 min
            sound.write(block)
    assert soundfile.info(path).duration == 7200
    run = measure_child([sys.executable, "-m", "tantra_cli", "transcribe", str(path)])
    assert run.code == 0
    assert run.stdout.strip() == b""
    assert run.peak_rss_mb < 600  # the whole file as float32 would be 460 MB on its own


BAD_INPUTS = {
    "missing.wav": (None, "no such file"),
    "empty.wav": (b"", "is empty"),
    "text.wav": (b"this is a note, not a recording\n", "looks like text"),
    "garbage.mp3": (bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)), "not an audio format"),
    "truncated.wav": ("truncate", "truncated WAV"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_files_give_one_line_errors(tiny_en, tmp_path, name):
    content, message = BAD_INPUTS[name]
    path = tmp_path / name
    if content == "truncate":
        path.write_bytes(SAMPLE.read_bytes()[:30000])
    elif content is not None:
        path.write_bytes(content)
    result = run_tantra("transcribe", str(path))
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert message in stderr and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr


@pytest.mark.slow
def test_directory_and_binary_stdin(tiny_en, tmp_path):
    result = run_tantra("transcribe", str(tmp_path))
    assert result.returncode == 1 and b"is a directory" in result.stderr
    result = run_tantra("transcribe", "-", stdin=bytes(range(256)) * 40)
    assert result.returncode == 1 and b"stdin: not an audio format" in result.stderr


@pytest.mark.slow
def test_one_failure_does_not_stop_the_rest(tiny_en, tmp_path):
    result = run_tantra("transcribe", str(tmp_path / "missing.wav"), str(SAMPLE))
    assert result.returncode == 1
    assert normalise(result.stdout.decode()) == normalise(SAMPLE_TEXT)
    assert b"1 of 2 inputs failed" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nonsense"], "unknown Whisper model 'nonsense'"),
        (["--language", "fr"], "English-only"),
        (["--language", "xx"], "unknown language 'xx'"),
        (["--task", "translate"], "cannot translate"),
        (["--model", "large-v3"], "Offline models: tiny.en, base"),
        (["--model", "/no/such/model.pt"], "no such model file"),
    ],
)
def test_model_and_language_errors(tiny_en, args, message):
    result = run_tantra("transcribe", str(SAMPLE), *args)
    assert result.returncode == 1
    assert message in result.stderr.decode() and b"Traceback" not in result.stderr
