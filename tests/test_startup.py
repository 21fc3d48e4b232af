"""Starting ``tantra``: importing the CLI loads no heavy library (nor does collecting the tests), ``--help`` lists the
commands and global options, and a bad ``--device`` is a usage error without a traceback."""

import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("torch", "transformers", "whisper", "onnxruntime", "faster_whisper", "ctranslate2", "numpy")


def test_importing_the_cli_leaves_heavy_libraries_out():
    code = "import sys, tantra_cli.app; print(' '.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == ""


def test_collecting_the_tests_leaves_heavy_libraries_out():
    """Every worker of ``make fast`` collects every test file: torch and openai wait for the tests that use them
    (``tests.lazy``), which one worker runs (``conftest.HEAVY_IMPORTS``)."""
    code = ("import sys, pytest; pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', 'tests']);"
            "print(' '.join(m for m in %r if m in sys.modules))" % ((*HEAVY[:-1], "openai"),))  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.splitlines()[-1] == ""


def test_help_lists_the_commands_and_global_options():
    result = subprocess.run([sys.executable, "-m", "tantra_cli", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0
    for word in ("transcribe", "models", "--device", "--low-resource", "--verbose", "--debug"):
        assert word in result.stdout


def test_bad_device_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "tantra_cli", "--device", "tpu", "models"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 2
    assert "tpu" in result.stderr and "Traceback" not in result.stderr
