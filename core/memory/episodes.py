"""Episodic memory: what the user told in earlier conversations, recalled when a new message is like it.

An episode is one exchange of the log; what it keeps are the user's own statements in it, its facts
(``core.memory.user_facts``): of "My sister's name is Zorbalina and she lives in Lisbon. Where should I take her?" only
the first sentence is kept. A question or a request tells nothing, and the model's reply is never kept: a reply that
guessed wrong ("your sister lives in Ava"), recalled as memory, was repeated with confidence the next time. An
exchange with no statement keeps no episode.

Each fact is embedded alone by a sentence-embedding model (a short sentence embeds sharply, a whole turn blurs),
and so is each of its clauses when it joins several (``clauses``: "My name is Ada and I keep bees." blurs two facts
into one vector, and "What is my name?" finds it at a cosine of 0.36, "My name is Ada" at 0.56). The vectors of all
facts and clauses are held as one normalised float32 matrix, each row mapping to its fact, so recall is one
matrix-vector product (a few thousand rows: well under a millisecond); a fact scores as its best row, blended with
the BM25 rank of the same facts in their FTS5 index: the embedding finds "where does my sister live?" for "she lives
in Lisbon", the words find rare names and numbers that embeddings blur. What is recalled is always the whole
statement, never a clause of it. An episode scores as its best fact and brings the facts that matched, best first.
At most ``capacity`` episodes are kept; the least recently recalled go first.

Without an embedder (not pulled and not pullable), recall falls back to the words alone and says so once; the
facts kept meanwhile are embedded when an embedder is there again.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.memory.chat_log import ChatLog, Exchange, fts_query
from core.memory.log_db import Database
from core.memory.user_facts import statements

RECALLED = 3
"""Episodes put before a message at most."""
SIMILARITY_WEIGHT, WORDS_WEIGHT = 0.8, 0.2
THRESHOLD = 0.33
"""Of the blended score of a fact. Measured with all-MiniLM-L6-v2 on facts alone: a question about a fact told
earlier in other words has a cosine of 0.44-0.84 with it ("Where does my sister live?" and "My sister's name is
Zorbalina and she lives in Lisbon.": 0.56, blended 0.49), unrelated questions 0.12-0.33 (blended under 0.27;
tests/test_memory.py). ``tantra bench memory``: the lowest related score 0.31 of 25 with 200 episodes (a miss:
"What is my job?" for "I work as a pharmacist.", cosine 0.38) and 0.39 of 35 with 1,000, the highest unrelated 0.29
and 0.31; at 0.30, 2 of 15 unrelated questions recalled something with 1,000 episodes. A statement joining two
facts blurs: "What is my name?" for "My name is Ada and I keep bees." has a cosine of 0.36 (blended 0.32, a miss)
and 0.56 for its clause "My name is Ada" (blended 0.45: recalled, ``clauses``)."""
WORDS_ONLY_THRESHOLD = 0.5
BM25_SATURATION = 8.0
"""BM25 of a match on one rare word among ~1,000 facts: the words score saturates there (a score relative to the
best hit would rate a match on "the" as highly as one on "Zanzibar")."""
FUNCTION_WORDS = frozenset("""a an the i me my mine you your yours he him his she her it its we us our they them their
    this that these those is are was were be been am do does did have has had can could will would should shall may
    might must what where when who whom whose which why how in on at to of for from with by as into about and or but
    not no so if then than there here now again too also just please tell remember""".split())  # fmt: skip
"""Left out of the words' query: in a memory of short facts, BM25 rates "in" in "I was born in Leeds." as highly as
a rare name (measured: 0.53 of the 1.0 a name gets, and it put that fact before "I moved to Krakow" for "Which city
do I live in now?"). The words are there for the names and numbers that embeddings blur."""
CANDIDATES = 4
"""Episodes looked at per one recalled: room for those of the excluded conversation and for repeated statements."""
_JOIN = re.compile(r"\s*(?:,\s*(?:and|but)\s+|\s(?:and|but)\s+|;\s*)"
                   r"(?=(?:i|my|she|he|we|they|it|its|our|his|her|their)\b)", re.I)  # fmt: skip
"""Where a statement joins another clause: ", and", " and", " but" or ";" before a pronoun subject ("... and I keep
bees", "... and she lives in Lisbon"). Only pronouns: before a name or a noun, "and" joins words as often as clauses
("Tom and Ada are twins", "I like tea and cake")."""
CLAUSE_WORDS = 3
"""Words a clause needs to stand alone (runs of letters and digits: "I'm Ada" has three), so that "I live with my
sister and her husband." stays one clause (not "her husband.")."""


@dataclass(frozen=True)
class Recollection:
    exchange: Exchange
    """The exchange the facts were told in (its reply is not part of what is recalled)."""
    score: float
    similarity: float | None
    """Cosine of the message's embedding and the best fact's, or the best of its clauses' (None without an
    embedder)."""
    words: float
    facts: tuple[str, ...] = ()
    """The user's statements in this episode that matched the message, best first."""

    def as_json(self) -> dict:
        exchange = self.exchange
        return {"episode": exchange.id, "score": round(self.score, 3), "conversation": exchange.conversation_id,
                "datetime_utc": exchange.datetime_utc, "facts": list(self.facts),
                "prompt": exchange.prompt}  # fmt: skip


@dataclass(frozen=True)
class Episode:
    """An exchange kept in memory, and the facts it keeps of it."""

    exchange: Exchange
    facts: tuple[str, ...]

    @property
    def id(self) -> int:
        return self.exchange.id

    def as_json(self) -> dict:
        exchange = self.exchange
        return {"episode": exchange.id, "conversation": exchange.conversation_id, "datetime_utc": exchange.datetime_utc,
                "facts": list(self.facts), "prompt": exchange.prompt}  # fmt: skip


@dataclass(frozen=True)
class _Match:
    """One fact above the threshold."""

    episode: int
    fact: int
    score: float
    similarity: float | None
    words: float


def _locked(method):
    """One thread at a time: the chat's, and the one that loads the embedder while the language model loads."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return run


def clauses(statement: str) -> list[str]:
    """The clauses ``statement`` joins, verbatim, when it joins several ("My name is Ada and I keep bees." ->
    ["My name is Ada", "I keep bees."]); else []: a statement of one clause is embedded once, whole."""
    found, start = [], 0
    for join in _JOIN.finditer(statement):
        head, tail = statement[start : join.start()], statement[join.end() :]
        if len(re.findall(r"\w+", head)) >= CLAUSE_WORDS and len(re.findall(r"\w+", tail)) >= CLAUSE_WORDS:
            found.append(head)
            start = join.end()
    return [*found, statement[start:]] if found else []


def embedded(statement: str) -> list[str]:
    """What is embedded of ``statement``, one row each: the statement, then its clauses when it joins several."""
    return [statement, *clauses(statement)]


def _embed_each(embedder, statements: list[str]) -> list[np.ndarray]:
    """Each statement's rows (``embedded``: itself, then its clauses), (rows, dim) each, in one call."""
    texts = [embedded(statement) for statement in statements]
    vectors = embedder.embed([text for rows in texts for text in rows])
    ends = np.cumsum([len(rows) for rows in texts])
    return np.split(np.asarray(vectors, dtype=np.float32), ends[:-1])


def _wording(text: str) -> str:
    """A statement's words, for telling the same statement told twice (case and punctuation aside)."""
    return " ".join(re.findall(r"\w+", text.lower()))


class EpisodicMemory:
    def __init__(self, database: Database, embedder: Callable[[], object | None], capacity: int = 1000) -> None:
        """``embedder`` gives the TextEmbedder when it is first needed (loading it costs a moment), or None."""
        self.db, self.log, self.capacity = database, ChatLog(database), capacity
        self._get_embedder, self._embedder, self._asked = embedder, None, False
        # One row per embedded fact and per clause of it (``embedded``), in step: the fact's id (a fact's rows are
        # next to each other), its episode, the episode's conversation, the row's vector.
        self._facts = np.zeros(0, dtype=np.int64)
        self._episodes = np.zeros(0, dtype=np.int64)
        self._conversations = np.zeros(0, dtype=object)
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        """(rows, dim), each unit-length."""
        self._seen_version: int | None = None
        self._lock = threading.RLock()

    def prepare(self) -> threading.Thread:
        """Load the embedder and the facts on a thread of their own, so that the first recall finds them ready."""
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
        """Load the facts, again when another process has written since (a cheap pragma tells)."""
        version = self.db.changed_elsewhere()
        if version == self._seen_version:
            return
        embedder = self.embedder
        self._seen_version = version
        if embedder is None:  # recall goes by words alone
            return
        self._embed_missing(embedder)
        rows = self.db.query("SELECT f.id, f.exchange_id, e.conversation_id, f.vector FROM facts f JOIN exchanges e"
                             " ON e.id = f.exchange_id WHERE f.embedder = ? ORDER BY f.id",
                             (embedder.name,))  # fmt: skip
        counts = [len(r["vector"]) // (4 * embedder.dim) for r in rows]  # the fact, then its clauses
        self._facts = np.repeat(np.array([r["id"] for r in rows], dtype=np.int64), counts)
        self._episodes = np.repeat(np.array([r["exchange_id"] for r in rows], dtype=np.int64), counts)
        self._conversations = np.repeat(np.array([r["conversation_id"] for r in rows], dtype=object), counts)
        vectors = np.frombuffer(b"".join(r["vector"] for r in rows), dtype=np.float32)
        self._vectors = vectors.reshape(sum(counts), embedder.dim)

    def _embed_missing(self, embedder) -> None:
        """Facts kept without an embedder, or by another one, or by the migration, are embedded now (64 at a time)."""
        while True:
            rows = self.db.query("SELECT id, text FROM facts WHERE embedder IS NOT ? LIMIT 64", (embedder.name,))
            if not rows:
                return
            vectors = _embed_each(embedder, [r["text"] for r in rows])
            with self.db.write() as db:
                db.executemany("UPDATE facts SET vector = ?, embedder = ? WHERE id = ?",
                               [(v.tobytes(), embedder.name, r["id"]) for v, r in zip(vectors, rows)])  # fmt: skip

    def _append(self, facts: list[int], episode: int, conversation: str, vectors: list[np.ndarray]) -> None:
        """Rows for ``facts`` of one episode, each fact's ``vectors`` (rows, dim) in step with them."""
        counts = [len(v) for v in vectors]
        self._facts = np.concatenate([self._facts, np.repeat(np.array(facts, dtype=np.int64), counts)])
        self._episodes = np.concatenate([self._episodes, np.full(sum(counts), episode, dtype=np.int64)])
        self._conversations = np.concatenate([self._conversations, np.array([conversation] * sum(counts),
                                                                            dtype=object)])  # fmt: skip
        self._vectors = np.concatenate([self._vectors.reshape(-1, vectors[0].shape[1]), *vectors])

    def _drop(self, episodes: list[int]) -> None:
        keep = ~np.isin(self._episodes, episodes)
        self._facts, self._episodes, self._conversations = self._facts[keep], self._episodes[keep], \
            self._conversations[keep]  # fmt: skip
        self._vectors = self._vectors[keep]

    # ---- remembering ------------------------------------------------------------------------------------------------

    @_locked
    def remember(self, exchange: Exchange) -> None:
        """Keep the user's statements in ``exchange`` as an episode (nothing when there are none: a question, a
        request); past the capacity, forget the least recently recalled."""
        told = statements(exchange.prompt)
        if not told:
            return
        self._refresh()
        embedder = self.embedder
        vectors = None if embedder is None else _embed_each(embedder, told)  # per fact (rows, dim)
        with self.db.write() as db:
            db.execute("DELETE FROM episodes WHERE exchange_id = ?", (exchange.id,))  # and its facts: kept anew
            db.execute("INSERT INTO episodes (exchange_id, recalled_at) VALUES (?, ?)", (exchange.id, time.time()))
            facts = [db.execute("INSERT INTO facts (exchange_id, text, vector, embedder) VALUES (?, ?, ?, ?)",
                                (exchange.id, text, None if vectors is None else vectors[i].tobytes(),
                                 None if embedder is None else embedder.name)).lastrowid
                     for i, text in enumerate(told)]  # fmt: skip
            excess = db.execute("SELECT count(*) FROM episodes").fetchone()[0] - self.capacity
            gone = [r[0] for r in db.execute("SELECT exchange_id FROM episodes ORDER BY recalled_at, exchange_id"
                                             " LIMIT ?", (max(excess, 0),))]  # fmt: skip
            db.executemany("DELETE FROM episodes WHERE exchange_id = ?", [(i,) for i in gone])  # facts go with them
        self._drop([exchange.id, *gone])
        if vectors is not None and exchange.id not in gone:
            self._append(facts, exchange.id, exchange.conversation_id, vectors)

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
        self._drop(self._episodes.tolist())
        return gone

    def count(self) -> int:
        """Episodes kept: each holds at least one fact."""
        return self.db.query("SELECT count(*) FROM episodes")[0][0]

    def count_facts(self) -> int:
        return self.db.query("SELECT count(*) FROM facts")[0][0]

    def episodes(self, limit: int = 20) -> list[Episode]:
        """The latest episodes first, with their facts in the order they were told."""
        rows = self.db.query("SELECT exchange_id FROM episodes ORDER BY exchange_id DESC LIMIT ?", (limit or -1,))
        ids = [r[0] for r in rows]
        facts = self._facts_of(ids)
        return [Episode(e, facts.get(e.id, ())) for e in sorted(self.log.get(ids), key=lambda e: -e.id)]

    def _facts_of(self, episodes: list[int]) -> dict[int, tuple[str, ...]]:
        marks = ",".join("?" * len(episodes))
        found: dict[int, list[str]] = {}
        for row in self.db.query(f"SELECT exchange_id, text FROM facts WHERE exchange_id IN ({marks}) ORDER BY id",
                                 episodes):  # fmt: skip
            found.setdefault(row["exchange_id"], []).append(row["text"])
        return {episode: tuple(texts) for episode, texts in found.items()}

    # ---- recalling --------------------------------------------------------------------------------------------------

    @_locked
    def recall(self, text: str, exclude_conversation: str | None = None, limit: int = RECALLED,
               mark: bool = True, exclude: set[int] = frozenset()) -> list[Recollection]:  # fmt: skip
        """The episodes whose facts are most like ``text`` above the threshold, best first, from conversations other
        than ``exclude_conversation`` and not in ``exclude``. ``mark`` counts them as recalled (so they are kept
        longest)."""
        self._refresh()
        words = self._words(text)
        embedder = self.embedder
        if embedder is not None:
            matches = self._by_meaning(embedder.embed([text])[0], words, exclude_conversation, exclude)
        else:
            matches = sorted((_Match(episode, fact, score, None, score) for fact, (episode, score) in words.items()
                              if score >= WORDS_ONLY_THRESHOLD and episode not in exclude),
                             key=lambda m: -m.score)  # fmt: skip
        found = self._recollections(matches, exclude_conversation, limit)
        if found and mark:
            with self.db.write() as db:
                db.executemany("UPDATE episodes SET recalled_at = ?, recalls = recalls + 1 WHERE exchange_id = ?",
                               [(time.time(), r.exchange.id) for r in found])  # fmt: skip
        return found

    def _by_meaning(self, query: np.ndarray, words: dict[int, tuple[int, float]], exclude_conversation: str | None,
                    exclude: set[int]) -> list[_Match]:  # fmt: skip
        """Facts above the threshold, best first: one product over the matrix, each fact as its best row (itself or
        one of its clauses), the words' score added."""
        if not len(self._facts):
            return []
        first = np.flatnonzero(np.r_[True, self._facts[1:] != self._facts[:-1]])  # each fact's first row
        similarity = np.maximum.reduceat(self._vectors @ query, first)  # (facts,)
        facts, episodes, conversations = self._facts[first], self._episodes[first], self._conversations[first]
        lexical = np.zeros_like(similarity)
        if words:
            rows = np.nonzero(np.isin(facts, list(words)))[0]
            lexical[rows] = [words[int(fact)][1] for fact in facts[rows]]
        score = SIMILARITY_WEIGHT * similarity + WORDS_WEIGHT * lexical
        keep = score >= THRESHOLD
        if exclude_conversation is not None:
            keep &= conversations != exclude_conversation
        if exclude:
            keep &= ~np.isin(episodes, list(exclude))
        rows = np.nonzero(keep)[0]
        rows = rows[np.argsort(-score[rows], kind="stable")]
        return [_Match(int(episodes[r]), int(facts[r]), float(score[r]), float(similarity[r]), float(lexical[r]))
                for r in rows]  # fmt: skip

    def _recollections(self, matches: list[_Match], exclude_conversation: str | None,
                       limit: int) -> list[Recollection]:  # fmt: skip
        """``matches`` gathered by episode, each with its matching facts, best first; a statement told in several
        episodes is recalled once, leaving room for others."""
        by_episode: dict[int, list[_Match]] = {}
        for match in matches:
            if match.episode in by_episode or len(by_episode) < CANDIDATES * limit + 8:
                by_episode.setdefault(match.episode, []).append(match)
        if not by_episode:
            return []
        exchanges = {e.id: e for e in self.log.get(list(by_episode))}
        marks = ",".join("?" * sum(map(len, by_episode.values())))
        texts = dict(self.db.query(f"SELECT id, text FROM facts WHERE id IN ({marks})",
                                   [m.fact for group in by_episode.values() for m in group]))  # fmt: skip
        found, said = [], set()
        for episode, group in by_episode.items():
            exchange = exchanges.get(episode)
            if exchange is None or exchange.conversation_id == exclude_conversation:
                continue
            fresh = [m for m in group if m.fact in texts and _wording(texts[m.fact]) not in said]
            said.update(_wording(texts[m.fact]) for m in fresh)
            if fresh:
                best = fresh[0]
                found.append(Recollection(exchange, best.score, best.similarity, best.words,
                                          tuple(texts[m.fact] for m in fresh)))  # fmt: skip
        return sorted(found, key=lambda r: -r.score)[:limit]

    def _words(self, text: str) -> dict[int, tuple[int, float]]:
        """Facts that share words with ``text`` (function words aside): {fact: (episode, BM25 saturating at 1)}."""
        query = fts_query(" ".join(w for w in re.findall(r"\w+", text) if w.lower() not in FUNCTION_WORDS))
        if not query:
            return {}
        rows = self.db.query("SELECT f.id, f.exchange_id, -bm25(facts_fts) AS bm25 FROM facts_fts JOIN facts f ON"
                             " f.id = facts_fts.rowid WHERE facts_fts MATCH ? ORDER BY bm25(facts_fts) LIMIT 50",
                             (query,))  # fmt: skip
        return {r["id"]: (r["exchange_id"], min(1.0, r["bm25"] / BM25_SATURATION)) for r in rows}
