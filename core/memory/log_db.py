"""``tantra.db``: the one SQLite database of conversations and memory, opened crash-safe and shared by processes.

WAL journal with ``synchronous=NORMAL``: a reader never blocks the writer, and a process killed at any moment
loses nothing that was committed (only a power cut can lose the last transactions). Every write takes the write
lock up front (``BEGIN IMMEDIATE``) and waits for another writer for up to ``BUSY_SECONDS``, so two chats writing
at once queue instead of failing with "database is locked" (simonw/llm #789).

The schema is a list of migrations applied in order at open, as `llm` does; ``PRAGMA user_version`` counts how
many have run, so a database written by an older Tantra is upgraded and one written by a newer Tantra refused.
A file that is not a SQLite database, or a damaged one, is moved aside (kept, under a timestamped name) and a
fresh one made.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from config.errors import TantraError
from config.settings import Settings
from core.memory.user_facts import statements
from core.runtime.status import say as say_to_stderr

FILE_NAME = "tantra.db"
LOGS_OFF = "logs-off"
"""A file in the data directory whose presence turns logging off for every chat (``tantra logs off``)."""
BUSY_SECONDS = 20.0
"""How long a write waits for another process's: far longer than any one of Tantra's writes takes."""


class LogUnavailable(TantraError):
    """The database cannot be used: a read-only directory, a newer schema, a disk that refuses it."""


def database_path(settings: Settings) -> Path:
    return settings.data_dir / FILE_NAME


def logging_on(settings: Settings) -> bool:
    return not (settings.data_dir / LOGS_OFF).exists()


# ---- the schema, one migration per step ----------------------------------------------------------------------------


def _m001_conversations(db: sqlite3.Connection) -> None:
    _script(db, """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,                -- a ULID: sorts by the time it began
            started TEXT NOT NULL,              -- ISO 8601, UTC
            model TEXT
        );
        CREATE TABLE exchanges (
            id INTEGER PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id),
            datetime_utc TEXT NOT NULL,
            model TEXT NOT NULL,
            spiking INTEGER NOT NULL,
            system TEXT,
            options_json TEXT NOT NULL,
            prompt TEXT NOT NULL,               -- what the user typed or said, whole
            reply TEXT NOT NULL DEFAULT '',     -- written as it streams: a killed reply stays, cut
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            seconds REAL,
            first_token_seconds REAL,
            interrupted INTEGER NOT NULL DEFAULT 1,  -- 0 once the reply ended by itself
            source TEXT NOT NULL,               -- typed (the REPL), argument, stdin or voice
            error TEXT                          -- why the model could not answer it
        );
        CREATE INDEX exchanges_by_conversation ON exchanges(conversation_id, id);
        CREATE TABLE images (
            exchange_id INTEGER NOT NULL REFERENCES exchanges(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            facts TEXT NOT NULL                 -- what the model read in its place
        );
        CREATE INDEX images_by_exchange ON images(exchange_id);
    """)


def _m002_search(db: sqlite3.Connection) -> None:
    # An external-content index: the text lives once, in exchanges; triggers keep the index in step.
    _script(db, """
        CREATE VIRTUAL TABLE exchanges_fts USING fts5(prompt, reply, content='exchanges', content_rowid='id');
        CREATE TRIGGER exchanges_ai AFTER INSERT ON exchanges BEGIN
            INSERT INTO exchanges_fts(rowid, prompt, reply) VALUES (new.id, new.prompt, new.reply);
        END;
        CREATE TRIGGER exchanges_ad AFTER DELETE ON exchanges BEGIN
            INSERT INTO exchanges_fts(exchanges_fts, rowid, prompt, reply) VALUES ('delete', old.id, old.prompt,
                                                                                   old.reply);
        END;
        CREATE TRIGGER exchanges_au AFTER UPDATE OF prompt, reply ON exchanges BEGIN
            INSERT INTO exchanges_fts(exchanges_fts, rowid, prompt, reply) VALUES ('delete', old.id, old.prompt,
                                                                                   old.reply);
            INSERT INTO exchanges_fts(rowid, prompt, reply) VALUES (new.id, new.prompt, new.reply);
        END;
        INSERT INTO exchanges_fts(exchanges_fts) VALUES ('rebuild');
    """)


def _m003_episodes(db: sqlite3.Connection) -> None:
    _script(db, """
        CREATE TABLE episodes (
            exchange_id INTEGER PRIMARY KEY REFERENCES exchanges(id) ON DELETE CASCADE,
            vector BLOB,                        -- float32 (2, dim): the user's turn, the exchange; NULL: not yet
            embedder TEXT,
            recalled_at REAL NOT NULL,          -- unix time it was made or last recalled: the oldest goes first
            recalls INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX episodes_by_recall ON episodes(recalled_at);
        ALTER TABLE exchanges ADD COLUMN recalled TEXT;  -- JSON list of the episodes put before the prompt
    """)


def _m004_facts(db: sqlite3.Connection) -> None:
    # Memory keeps what the user stated, one row per statement, with the vectors of the statement and of each of its
    # clauses when it joins several (core.memory.episodes.embedded), and no longer the exchange's vectors: a reply
    # recalled as memory was the model's guess repeated back to it. Episodes of old databases get
    # the statements of their prompts (vectors NULL: embedded at the next recall); those without any (a question,
    # a request) could never be recalled again and are dropped (the log keeps the exchange).
    _script(db, """
        CREATE TABLE facts (
            id INTEGER PRIMARY KEY,
            exchange_id INTEGER NOT NULL REFERENCES episodes(exchange_id) ON DELETE CASCADE,
            text TEXT NOT NULL,                 -- a sentence of the user's turn that states something, verbatim
            vector BLOB,                        -- float32 (rows, dim), unit length: the statement, then its
                                                -- clauses if it joins several; NULL: not yet embedded
            embedder TEXT
        );
        CREATE INDEX facts_by_exchange ON facts(exchange_id);
        CREATE VIRTUAL TABLE facts_fts USING fts5(text, content='facts', content_rowid='id');
        CREATE TRIGGER facts_ai AFTER INSERT ON facts BEGIN
            INSERT INTO facts_fts(rowid, text) VALUES (new.id, new.text);
        END;
        CREATE TRIGGER facts_ad AFTER DELETE ON facts BEGIN
            INSERT INTO facts_fts(facts_fts, rowid, text) VALUES ('delete', old.id, old.text);
        END;
        CREATE TRIGGER facts_au AFTER UPDATE OF text ON facts BEGIN
            INSERT INTO facts_fts(facts_fts, rowid, text) VALUES ('delete', old.id, old.text);
            INSERT INTO facts_fts(rowid, text) VALUES (new.id, new.text);
        END;
    """)
    episodes = db.execute("SELECT p.exchange_id, e.prompt FROM episodes p JOIN exchanges e ON e.id = p.exchange_id"
                          " ORDER BY p.exchange_id").fetchall()  # fmt: skip
    told = [(exchange_id, statements(prompt)) for exchange_id, prompt in episodes]
    db.executemany("INSERT INTO facts (exchange_id, text) VALUES (?, ?)",
                   [(exchange_id, text) for exchange_id, texts in told for text in texts])  # fmt: skip
    db.executemany("DELETE FROM episodes WHERE exchange_id = ?", [(i,) for i, texts in told if not texts])
    db.execute("UPDATE episodes SET vector = NULL, embedder = NULL")  # (2, dim) of prompt and reply: unused now


def _script(db: sqlite3.Connection, script: str) -> None:
    """Run statements one by one: ``executescript`` would commit the migration's transaction before it starts."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _m001_conversations, _m002_search, _m003_episodes, _m004_facts)  # fmt: skip


# ---- opening --------------------------------------------------------------------------------------------------------


class Database:
    """One connection, shared by the threads of a process (the voice loop answers on a thread of its own)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.connection, self.path = connection, path
        self._lock = threading.RLock()

    def query(self, sql: str, parameters=()) -> list[sqlite3.Row]:
        with self._lock:
            return self.connection.execute(sql, parameters).fetchall()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A transaction that holds the write lock from its start, so it never fails half-way on a busy database."""
        with self._lock:
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self.connection
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")

    def changed_elsewhere(self) -> int:
        """A number that changes when another connection commits (SQLite's ``data_version``)."""
        with self._lock:
            return self.connection.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self.connection.close()


def open_database(path: Path, say: Callable[[str], None] = say_to_stderr) -> Database:
    """The database at ``path``, made or upgraded. A damaged file is moved aside (``say`` tells where) and replaced;
    a read-only place or a newer schema raises LogUnavailable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # private: conversations are personal
    except OSError as error:
        raise LogUnavailable(f"cannot write to {path.parent}: {error.strerror}") from None
    try:
        return _open(path)
    except sqlite3.OperationalError as error:  # locked past the timeout, read-only, disk full, I/O error
        raise LogUnavailable(f"cannot use {path}: {error}") from None
    except sqlite3.DatabaseError as error:  # not a database, or damaged
        aside = move_aside(path)
        say(f"{path} is damaged ({error}); kept it as {aside.name} and started a fresh one")
        try:
            return _open(path)
        except sqlite3.Error as again:
            raise LogUnavailable(f"cannot use {path}: {again}") from None


def move_aside(path: Path) -> Path:
    """Rename a damaged database (and its WAL) out of the way, keeping it for whoever wants to rescue it."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    for n in range(2, 1000):  # never over one kept before (rename would replace it)
        if not aside.exists():
            break
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{n}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.rename(aside.with_name(aside.name + suffix))
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    return aside


def _open(path: Path) -> Database:
    connection = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        connection.row_factory = sqlite3.Row
        _wal(connection)
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the header and the schema
        # Damage past the first page shows only when a query reaches it: look at every page now (3 to 4 ms for
        # 1,000 exchanges and their episodes), so it is moved aside here, not failing `tantra logs` again and again.
        problem = connection.execute("PRAGMA quick_check(1)").fetchone()[0]
        if problem != "ok":
            raise sqlite3.DatabaseError(" ".join(problem.split()))
        database = Database(connection, path)
        _migrate(database)
        return database
    except BaseException:
        connection.close()
        raise


def _wal(connection: sqlite3.Connection) -> None:
    """Turn a new database to WAL. The switch needs the file to itself and SQLite does not wait for it (busy
    handler or not): two processes opening a fresh database at once would fail with "database is locked"."""
    deadline = time.monotonic() + BUSY_SECONDS
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _migrate(database: Database) -> None:
    known = len(MIGRATIONS)
    if database.query("PRAGMA user_version")[0][0] == known:
        return
    with database.write() as db:  # re-read under the lock: another process may have just migrated it
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > known:
            raise LogUnavailable(
                f"{database.path} was written by a newer Tantra (schema {version}; this one knows {known}): "
                "upgrade Tantra, or point TANTRA_DATA_DIR elsewhere"
            )
        for migration in MIGRATIONS[version:]:
            migration(db)
        db.execute(f"PRAGMA user_version = {known}")
