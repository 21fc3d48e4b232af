"""What Windows does first, checked on Linux: every module of the package imports with the POSIX-only modules
(``fcntl``, ``resource``, ``termios``, ``pwd``, ``grp``, ``tty``) unimportable, and a chat with the fake model runs.
(Issue 24: nothing may import a POSIX-only module at module level.)"""

from __future__ import annotations

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

from core.language.chat_session import ChatSession
from core.language.conversation import SamplingOptions
from tests.fakes import fake_language_model

session = ChatSession(fake_language_model(reply=lambda message: "Hello from a fake.")["chat"], SamplingOptions(), None)
print("".join(session.ask("Hi")))
'''


def test_every_module_imports_without_posix_only_modules_and_a_chat_runs():
    result = subprocess.run([sys.executable, "-c", MASKED], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["all imported", "Hello from a fake."], result.stdout
