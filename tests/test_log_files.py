"""``tantra.db`` when its file goes wrong: damaged or foreign files (moved aside once, a fresh one made), a data
directory that cannot be written, a log of a newer Tantra, old schemas to migrate, huge turns, the file's mode.

Most tests open the database in-process or run ``tantra logs``; slow ones run the real ``tantra chat``
(SmolLM2-135M as SpikingBrain) in a subprocess. Processes killed mid-write and several writing at once are in
``test_log_processes.py``."""

from __future__ import annotations

import json
import os
import random
import sqlite3
import stat
from pathlib import Path

import pytest

from tests.conftest import run_tantra
from tests.log_faults_helpers import assert_sound, plain


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _populated(path: Path, exchanges: int = 60) -> None:
    """A log of ``exchanges`` with long replies, written and closed (checkpointed: no WAL beside it)."""
    from core.memory.chat_log import ChatLog, ExchangeStart
    from core.memory.log_db import open_database

    database = open_database(path)
    log = ChatLog(database)
    for i in range(exchanges):
        exchange = log.start(f"01kpopulated{i // 5:04d}", ExchangeStart("m", True, None, {}, f"question {i}"))
        log.finish(exchange, f"answer {i} " + "about dragons and their gold " * 40)
    database.close()
    assert not path.with_name(path.name + "-wal").exists()


# ---- damaged and foreign files ----------------------------------------------------------------------------------


def _garbage(path: Path) -> None:
    path.write_bytes(random.Random(7).randbytes(20_000))


def _truncated(path: Path) -> None:
    _populated(path)
    with path.open("r+b") as file:
        file.truncate(path.stat().st_size // 2)


def _damaged_inside(path: Path) -> None:
    """A page in the middle overwritten: the header and the schema are fine, so opening alone does not see it."""
    _populated(path)
    pages = path.stat().st_size // 4096
    with path.open("r+b") as file:
        file.seek(pages // 2 * 4096)
        file.write(b"\xff" * 4096)
    db = plain(path)
    assert db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    try:
        found = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as error:  # reported as a row, or raised
        found = [(str(error),)]
    db.close()
    assert found != [("ok",)]


@pytest.mark.parametrize("damage", [_garbage, _truncated, _damaged_inside], ids=["garbage", "truncated", "inside"])
def test_a_damaged_log_is_moved_aside_once_and_a_fresh_one_made(tmp_path, damage):
    from core.memory.log_db import MIGRATIONS

    path = tmp_path / "tantra.db"
    damage(path)
    damaged = path.read_bytes()
    env = {"TANTRA_DATA_DIR": str(tmp_path)}

    result = run_tantra("logs", "--json", env=env)
    assert result.returncode == 0 and json.loads(result.stdout) == [], result.stderr.decode()
    kept = sorted(tmp_path.glob("tantra.db.damaged-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == damaged
    said = _lines(result.stderr.decode())
    assert len(said) == 1 and f"{path} is damaged" in said[0] and kept[0].name in said[0], said
    db = plain(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert db.execute("SELECT count(*) FROM exchanges").fetchone()[0] == 0
    db.close()

    again = run_tantra("logs", "--json", env=env)  # the fresh one is used, nothing more is moved
    assert again.returncode == 0 and again.stderr == b"" and len(list(tmp_path.glob("tantra.db.damaged-*"))) == 1


def test_a_zero_byte_log_is_simply_made_into_a_database(tmp_path):
    (tmp_path / "tantra.db").touch()
    result = run_tantra("logs", "--json", env={"TANTRA_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0 and json.loads(result.stdout) == [] and result.stderr == b""
    assert [p.name for p in tmp_path.iterdir() if "damaged" in p.name] == []


def test_damage_found_twice_in_one_second_keeps_both_damaged_files(tmp_path):
    from core.memory.log_db import open_database

    path, said = tmp_path / "tantra.db", []
    for content in (b"first damaged file " * 100, b"second damaged file " * 100):
        path.write_bytes(content)
        open_database(path, say=said.append).close()
    kept = sorted(tmp_path.glob("tantra.db.damaged-*"))
    assert len(said) == 2 and {p.read_bytes()[:6] for p in kept} == {b"first ", b"second"}, [p.name for p in kept]


# ---- a data directory that cannot be written --------------------------------------------------------------------


def _unwritable(tmp_path: Path, how: str) -> Path:
    if how == "proc":
        return Path("/proc/tantra-data")  # even root cannot make a directory there
    if how == "db-is-a-directory":
        (tmp_path / "tantra.db").mkdir()
        return tmp_path
    (tmp_path / "data").write_text("a file where the data directory should be")
    return tmp_path / "data"


@pytest.mark.parametrize("how", ["proc", "db-is-a-directory", "dir-is-a-file"])
def test_a_journal_that_cannot_write_says_so_once_and_lets_the_chat_go_on(tmp_path, how):
    from dataclasses import replace

    from config.settings import load_settings
    from core.memory.chat_log import ExchangeStart
    from core.memory.journal import open_journal

    said = []
    journal = open_journal(replace(load_settings(), data_dir=_unwritable(tmp_path, how)), lambda: None, say=said.append)
    for _ in range(2):
        journal.recall("anything")
        journal.begin(ExchangeStart("m", True, None, {}, "hello")).finish("hi")
    assert len(said) == 1 and said[0].startswith("not logging: "), said
    assert journal.log is None and journal.memory is None


@pytest.mark.slow
@pytest.mark.parametrize("how", ["proc", "db-is-a-directory"])
def test_a_chat_in_a_read_only_data_directory_answers_and_says_once_it_is_not_logging(tmp_path, how):
    data_dir = _unwritable(tmp_path, how)
    env = {"TANTRA_DATA_DIR": str(data_dir)}
    result = run_tantra("chat", "--json", "-t", "0", "-n", "20", "Name a colour.", env=env)
    said = _lines(result.stderr.decode())
    assert result.returncode == 0, said
    answer = json.loads(result.stdout)
    assert answer["reply"] and answer["conversation_id"] is None
    assert len(said) == 1 and said[0].startswith("tantra: not logging: "), said
    if how == "db-is-a-directory":
        assert (data_dir / "tantra.db").is_dir() and not list(data_dir.glob("*damaged*"))  # not "repaired"


# ---- a newer Tantra's log ---------------------------------------------------------------------------------------


def _newer(tmp_path: Path) -> int:
    from core.memory.log_db import MIGRATIONS

    version = len(MIGRATIONS) + 5
    db = plain(tmp_path / "tantra.db")
    db.execute("CREATE TABLE from_the_future (x)")
    db.execute(f"PRAGMA user_version = {version}")
    db.close()
    return version


def _untouched(tmp_path: Path, version: int) -> None:
    db = plain(tmp_path / "tantra.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == version
    assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("from_the_future",)]
    db.close()
    assert not list(tmp_path.glob("*damaged*"))


def test_logs_refuses_a_log_written_by_a_newer_tantra_in_one_line(tmp_path):
    version = _newer(tmp_path)
    result = run_tantra("logs", env={"TANTRA_DATA_DIR": str(tmp_path)})
    said = _lines(result.stderr.decode())
    assert result.returncode == 1 and result.stdout == b"", said
    assert len(said) == 1 and said[0].startswith("tantra: error: ") and "newer Tantra" in said[0], said
    assert f"schema {version}" in said[0] and "Traceback" not in result.stderr.decode()
    _untouched(tmp_path, version)


@pytest.mark.slow
def test_a_chat_on_a_newer_tantras_log_answers_and_says_once_it_is_not_logging(tmp_path):
    version = _newer(tmp_path)
    result = run_tantra("chat", "-t", "0", "-n", "20", "Name a colour.", env={"TANTRA_DATA_DIR": str(tmp_path)})
    said = _lines(result.stderr.decode())
    assert result.returncode == 0 and result.stdout.decode().strip(), said
    assert len(said) == 1 and said[0].startswith("tantra: not logging: ") and "newer Tantra" in said[0], said
    _untouched(tmp_path, version)


# ---- migrations -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["missing", "zero-bytes"])
def test_a_new_database_gets_every_migration(tmp_path, start):
    from core.memory.chat_log import ChatLog, ExchangeStart
    from core.memory.log_db import MIGRATIONS, open_database

    path = tmp_path / "tantra.db"
    if start == "zero-bytes":
        path.touch()
    database = open_database(path)
    log = ChatLog(database)
    log.finish(log.start("01kfresh", ExchangeStart("m", True, None, {}, "a wyvern question")), "a wyvern answer")
    assert [e.reply for e in log.search("wyvern")] == ["a wyvern answer"]
    assert database.query("PRAGMA user_version")[0][0] == len(MIGRATIONS)
    tables = {row[0] for row in database.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"conversations", "exchanges", "images", "exchanges_fts", "episodes", "facts", "facts_fts"} <= tables
    database.close()


V1_EXCHANGE_COLUMNS = (
    "id, conversation_id, datetime_utc, model, spiking, system, options_json, prompt, reply, prompt_tokens,"
    " completion_tokens, seconds, first_token_seconds, interrupted, source, error"
)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_older_database_is_upgraded_with_its_rows_intact_and_searchable(tmp_path, version):
    from core.memory.chat_log import ChatLog, ExchangeStart
    from core.memory.log_db import MIGRATIONS, open_database

    path = tmp_path / "tantra.db"
    old = plain(path)
    old.execute("BEGIN")
    for migration in MIGRATIONS[:version]:
        migration(old)
    old.execute(f"PRAGMA user_version = {version}")
    old.execute("COMMIT")
    old.execute("INSERT INTO conversations VALUES ('01kolder', '2025-01-02T03:04:05.000+00:00', 'old-lm')")
    turns = [("Tell me about the griffin.", "A griffin is half eagle.", 0),
             ("And the basilisk?", "A basilisk is a serpent", 1)]  # fmt: skip
    for i, (prompt, reply, interrupted) in enumerate(turns):
        old.execute(f"INSERT INTO exchanges ({V1_EXCHANGE_COLUMNS}) VALUES (?, '01kolder', ?, 'old-lm', 1, NULL,"
                    " '{}', ?, ?, 5, 7, 0.5, 0.1, ?, 'typed', NULL)",
                    (i + 1, f"2025-01-02T03:0{i}:00.000+00:00", prompt, reply, interrupted))  # fmt: skip
    rows_before = old.execute(f"SELECT {V1_EXCHANGE_COLUMNS} FROM exchanges ORDER BY id").fetchall()
    old.close()

    database = open_database(path)
    assert database.query("PRAGMA user_version")[0][0] == len(MIGRATIONS)
    assert [tuple(r) for r in database.query(f"SELECT {V1_EXCHANGE_COLUMNS} FROM exchanges ORDER BY id")] == rows_before
    log = ChatLog(database)
    assert [e.prompt for e in log.search("griffin")] == ["Tell me about the griffin."]
    assert [e.reply for e in log.search("serpent")] == ["A basilisk is a serpent"]
    assert [(e.interrupted, e.recalled) for e in log.exchanges("01kolder")] == [(False, []), (True, [])]
    assert database.query("SELECT count(*) FROM episodes")[0][0] == 0  # the table is there, empty
    log.finish(log.start("01kolder", ExchangeStart("m", True, None, {}, "a new griffin turn")), "new")
    assert len(log.search("griffin")) == 2
    database.close()
    assert_sound(path)


def test_the_episodes_of_a_database_before_facts_keep_the_users_statements(tmp_path):
    """Schema 3 kept each exchange as an episode with the vectors of its prompt and of prompt and reply; schema 4
    keeps the statements of the prompt, to be embedded at the next recall, and drops episodes that have none."""
    from core.memory.chat_log import ChatLog
    from core.memory.episodes import EpisodicMemory
    from core.memory.log_db import MIGRATIONS, open_database
    from tests.fakes import FakeEmbedder

    path = tmp_path / "tantra.db"
    old = plain(path)
    old.execute("PRAGMA foreign_keys=ON")
    old.execute("BEGIN")
    for migration in MIGRATIONS[:3]:
        migration(old)
    old.execute("PRAGMA user_version = 3")
    old.execute("COMMIT")
    old.execute("INSERT INTO conversations VALUES ('01kolder', '2025-01-02T03:04:05.000+00:00', 'old-lm')")
    turns = [("My sister's name is Zorbalina and she lives in Lisbon. Where should we eat?", "In Ava, at Pedro's."),
             ("Where does my sister live?", "Your sister lives in Ava."),
             ("Hi! I keep bees.", "Lovely.")]  # fmt: skip
    for i, (prompt, reply) in enumerate(turns):
        old.execute(f"INSERT INTO exchanges ({V1_EXCHANGE_COLUMNS}) VALUES (?, '01kolder', ?, 'old-lm', 1, NULL,"
                    " '{}', ?, ?, 5, 7, 0.5, 0.1, 0, 'typed', NULL)",
                    (i + 1, f"2025-01-02T03:0{i}:00.000+00:00", prompt, reply))  # fmt: skip
        old.execute("INSERT INTO episodes (exchange_id, vector, embedder, recalled_at) VALUES (?, ?, 'old', ?)",
                    (i + 1, bytes(2 * 384 * 4), 100.0 + i))  # fmt: skip
    old.close()

    database = open_database(path)
    assert database.query("PRAGMA user_version")[0][0] == len(MIGRATIONS) >= 4
    facts = [tuple(r) for r in database.query("SELECT exchange_id, text, vector FROM facts ORDER BY id")]
    assert facts == [(1, "My sister's name is Zorbalina and she lives in Lisbon.", None), (3, "I keep bees.", None)]
    assert [r[0] for r in database.query("SELECT exchange_id FROM episodes ORDER BY exchange_id")] == [1, 3]
    assert database.query("SELECT count(*) FROM episodes WHERE vector IS NOT NULL")[0][0] == 0  # no reply embedded
    assert len(ChatLog(database).exchanges("01kolder")) == 3  # the log keeps the question

    embedder = FakeEmbedder()
    memory = EpisodicMemory(database, lambda: embedder)
    [recalled] = memory.recall("what is my sister's name")
    assert recalled.exchange.id == 1 and recalled.facts == ("My sister's name is Zorbalina and she lives in Lisbon.",)
    assert database.query("SELECT count(*) FROM facts WHERE embedder = ?", (embedder.name,))[0][0] == 2
    assert [e.facts for e in memory.episodes(0)] == [("I keep bees.",), facts[0][1:2]]
    database.close()
    assert_sound(path)


# ---- huge turns -------------------------------------------------------------------------------------------------


def _megabyte(seed: int) -> str:
    rng = random.Random(seed)
    words = ["dragon", "castle", "river", "stone", "night", "ember", "wing", "gold", "é", "龍"]
    text = " ".join(rng.choice(words) for _ in range(220_000))
    return text[:1_000_000].strip()


def test_a_one_megabyte_prompt_and_reply_round_trip(tmp_path):
    from core.memory.chat_log import ChatLog, ExchangeStart
    from core.memory.log_db import open_database

    prompt, reply = _megabyte(1), _megabyte(2) + " zyzzyva"
    database = open_database(tmp_path / "tantra.db")
    log = ChatLog(database)
    exchange = log.start("01khuge", ExchangeStart("m", True, None, {}, prompt))
    log.progress(exchange, reply[:500_000])
    log.finish(exchange, reply, completion_tokens=1)
    database.close()

    log = ChatLog(open_database(tmp_path / "tantra.db"))  # as another process would read it
    [logged] = log.exchanges("01khuge")
    assert logged.prompt == prompt and logged.reply == reply and not logged.interrupted
    assert [e.id for e in log.search("zyzzyva")] == [exchange]
    log.db.close()


@pytest.mark.slow
def test_a_one_megabyte_prompt_is_refused_by_the_model_but_logged_whole(tmp_path):
    text = _megabyte(3)
    assert len(text.encode()) >= 1_000_000
    result = run_tantra("chat", "-t", "0", "-n", "10", stdin=text.encode(), env={"TANTRA_DATA_DIR": str(tmp_path)})
    said = _lines(result.stderr.decode())
    assert result.returncode == 1 and result.stdout == b"", said
    assert len(said) == 1 and said[0].startswith("tantra: error: the prompt is ") and "context" in said[0], said
    db = plain(tmp_path / "tantra.db")
    [(prompt, reply, error, interrupted, source)] = db.execute(
        "SELECT prompt, reply, error, interrupted, source FROM exchanges").fetchall()
    db.close()
    assert prompt == text and reply == "" and (interrupted, source) == (0, "stdin")
    assert error and error in said[0]


# ---- the file's mode --------------------------------------------------------------------------------------------


def test_the_log_and_its_wal_are_private_to_their_owner(tmp_path):
    from core.memory.chat_log import ChatLog, ExchangeStart
    from core.memory.log_db import move_aside, open_database

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    path = tmp_path / "data" / "tantra.db"
    umask = os.umask(0o022)  # the usual one: it would leave a file made without a mode readable by all
    try:
        database = open_database(path)
        log = ChatLog(database)
        log.finish(log.start("01kmode", ExchangeStart("m", True, None, {}, "a secret")), "kept")
        assert mode(path) == 0o600 and mode(path.parent) == 0o700
        assert mode(path.with_name("tantra.db-wal")) == 0o600 and mode(path.with_name("tantra.db-shm")) == 0o600
        database.close()
        move_aside(path)
        assert mode(path) == 0o600  # the fresh one
    finally:
        os.umask(umask)
