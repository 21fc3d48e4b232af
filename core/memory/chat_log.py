"""The log of conversations: every exchange written as it happens, listed, searched (FTS5, BM25) and continued."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from config.errors import BadInput
from core.memory.log_db import Database

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def new_conversation_id() -> str:
    """A ULID (48 bits of milliseconds, 80 random), in lower case as `llm` writes them: ids sort by time."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def to_the_minute(iso: str) -> str:
    """A logged time as people read it: 2026-11-28 04:05."""
    return iso[:16].replace("T", " ")


def one_line(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class ImageRecord:
    path: str
    sha256: str
    facts: str


@dataclass(frozen=True)
class Exchange:
    id: int
    conversation_id: str
    datetime_utc: str
    model: str
    spiking: bool
    system: str | None
    options: dict
    prompt: str
    reply: str
    prompt_tokens: int | None
    completion_tokens: int | None
    seconds: float | None
    first_token_seconds: float | None
    interrupted: bool
    source: str
    error: str | None
    recalled: list[int] = field(default_factory=list)
    images: list[ImageRecord] = field(default_factory=list)
    rank: float | None = None
    """BM25 score of a search hit (higher is better)."""

    def as_json(self) -> dict:
        document = {name: getattr(self, name) for name in self.__dataclass_fields__}
        document["images"] = [image.__dict__ for image in self.images]
        if self.rank is None:
            del document["rank"]
        return document

    def user_content(self) -> str:
        """The user's turn as the model read it: what each image showed, then the text."""
        notes = [image.facts for image in self.images]
        return "\n".join(notes) + "\n\n" + self.prompt if notes else self.prompt


@dataclass(frozen=True)
class ConversationSummary:
    id: str
    started: str
    model: str | None
    turns: int
    last_at: str
    first_prompt: str

    def as_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ExchangeStart:
    """What is known when a reply starts."""

    model: str
    spiking: bool
    system: str | None
    options: dict
    prompt: str
    source: str = "typed"
    images: tuple[ImageRecord, ...] = ()
    recalled: tuple[int, ...] = ()


def fts_query(text: str) -> str:
    """Any of the words of ``text``, each quoted, so that no user text is read as FTS5 syntax (AND, NEAR, ``*``)."""
    words = dict.fromkeys(word.lower() for word in re.findall(r"\w+", text))  # in order, each once
    return " OR ".join(f'"{word}"' for word in list(words)[:64])


class ChatLog:
    def __init__(self, database: Database) -> None:
        self.db = database

    # ---- writing ----------------------------------------------------------------------------------------------------

    def start(self, conversation_id: str, start: ExchangeStart) -> int:
        """Log the prompt as the reply begins (marked interrupted until it ends); returns the exchange's id."""
        with self.db.write() as db:
            db.execute("INSERT OR IGNORE INTO conversations (id, started, model) VALUES (?, ?, ?)",
                       (conversation_id, _now(), start.model))  # fmt: skip
            cursor = db.execute(
                "INSERT INTO exchanges (conversation_id, datetime_utc, model, spiking, system, options_json, prompt,"
                " source, recalled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, _now(), start.model, int(start.spiking), start.system,
                 json.dumps(start.options), start.prompt, start.source, json.dumps(list(start.recalled))),
            )  # fmt: skip
            exchange_id = cursor.lastrowid
            db.executemany("INSERT INTO images (exchange_id, path, sha256, facts) VALUES (?, ?, ?, ?)",
                           [(exchange_id, i.path, i.sha256, i.facts) for i in start.images])  # fmt: skip
        return exchange_id

    def progress(self, exchange_id: int, reply: str) -> None:
        with self.db.write() as db:
            db.execute("UPDATE exchanges SET reply = ? WHERE id = ?", (reply, exchange_id))

    def finish(self, exchange_id: int, reply: str, *, prompt_tokens: int | None = None,
               completion_tokens: int | None = None, seconds: float | None = None,
               first_token_seconds: float | None = None, interrupted: bool = False,
               error: str | None = None) -> None:  # fmt: skip
        with self.db.write() as db:
            db.execute(
                "UPDATE exchanges SET reply = ?, prompt_tokens = ?, completion_tokens = ?, seconds = ?,"
                " first_token_seconds = ?, interrupted = ?, error = ? WHERE id = ?",
                (reply, prompt_tokens, completion_tokens, seconds, first_token_seconds, int(interrupted), error,
                 exchange_id),
            )  # fmt: skip

    def delete(self, exchange_id: int) -> None:
        """Remove an exchange (its images and episode go with it), and its conversation if nothing else is left."""
        with self.db.write() as db:
            row = db.execute("SELECT conversation_id FROM exchanges WHERE id = ?", (exchange_id,)).fetchone()
            db.execute("DELETE FROM exchanges WHERE id = ?", (exchange_id,))
            if row is not None:
                db.execute("DELETE FROM conversations WHERE id = ? AND NOT EXISTS (SELECT 1 FROM exchanges WHERE"
                           " conversation_id = ?)", (row[0], row[0]))  # fmt: skip

    # ---- reading ----------------------------------------------------------------------------------------------------

    def conversations(self, limit: int = 10) -> list[ConversationSummary]:
        """The latest conversations first; ``limit`` 0 for all."""
        rows = self.db.query(
            """SELECT c.id, c.started, c.model, count(e.id) AS turns, max(e.datetime_utc) AS last_at,
                      (SELECT prompt FROM exchanges WHERE conversation_id = c.id ORDER BY id LIMIT 1) AS first_prompt
               FROM conversations c JOIN exchanges e ON e.conversation_id = c.id
               GROUP BY c.id ORDER BY max(e.id) DESC LIMIT ?""",
            (limit or -1,),
        )
        return [ConversationSummary(r["id"], r["started"], r["model"], r["turns"], r["last_at"], r["first_prompt"])
                for r in rows]  # fmt: skip

    def latest_conversation(self) -> str | None:
        rows = self.db.query("SELECT conversation_id FROM exchanges ORDER BY id DESC LIMIT 1")
        return rows[0][0] if rows else None

    def find_conversation(self, prefix: str) -> str:
        """The conversation whose id is or begins with ``prefix``."""
        prefix = prefix.strip().lower()
        rows = self.db.query("SELECT id FROM conversations WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                             (prefix, prefix + "\U0010ffff")) if prefix else []  # fmt: skip
        if not rows:
            raise BadInput(f"no conversation {prefix!r} in the log; `tantra logs` lists them")
        if len(rows) > 1 and rows[0][0] != prefix:
            raise BadInput(f"{prefix!r} begins more than one conversation's id: give more of it")
        return rows[0][0]

    def exchanges(self, conversation_id: str, limit: int = 0) -> list[Exchange]:
        """A conversation's exchanges in order; ``limit`` keeps the last ones."""
        rows = self.db.query(
            "SELECT * FROM (SELECT * FROM exchanges WHERE conversation_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
            (conversation_id, limit or -1),
        )
        return self._with_images(rows)

    def get(self, exchange_ids: list[int]) -> list[Exchange]:
        marks = ",".join("?" * len(exchange_ids))
        return self._with_images(self.db.query(f"SELECT * FROM exchanges WHERE id IN ({marks})", exchange_ids))

    def search(self, words: str, limit: int = 10, conversation_id: str | None = None) -> list[Exchange]:
        """Exchanges that hold any of ``words``, best first (BM25; a hit in the prompt counts twice)."""
        query = fts_query(words)
        if not query:
            raise BadInput("give words to search for")
        rows = self.db.query(
            f"""SELECT e.*, -bm25(exchanges_fts, 2.0, 1.0) AS rank FROM exchanges_fts
                JOIN exchanges e ON e.id = exchanges_fts.rowid
                WHERE exchanges_fts MATCH ? {"AND e.conversation_id = ?" if conversation_id else ""}
                ORDER BY rank DESC LIMIT ?""",
            (query, conversation_id, limit or -1) if conversation_id else (query, limit or -1),
        )
        return self._with_images(rows)

    def _with_images(self, rows) -> list[Exchange]:
        ids = [row["id"] for row in rows]
        images: dict[int, list[ImageRecord]] = {}
        if ids:
            marks = ",".join("?" * len(ids))
            for image in self.db.query(f"SELECT * FROM images WHERE exchange_id IN ({marks}) ORDER BY rowid", ids):
                images.setdefault(image["exchange_id"], []).append(
                    ImageRecord(image["path"], image["sha256"], image["facts"])
                )
        return [_exchange(row, images.get(row["id"], [])) for row in rows]


def _exchange(row, images: list[ImageRecord]) -> Exchange:
    keys = row.keys()
    return Exchange(
        id=row["id"], conversation_id=row["conversation_id"], datetime_utc=row["datetime_utc"], model=row["model"],
        spiking=bool(row["spiking"]), system=row["system"], options=json.loads(row["options_json"]),
        prompt=row["prompt"], reply=row["reply"], prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"], seconds=row["seconds"],
        first_token_seconds=row["first_token_seconds"], interrupted=bool(row["interrupted"]), source=row["source"],
        error=row["error"], recalled=json.loads(row["recalled"] or "[]") if "recalled" in keys else [],
        images=images, rank=row["rank"] if "rank" in keys else None,
    )  # fmt: skip
