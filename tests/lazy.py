"""Modules imported where a test first uses them, not where pytest collects the test files.

Every worker of ``make fast`` collects every test file: torch and openai imported at collection cost each worker
2.5 s of CPU, yet one worker runs the tests that need them (``conftest.HEAVY_IMPORTS``)."""

from __future__ import annotations

import importlib


class Lazy:
    """Stands for the module ``name``; the first read of a public attribute imports it. It is read only: patch the
    module by its name (``monkeypatch.setattr("core.models.spike_coding.Q4_WIDEN_ROWS", 16)``)."""

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def _module(self):
        return importlib.import_module(object.__getattribute__(self, "_name"))

    def __getattr__(self, attribute: str):
        if attribute.startswith(("_", "pytest")):  # pytest probing what a test file holds (_mock_name, pytestmark)
            raise AttributeError(attribute)
        return getattr(self._module(), attribute)

    def __setattr__(self, attribute: str, value) -> None:
        name = object.__getattribute__(self, "_name")
        raise TypeError(f"{name} is imported lazily here: patch it by name, monkeypatch.setattr('{name}.{attribute}',"
                        " ...)")


torch = Lazy("torch")
openai = Lazy("openai")
spike_coding = Lazy("core.models.spike_coding")
