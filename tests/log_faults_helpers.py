"""Helpers shared by the tests of ``tantra.db`` when things go wrong (``test_log_processes.py``,
``test_log_files.py``): the database as a plain SQLite client sees it, and a check that it is sound."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def plain(path: Path) -> sqlite3.Connection:
    """The database as any SQLite client sees it: none of Tantra's code involved."""
    return sqlite3.connect(path, isolation_level=None)


def assert_sound(path: Path) -> None:
    """SQLite finds nothing wrong, and the full-text indexes hold exactly what the exchanges and facts hold."""
    db = plain(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        db.execute("INSERT INTO exchanges_fts(exchanges_fts) VALUES ('integrity-check')")  # raises if out of step
        db.execute("INSERT INTO facts_fts(facts_fts) VALUES ('integrity-check')")
    finally:
        db.close()
