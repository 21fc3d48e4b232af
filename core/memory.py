"""Episodic memory: every exchange an episode, recalled into later conversations when it is like the new message.

An episode is one exchange of the log (the user's turn and the reply), embedded by a sentence-embedding model
twice: the user's turn alone, where the facts a person tells are, and the whole exchange, where the facts of a
reply are (a rambling reply would blur the first). An episode is as like a message as the closer of the two.
The vectors of all episodes are held as one normalised array, so recall is one matrix-vector product (1,000
episodes: well under a millisecond), blended with the BM25 rank of the same episodes in the log's FTS5 index:
the embedding finds "what is my sister called?" for "my sister's name is Ada", the words find rare names and
numbers that embeddings blur. At most ``capacity`` episodes are kept; the least recently recalled go first.

Without an embedder (not pulled and not pullable), recall falls back to the words alone and says so once; the
episodes it keeps meanwhile are embedded when an embedder is there again.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.chat_log import ChatLog, Exchange, fts_query
from core.log_db import Database

RECALLED = 3
"""Episodes put before a message at most."""
SIMILARITY_WEIGHT, WORDS_WEIGHT = 0.8, 0.2
THRESHOLD = 0.33
"""Of the blended score. Measured with all-MiniLM-L6-v2: a question about a fact told earlier has a cosine of
0.45-0.9 with it, an unrelated exchange under 0.3 (tests/test_memory.py)."""
WORDS_ONLY_THRESHOLD = 0.5
BM25_SATURATION = 8.0
"""BM25 of a match on one rare word among ~1,000 episodes: the words score saturates there (a score relative to
the best hit would rate a match on "the" as highly as one on "Zanzibar")."""
EMBED_CHARACTERS = 2000
"""Of the exchange, embedded: the model reads 256 word pieces at most, so more is never read."""


@dataclass(frozen=True)
class Recollection:
    exchange: Exchange
    score: float
    similarity: float | None
    """Cosine of the episode's embedding and the message's (None without an embedder)."""
    words: float

    def as_json(self) -> dict:
        exchange = self.exchange
        return {"episode": exchange.id, "score": round(self.score, 3), "conversation": exchange.conversation_id,
                "datetime_utc": exchange.datetime_utc, "prompt": exchange.prompt, "reply": exchange.reply}  # fmt: skip


def _locked(method):
    """One thread at a time: the chat's, and the one that loads the embedder while the language model loads."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return run


def episode_texts(prompt: str, reply: str) -> list[str]:
    """What is embedded of an exchange: the user's turn, and the whole exchange."""
    return [prompt.strip()[:EMBED_CHARACTERS], f"{prompt.strip()}\n{reply.strip()}"[:EMBED_CHARACTERS]]


def _episode_vectors(embedder, exchanges: list[tuple[str, str]]) -> np.ndarray:
    """(N, 2, dim): each exchange's two vectors, embedded in one batch."""
    texts = [text for prompt, reply in exchanges for text in episode_texts(prompt, reply)]
    return embedder.embed(texts).reshape(len(exchanges), 2, embedder.dim)


class EpisodicMemory:
    def __init__(self, database: Database, embedder: Callable[[], object | None], capacity: int = 1000) -> None:
        """``embedder`` gives the TextEmbedder when it is first needed (loading it costs a moment), or None."""
        self.db, self.log, self.capacity = database, ChatLog(database), capacity
        self._get_embedder, self._embedder, self._asked = embedder, None, False
        self._ids = np.zeros(0, dtype=np.int64)
        self._conversations: list[str] = []
        self._vectors = np.zeros((0, 2, 0), dtype=np.float32)
        """(episodes, 2, dim): the user's turn and the whole exchange, each unit-length."""
        self._seen_version: int | None = None
        self._lock = threading.RLock()

    def prepare(self) -> threading.Thread:
        """Load the embedder and the episodes on a thread of their own, so that the first recall finds them ready."""
        thread = threading.Thread(target=self._refresh, name="memory", daemon=True)
        thread.start()
        return thread

    @property
    @_locked
    def embedder(self):
        if not self._asked:
            self._asked = True
            self._embedder = self._get_embedder()
        return self._embedder

    # ---- the matrix -------------------------------------------------------------------------------------------------

    @_locked
    def _refresh(self) -> None:
        """Load the episodes, again when another process has written since (a cheap pragma tells)."""
        version = self.db.changed_elsewhere()
        if version == self._seen_version:
            return
        embedder = self.embedder
        self._seen_version = version
        if embedder is None:  # recall goes by words alone
            return
        self._embed_missing(embedder)
        rows = self.db.query("SELECT p.exchange_id, e.conversation_id, p.vector FROM episodes p JOIN exchanges e"
                             " ON e.id = p.exchange_id WHERE p.embedder = ? ORDER BY p.exchange_id",
                             (embedder.name,))  # fmt: skip
        self._ids = np.array([r["exchange_id"] for r in rows], dtype=np.int64)
        self._conversations = [r["conversation_id"] for r in rows]
        vectors = np.frombuffer(b"".join(r["vector"] for r in rows), dtype=np.float32)
        self._vectors = vectors.reshape(len(rows), 2, embedder.dim)

    def _embed_missing(self, embedder) -> None:
        """Episodes kept without an embedder, or by another one, are embedded now (in batches of 64)."""
        while True:
            rows = self.db.query("SELECT p.exchange_id, e.prompt, e.reply FROM episodes p JOIN exchanges e ON"
                                 " e.id = p.exchange_id WHERE p.embedder IS NOT ? LIMIT 64",
                                 (embedder.name,))  # fmt: skip
            if not rows:
                return
            vectors = _episode_vectors(embedder, [(r["prompt"], r["reply"]) for r in rows])
            with self.db.write() as db:
                db.executemany("UPDATE episodes SET vector = ?, embedder = ? WHERE exchange_id = ?",
                               [(v.tobytes(), embedder.name, r["exchange_id"])
                                for v, r in zip(vectors, rows)])  # fmt: skip

    # ---- remembering ------------------------------------------------------------------------------------------------

    @_locked
    def remember(self, exchange: Exchange) -> None:
        """Keep ``exchange`` as an episode; past the capacity, forget the least recently recalled."""
        self._refresh()
        embedder = self.embedder
        vector = None if embedder is None else _episode_vectors(embedder, [(exchange.prompt, exchange.reply)])[0]
        with self.db.write() as db:
            db.execute("INSERT OR REPLACE INTO episodes (exchange_id, vector, embedder, recalled_at)"
                       " VALUES (?, ?, ?, ?)",
                       (exchange.id, None if vector is None else vector.tobytes(),
                        None if embedder is None else embedder.name, time.time()))  # fmt: skip
            excess = db.execute("SELECT count(*) FROM episodes").fetchone()[0] - self.capacity
            gone = [r[0] for r in db.execute("SELECT exchange_id FROM episodes ORDER BY recalled_at, exchange_id"
                                             " LIMIT ?", (max(excess, 0),))]  # fmt: skip
            db.executemany("DELETE FROM episodes WHERE exchange_id = ?", [(i,) for i in gone])
        if vector is not None:
            self._ids = np.append(self._ids, exchange.id)
            self._conversations.append(exchange.conversation_id)
            self._vectors = np.concatenate([self._vectors.reshape(-1, *vector.shape), vector[None]])
        self._drop(gone)

    def _drop(self, ids: list[int]) -> None:
        keep = ~np.isin(self._ids, ids)
        self._ids, self._vectors = self._ids[keep], self._vectors[keep]
        self._conversations = [c for c, k in zip(self._conversations, keep) if k]

    @_locked
    def forget(self, episode: int) -> bool:
        with self.db.write() as db:
            gone = db.execute("DELETE FROM episodes WHERE exchange_id = ?", (episode,)).rowcount
        self._drop([episode])
        return bool(gone)

    @_locked
    def clear(self) -> int:
        with self.db.write() as db:
            gone = db.execute("DELETE FROM episodes").rowcount
        self._drop(self._ids.tolist())
        return gone

    def count(self) -> int:
        return self.db.query("SELECT count(*) FROM episodes")[0][0]

    def episodes(self, limit: int = 20) -> list[Exchange]:
        """The latest episodes first."""
        rows = self.db.query("SELECT exchange_id FROM episodes ORDER BY exchange_id DESC LIMIT ?", (limit or -1,))
        return sorted(self.log.get([r[0] for r in rows]), key=lambda e: -e.id)

    # ---- recalling --------------------------------------------------------------------------------------------------

    @_locked
    def recall(self, text: str, exclude_conversation: str | None = None, limit: int = RECALLED,
               mark: bool = True, exclude: set[int] = frozenset()) -> list[Recollection]:  # fmt: skip
        """The episodes most like ``text`` above the threshold, best first, from conversations other than
        ``exclude_conversation`` and not in ``exclude``. ``mark`` counts them as recalled (so they are kept
        longest)."""
        self._refresh()
        words = self._words(text)
        embedder = self.embedder
        scores: dict[int, tuple[float, float | None, float]] = {}
        if embedder is not None and len(self._ids):
            similarity = (self._vectors @ embedder.embed([text])[0]).max(axis=1)
            for index in np.argsort(-similarity)[: 4 * limit + 8]:
                episode = int(self._ids[index])
                lexical = words.get(episode, 0.0)
                score = SIMILARITY_WEIGHT * float(similarity[index]) + WORDS_WEIGHT * lexical
                if self._conversations[index] != exclude_conversation and score >= THRESHOLD:
                    scores[episode] = (score, float(similarity[index]), lexical)
        elif embedder is None:
            scores = {e: (w, None, w) for e, w in words.items() if w >= WORDS_ONLY_THRESHOLD}
        best = sorted(set(scores) - set(exclude), key=lambda e: -scores[e][0])
        exchanges = {e.id: e for e in self.log.get(best)}
        found, said = [], set()
        for episode in best:
            exchange = exchanges.get(episode)
            if exchange is None or exchange.conversation_id == exclude_conversation:
                continue
            wording = " ".join(re.findall(r"\w+", exchange.prompt.lower()))
            if wording not in said:  # the same question asked again and again recalls once, leaving room for others
                said.add(wording)
                found.append(Recollection(exchange, *scores[episode]))
        found = found[:limit]
        if found and mark:
            with self.db.write() as db:
                db.executemany("UPDATE episodes SET recalled_at = ?, recalls = recalls + 1 WHERE exchange_id = ?",
                               [(time.time(), r.exchange.id) for r in found])  # fmt: skip
        return found

    def _words(self, text: str) -> dict[int, float]:
        """Episodes that share words with ``text``: BM25 (prompt words count twice), saturating at 1."""
        query = fts_query(text)
        if not query:
            return {}
        rows = self.db.query("SELECT rowid, -bm25(exchanges_fts, 2.0, 1.0) AS rank FROM exchanges_fts WHERE"
                             " exchanges_fts MATCH ? AND +rowid IN (SELECT exchange_id FROM episodes)"
                             " ORDER BY rank DESC LIMIT 50", (query,))  # fmt: skip
        return {r["rowid"]: min(1.0, r["rank"] / BM25_SATURATION) for r in rows}
