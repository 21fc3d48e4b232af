"""``tantra.db`` when processes go wrong: writers killed with SIGKILL mid-write (none of the finished exchanges
lost, the cut one kept as far as it went) and several processes logging or creating the database at once.

Fast tests use small writer processes (``WRITER``); slow ones run the real ``tantra chat`` (SmolLM2-135M as
SpikingBrain) in subprocesses. The database's damaged, foreign, unwritable, newer and older files are in
``test_log_files.py``."""

from __future__ import annotations

import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_tantra
from tests.log_faults_helpers import assert_sound, plain

# A process that logs exchanges as a chat does (start, the reply growing, finish) as fast as it can, and prints
# the id of each exchange once its finish is committed. argv: database, name, count (0: until killed), and "go" to
# begin at once or "wait" to begin at the unix time it reads on stdin (so that several begin together).
# "open" as the name: only open fresh databases in the directory given, one every 30 ms.
WRITER = r"""
import sys, time
from pathlib import Path
from core.memory.chat_log import ChatLog, ExchangeStart, new_conversation_id
from core.memory.log_db import open_database

path, name, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
log = None if name == "open" else ChatLog(open_database(path))
print("ready", flush=True)
if go == "wait":
    time.sleep(max(0.0, float(sys.stdin.readline()) - time.time()))
if name == "open":
    began = time.time()
    for round in range(count):
        time.sleep(max(0.0, began + round * 0.03 - time.time()))
        open_database(path / f"round{round}.db").close()
    sys.exit(0)
print("began", time.time(), flush=True)
conversation, i = new_conversation_id(), 0
while i < count or not count:
    prompt = f"{name} {i}"
    words = [f"{name}w{i}x{k}" for k in range(12)]
    exchange = log.start(conversation, ExchangeStart("writer", True, None, {"n": i}, prompt, "argument"))
    log.progress(exchange, " ".join(words[:4]))
    log.progress(exchange, " ".join(words[:8]))
    log.finish(exchange, " ".join(words), prompt_tokens=2, completion_tokens=12, seconds=0.5)
    print(exchange, flush=True)
    i += 1
print("ended", time.time(), flush=True)
"""


def reply_of(prompt: str) -> str:
    """The whole reply WRITER gives to ``prompt``; it writes its first 4 and 8 words on the way."""
    name, i = prompt.split()
    return " ".join(f"{name}w{i}x{k}" for k in range(12))


def _writer(path: Path, name: str, count: int, go: str = "go") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(count), go], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _together(processes: list[subprocess.Popen]) -> None:
    """Once every WRITER is ready, tell them all to begin at the same moment."""
    assert [process.stdout.readline() for process in processes] == ["ready\n"] * len(processes)
    go = f"{time.time() + 0.02}\n"
    for process in processes:
        process.stdin.write(go)
        process.stdin.flush()


# ---- kill -9 ----------------------------------------------------------------------------------------------------


def test_kill_9_at_random_moments_while_writing_loses_no_finished_exchange(tmp_path):
    path = tmp_path / "tantra.db"
    finished: list[int] = []
    delays = [random.uniform(0.002, 0.08) for _ in range(3)]
    for round, delay in enumerate(delays):
        writer = _writer(path, f"r{round}", 0)
        assert writer.stdout.readline() == "ready\n", writer.stderr.read()
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
        out, err = writer.communicate()
        assert writer.returncode == -signal.SIGKILL and not err, err
        written = [int(line) for line in out.split() if line.isdigit()]
        finished += written
        assert_sound(path)  # after every kill, before anything of Tantra's touches it again

    db = plain(path)
    rows = {row[0]: row[1:] for row in db.execute("SELECT id, prompt, reply, interrupted, completion_tokens FROM"
                                                  " exchanges")}  # fmt: skip
    db.close()
    assert finished, f"nothing was finished before the kills at {delays}"
    for exchange in finished:
        prompt, reply, interrupted, tokens = rows[exchange]
        assert (reply, interrupted, tokens) == (reply_of(prompt), 0, 12)
    for prompt, reply, interrupted, _ in rows.values():  # the exchange a kill cut: what was written of it
        assert reply_of(prompt).startswith(reply) and (interrupted == 0) == (reply == reply_of(prompt))
    said = []
    from core.memory.log_db import open_database

    open_database(path, say=said.append).close()
    assert said == []  # nothing to move aside


STORY = "Write a very long story about a dragon, in many paragraphs."


@pytest.mark.slow
def test_kill_9_mid_reply_keeps_earlier_turns_and_the_reply_as_far_as_it_went(tmp_path):
    env = {"TANTRA_DATA_DIR": str(tmp_path)}
    first = run_tantra("chat", "--json", "-t", "0", "-n", "20", "Name three colours.", env=env)
    assert first.returncode == 0, first.stderr.decode()
    conversation = json.loads(first.stdout)["conversation_id"]
    path = tmp_path / "tantra.db"
    db = plain(path)
    before = db.execute("SELECT * FROM exchanges").fetchall()
    db.close()
    assert len(before) == 1

    # Asked so that the greedy reply runs to its 300 tokens, over 3 s: the kill must come mid-reply (a plain "long
    # story" was 90 tokens with the 4-bit weights, over within the 1.2 s the test waits).
    story = subprocess.Popen([sys.executable, "-m", "tantra_cli", "chat", "-c", "-t", "0", "-n", "300", STORY],
                             cwd=ROOT, env={**os.environ, **env},
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    printed, arrivals = b"", []  # (when, how much had arrived)
    first_bytes = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([story.stdout], [], [], 0.05)
        if ready:
            chunk = os.read(story.stdout.fileno(), 65536)
            if not chunk:
                break
            printed += chunk
            arrivals.append((time.monotonic(), len(printed)))
            first_bytes = first_bytes or time.monotonic()
        if first_bytes and time.monotonic() - first_bytes > 1.2 and len(printed) >= 150:
            break
    killed_at = time.monotonic()
    story.send_signal(signal.SIGKILL)
    rest, err = story.communicate(timeout=30)
    printed += rest
    assert story.returncode == -signal.SIGKILL, f"the reply ended before the kill: {err.decode()}"

    assert_sound(path)
    db = plain(path)
    rows = db.execute("SELECT * FROM exchanges ORDER BY id").fetchall()
    cut = db.execute("SELECT conversation_id, prompt, reply, interrupted, completion_tokens FROM exchanges"
                     " ORDER BY id DESC LIMIT 1").fetchone()  # fmt: skip
    db.close()
    assert rows[0] == before[0] and before[0][13] == 0  # the earlier turn: untouched, complete (interrupted 0)
    assert len(rows) == 2 and cut[:2] == (conversation, STORY)
    text, reply = printed.decode(), cut[2]
    assert cut[3] == 1 and cut[4] is None and reply.strip()
    # The log may hold one piece more than was printed (it is written just before the piece is printed).
    assert text.startswith(reply) or (reply.startswith(text) and len(reply) - len(text) < 40), (reply, text)
    # A kill costs at most PROGRESS_SECONDS of the reply (and some slack for a busy machine).
    sure = max((n for when, n in arrivals if when < killed_at - 0.25 - 0.5), default=0)
    assert len(reply.encode()) >= sure, (len(reply.encode()), sure)

    again = run_tantra("chat", "-c", "--json", "-t", "0", "-n", "10", "Give the dragon a name.", env=env)
    assert again.returncode == 0, again.stderr.decode()
    assert json.loads(again.stdout)["conversation_id"] == conversation and json.loads(again.stdout)["reply"]
    shown = run_tantra("logs", "-c", env=env)
    assert shown.returncode == 0, shown.stderr.decode()
    out = shown.stdout.decode()
    headings = [line for line in out.splitlines() if re.match(r"## \d{4}-\d\d-\d\d \d\d:\d\d #\d+ \(", line)]
    assert reply.strip() in out and len(headings) == 3, out
    assert ["interrupted)" in heading for heading in headings] == [False, True, False], headings


# ---- several processes at once ----------------------------------------------------------------------------------


def test_three_processes_logging_at_once_all_get_through(tmp_path):
    path = tmp_path / "tantra.db"  # not there yet: the first of them makes it
    writers = [_writer(path, name, 200, "wait") for name in ("a", "b", "c")]
    _together(writers)
    results = [writer.communicate(timeout=60) for writer in writers]
    for writer, (out, err) in zip(writers, results):
        assert writer.returncode == 0 and "locked" not in err and not err, err
    spans = [(float(out.split()[1]), float(out.split()[-1])) for out, _ in results]
    assert max(began for began, _ in spans) < min(ended for _, ended in spans), spans  # they did overlap

    assert_sound(path)
    db = plain(path)
    rows = db.execute("SELECT prompt, reply, interrupted FROM exchanges").fetchall()
    assert db.execute("SELECT count(*) FROM conversations").fetchone()[0] == 3
    db.close()
    assert len(rows) == 600 and len({prompt for prompt, _, _ in rows}) == 600
    assert all(reply == reply_of(prompt) and interrupted == 0 for prompt, reply, interrupted in rows)


def test_processes_opening_a_fresh_database_at_the_same_moment_all_succeed(tmp_path):
    from core.memory.log_db import MIGRATIONS

    rounds = 10
    openers = [_writer(tmp_path, "open", rounds, "wait") for _ in range(4)]
    _together(openers)
    for opener in openers:
        _, err = opener.communicate(timeout=60)
        assert opener.returncode == 0, err
    for round in range(rounds):
        db = plain(tmp_path / f"round{round}.db")
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'episodes'").fetchone()[0] == 1
        db.close()


@pytest.mark.slow
def test_two_chats_started_together_both_answer_and_both_are_logged(tmp_path):
    env = {**os.environ, "TANTRA_DATA_DIR": str(tmp_path)}
    prompts = ["Name a colour.", "Name a fruit."]
    chats = [subprocess.Popen([sys.executable, "-m", "tantra_cli", "chat", "--json", "-t", "0", "-n", "20", prompt],
                              cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for prompt in prompts]  # fmt: skip
    replies = {}
    for prompt, chat in zip(prompts, chats):
        out, err = chat.communicate(timeout=300)
        assert chat.returncode == 0 and "not logging" not in err, err
        replies[prompt] = json.loads(out)["reply"]
    db = plain(tmp_path / "tantra.db")
    logged = dict(db.execute("SELECT prompt, reply FROM exchanges WHERE interrupted = 0").fetchall())
    db.close()
    assert logged == replies
