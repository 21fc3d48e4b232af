"""``tantra bench memory``: what the log and the episodic memory cost a chat.

A fresh ``tantra.db`` in a temporary directory (never the user's) is filled with N generated exchanges
(``tantra_benchmarks.memory_items``: facts about the user and their friends, reminders, sums, conversions, general
questions, each with a short reply; the same ones for the same seed), each logged by ``ChatLog`` and remembered by
``EpisodicMemory`` with the real embedder, as a chat does after every reply (memory keeps the user's statements of
each, ``core.memory.user_facts``: the questions and requests keep nothing). Then, in one run:

- recall: ``recall(text, exclude_conversation=...)`` for 50 queries (35 ask about a fact told earlier, 15 about
  nothing said), split into the query's embedding (timed inside recall, through a wrapper around the embedder) and
  the rest (the matrix product, FTS5 BM25, fetching the rows, marking them recalled); recall@1 and recall@3 (the
  share of the 35 whose fact's episode is recalled first, or at all: 3 are recalled at most) and whether the fact
  itself is among the statements recalled;
- embedding one turn: a user's turn of the corpus, alone; and the statements of one exchange (what remembering
  embeds);
- the first token: the real language model answers the same question with a journal that writes nothing and with a
  real one (``open_journal`` on the filled database), alternating; the journal's own work before the first token
  (recall and the log row) is timed directly, and the end-to-end difference is given with the prompt tokens, since
  recalled notes lengthen the prompt;
- the database's size per 1,000 exchanges, by part (``dbstat``), after a WAL checkpoint.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from config.model_config import MODEL_CONFIG
from config.settings import Settings
from core.memory.user_facts import statements
from tantra_benchmarks.common import model_loader
from tantra_benchmarks.memory_items import SEED, UNRELATED, Corpus, corpus

RELATED_QUERIES, UNRELATED_QUERIES = 35, 15
RECALL_PASSES = 3  # over the 50 queries
TURNS_TIMED = 100
FIRST_TOKEN_ROUNDS = 6  # per question and journal, alternating
FIRST_TOKEN_OPTIONS = dict(temperature=0.0, max_tokens=8, seed=0)


def _ms(values: list[float]) -> dict:
    """p50 and p95 of ``values`` (seconds) in milliseconds (nearest rank)."""
    ordered = sorted(values)

    def rank(share: float) -> float:
        return round(1000 * ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))], 3)

    return {"p50": rank(0.5), "p95": rank(0.95), "n": len(ordered)}


class _TimedEmbedder:
    """The embedder, with the seconds of each ``embed`` call kept (recall's query embedding, timed inside recall)."""

    def __init__(self, embedder) -> None:
        self.inner, self.seconds = embedder, []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def embed(self, texts):
        start = time.perf_counter()
        vectors = self.inner.embed(texts)
        self.seconds.append(time.perf_counter() - start)
        return vectors


def _fill(database, embedder, texts: Corpus, capacity: int) -> tuple[list[int], dict]:
    """Log and remember every exchange as a chat does; the exchange ids in order, and the cost of remembering."""
    from core.language.conversation import SamplingOptions
    from core.memory.chat_log import ChatLog, ExchangeStart
    from core.memory.episodes import EpisodicMemory

    log, memory = ChatLog(database), EpisodicMemory(database, lambda: embedder, capacity)
    options = asdict(SamplingOptions())
    ids, remembering, started = [], [], time.perf_counter()
    for number, conversation in enumerate(texts.conversations):
        conversation_id = f"01bench{number:019d}"  # 26 characters, as a ULID
        for prompt, reply in conversation:
            start = ExchangeStart(MODEL_CONFIG.language.default, True, None, options, prompt, "typed")
            exchange_id = log.start(conversation_id, start)
            log.finish(exchange_id, reply, prompt_tokens=40 + len(prompt) // 4, completion_tokens=len(reply) // 4,
                       seconds=0.5, first_token_seconds=0.1)  # fmt: skip
            begin = time.perf_counter()
            memory.remember(log.get([exchange_id])[0])
            remembering.append(time.perf_counter() - begin)
            ids.append(exchange_id)
    return ids, {"seconds": round(time.perf_counter() - started, 1), "remember_ms": _ms(remembering)}


def _size(database, exchanges: int) -> dict:
    """The file after a checkpoint, and its parts (``dbstat``; without it, the file with and without memory)."""
    database.query("PRAGMA wal_checkpoint(TRUNCATE)")
    path = Path(database.path)
    file_bytes = path.stat().st_size
    vector_bytes = database.query("SELECT coalesce(sum(length(vector)), 0) FROM facts")[0][0]
    mb = 1 / 1e6
    result = {"file_mb": round(file_bytes * mb, 2),
              "mb_per_1000_exchanges": round(file_bytes * mb * 1000 / exchanges, 2),
              "kb_per_exchange": round(file_bytes / 1000 / exchanges, 2),
              "vector_bytes_mb": round(vector_bytes * mb, 2)}  # fmt: skip
    try:
        rows = database.query("SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name")
    except sqlite3.OperationalError:  # SQLite built without the dbstat table
        rows = None
    if rows is not None:
        parts = {"memory (episodes, facts, vectors)": 0, "full-text indexes": 0, "exchanges (text)": 0, "other": 0}
        for row in rows:
            name = row["name"]
            part = ("full-text indexes" if name.startswith(("exchanges_fts", "facts_fts"))
                    else "memory (episodes, facts, vectors)" if name.startswith(("episodes", "facts"))
                    else "exchanges (text)" if name.startswith(("exchanges", "conversations", "images"))
                    else "other")  # fmt: skip
            parts[part] += row["bytes"]
        result["by_part_mb"] = {part: round(size * mb, 2) for part, size in parts.items()}
        result["by_part_source"] = "dbstat"
        return result
    copy = path.with_name("without-memory.db")
    database.query("VACUUM INTO ?", (str(copy),))
    stripped = sqlite3.connect(copy)
    stripped.execute("PRAGMA foreign_keys=ON")  # the facts (and their index) go with their episodes
    stripped.execute("DELETE FROM episodes")
    stripped.commit()
    stripped.execute("VACUUM")
    stripped.close()
    without = copy.stat().st_size
    result["by_part_mb"] = {"memory (episodes, facts, vectors)": round((file_bytes - without) * mb, 2),
                            "everything else": round(without * mb, 2)}  # fmt: skip
    result["by_part_source"] = "file with and without memory"
    return result


class _TimedDatabase:
    """The database, with the seconds of each ``query`` kept by whether it searched the full-text index."""

    def __init__(self, database) -> None:
        self.inner, self.full_text, self.other = database, [], []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def query(self, sql: str, parameters=()):
        start = time.perf_counter()
        rows = self.inner.query(sql, parameters)
        (self.full_text if "MATCH" in sql else self.other).append(time.perf_counter() - start)
        return rows


def _recall(database, embedder, texts: Corpus, ids: list[int], capacity: int) -> tuple[dict, str]:
    """Recall for 35 questions about facts told earlier and 15 about nothing said, ``RECALL_PASSES`` times; and the
    first of the latter that recalls nothing."""
    from core.memory.episodes import EpisodicMemory

    rng = random.Random(SEED + 1)
    facts = rng.sample(texts.facts, min(RELATED_QUERIES, len(texts.facts)))
    queries = [(fact.question, ids[place]) for place, fact in facts]
    queries += [(question, None) for question in UNRELATED[:UNRELATED_QUERIES]]
    rng.shuffle(queries)
    timed, timed_database = _TimedEmbedder(embedder), _TimedDatabase(database)
    memory = EpisodicMemory(timed_database, lambda: timed, capacity)
    current = "01benchcurrent000000000000"  # the conversation the queries are asked in: a new one
    memory.recall("warm up", exclude_conversation=current)  # loads the matrix
    total, embedding, full_text, other_sql = [], [], [], []
    found: dict[str, list[int]] = {}
    facts_found: dict[str, set[str]] = {}
    for _ in range(RECALL_PASSES):
        for query, _fact in queries:
            timed.seconds.clear()
            timed_database.full_text.clear()
            timed_database.other.clear()
            start = time.perf_counter()
            recalled = memory.recall(query, exclude_conversation=current)
            total.append(time.perf_counter() - start)
            embedding.append(sum(timed.seconds))
            full_text.append(sum(timed_database.full_text))
            other_sql.append(sum(timed_database.other))
            found[query] = [r.exchange.id for r in recalled]
            facts_found[query] = {fact for r in recalled for fact in r.facts}
    rest = [t - e for t, e in zip(total, embedding)]
    remainder = [r - f - o for r, f, o in zip(rest, full_text, other_sql)]
    rows = database.query("SELECT vector FROM facts WHERE vector IS NOT NULL")
    # A fact's blob holds its rows: the statement, then its clauses when it joins several
    # (core.memory.episodes.embedded).
    matrix = np.frombuffer(b"".join(r[0] for r in rows), dtype=np.float32).reshape(-1, embedder.dim)
    query_vector = embedder.embed(["What is my sister called?"])[0]
    product = statistics.median(_seconds(lambda: matrix @ query_vector) for _ in range(200))
    related = [(q, fact) for q, fact in queries if fact is not None]
    told = {fact.question: statements(fact.prompt) for _, fact in facts}
    quiet = [q for q in UNRELATED if q in found and not found[q]]
    return {
        "episodes": memory.count(), "facts": memory.count_facts(), "matrix_rows": len(matrix),
        "queries": len(queries), "passes": RECALL_PASSES,
        "total_ms": _ms(total), "query_embedding_ms": _ms(embedding), "without_query_embedding_ms": _ms(rest),
        "without_query_embedding_parts_ms": {"full_text_query": _ms(full_text), "fetching_rows": _ms(other_sql),
                                             "matrix_marking_and_python": _ms(remainder)},
        "matrix_product_alone_ms": round(1000 * product, 3),
        "related_queries_recalling_their_fact": f"{sum(fact in found[q] for q, fact in related)} of {len(related)}",
        "related_queries_fact_first": sum(bool(found[q]) and found[q][0] == fact for q, fact in related),
        "recall_at_1": round(sum(bool(found[q]) and found[q][0] == fact for q, fact in related) / len(related), 3),
        "recall_at_3": round(sum(fact in found[q][:3] for q, fact in related) / len(related), 3),
        "related_queries_recalling_the_statement": f"{sum(bool(set(told[q]) & facts_found[q]) for q, _ in related)}"
                                                   f" of {len(related)}",
        "unrelated_queries_recalling_anything": f"{sum(bool(found[q]) for q, f in queries if f is None)} of "
                                                f"{len(queries) - len(related)}",
        "mean_recalled_per_query": round(statistics.fmean(len(found[q]) for q, _ in queries), 2),
    }, (quiet or list(UNRELATED))[0]  # fmt: skip


def _seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _embedding(embedder, texts: Corpus) -> dict:
    """One user's turn alone (the query of a recall), and one exchange's statements (what remembering embeds, when
    it has any)."""

    rng = random.Random(SEED + 2)
    exchanges = rng.sample([e for conversation in texts.conversations for e in conversation],
                           min(TURNS_TIMED, sum(map(len, texts.conversations))))  # fmt: skip
    for prompt, _ in exchanges[:5]:
        embedder.embed([prompt])
    turns = [_seconds(lambda p=prompt: embedder.embed([p])) for prompt, _ in exchanges]
    told = [statements(prompt) for prompt, _ in exchanges]
    episodes = [_seconds(lambda t=t: embedder.embed(t)) for t in told if t]
    pieces = [len(embedder.tokenizer.encode(prompt).ids) for prompt, _ in exchanges]
    return {"turn_ms": _ms(turns), "turn_word_pieces_p50": statistics.median(pieces),
            "exchange_statements_ms": _ms(episodes),
            "exchanges_with_statements": f"{len(episodes)} of {len(exchanges)}"}  # fmt: skip


def _first_token(settings: Settings, embedder, related_question: str, unrelated_question: str) -> dict:
    """The same questions answered with a journal that keeps nothing and with a real one, alternating: one that
    recalls a fact told earlier, one that recalls nothing (the same prompt both ways)."""
    from core.language.chat_session import ChatSession
    from core.language.conversation import SamplingOptions
    from core.memory.chat_log import ExchangeStart
    from core.memory.journal import Journal, open_journal

    loader = model_loader(settings)
    start = time.perf_counter()
    loaded = loader.load_spikingbrain()
    lm_seconds = time.perf_counter() - start

    def say(message: str) -> None:
        print(message, file=sys.stderr)

    class TimedJournal(Journal):
        """The real journal, its work on the way to the first token and after the reply timed."""

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.recall_s: list[float] = []
            self.begin_s: list[float] = []
            self.finish_s: list[float] = []

        def recall(self, text):
            begin = time.perf_counter()
            found = super().recall(text)
            self.recall_s.append(time.perf_counter() - begin)
            return found

        def begin(self, start):
            begin = time.perf_counter()
            entry = super().begin(start)
            self.begin_s.append(time.perf_counter() - begin)
            finish = entry.finish

            def timed_finish(*args, **kwargs):
                begin = time.perf_counter()
                finish(*args, **kwargs)
                self.finish_s.append(time.perf_counter() - begin)

            entry.finish = timed_finish
            return entry

    real = open_journal(settings, lambda: embedder, say=say)
    if real.log is None or real.memory is None:
        raise RuntimeError("the benchmark's journal could not open its database")
    journal = TimedJournal(real.log, real.memory, say=say)
    options = SamplingOptions(**FIRST_TOKEN_OPTIONS)

    def ask(question: str, with_journal: bool) -> dict:
        """One question in a new conversation, as ``tantra chat "..."`` asks it; the journal's exchange is taken back
        afterwards, so that every round finds the same database (and does not recall its own earlier answers)."""
        journal.new_conversation()
        session = ChatSession.of(loaded, options, journal=journal if with_journal else Journal(say=say))
        begin = time.perf_counter()
        pieces = session.ask(question, "argument")
        next(pieces)
        first = time.perf_counter() - begin
        for _ in pieces:
            pass
        recalled = len(journal.recalled) if with_journal else 0
        if with_journal:
            journal.retract_last()
        return {"ask_to_first_token": first, "first_token_seconds": session.last.first_token_seconds,
                "prompt_tokens": session.last.prompt_tokens, "recalled": recalled}  # fmt: skip

    questions = (related_question, unrelated_question)
    for question in questions:  # warm-up: kernels, the matrix, the embedder
        ask(question, True)
        ask(question, False)
    for timings in (journal.recall_s, journal.begin_s, journal.finish_s):
        timings.clear()
    rows = {(q, j): [] for q in questions for j in (False, True)}
    for round_ in range(FIRST_TOKEN_ROUNDS):
        for question in questions:
            for with_journal in (False, True) if round_ % 2 == 0 else (True, False):
                rows[(question, with_journal)].append(ask(question, with_journal))
    journal.new_conversation()
    exchange = journal.log.start(journal.conversation_id, ExchangeStart(loaded["name"], True, None, {}, "A question"))
    progress = []
    for index in range(20):  # a streaming reply is written every 0.25 s
        begin = time.perf_counter()
        journal.log.progress(exchange, "A reply that is still being written, " * (1 + index % 4))
        progress.append(time.perf_counter() - begin)
    journal.log.delete(exchange)

    def median(question, with_journal, key):
        return statistics.median(r[key] for r in rows[(question, with_journal)])

    per_question = []
    for question in questions:
        off, on = (median(question, False, "ask_to_first_token"), median(question, True, "ask_to_first_token"))
        per_question.append({
            "question": question,
            "recalled": sorted({r["recalled"] for r in rows[(question, True)]}),
            "prompt_tokens": {"no_journal": sorted({r["prompt_tokens"] for r in rows[(question, False)]}),
                              "journal": sorted({r["prompt_tokens"] for r in rows[(question, True)]})},
            "ask_to_first_token_s_p50": {"no_journal": round(off, 4), "journal": round(on, 4),
                                         "difference_ms": round(1000 * (on - off), 1)},
            "prompt_to_first_token_s_p50": {"no_journal": round(median(question, False, "first_token_seconds"), 4),
                                            "journal": round(median(question, True, "first_token_seconds"), 4)},
        })  # fmt: skip
    both = [r + b for r, b in zip(journal.recall_s, journal.begin_s)]
    return {
        "model": loaded["name"], "lm_load_seconds": round(lm_seconds, 2),
        "options": FIRST_TOKEN_OPTIONS, "rounds": FIRST_TOKEN_ROUNDS,
        "journal_before_first_token_ms": {"recall": _ms(journal.recall_s), "begin": _ms(journal.begin_s),
                                          "recall_plus_begin": _ms(both)},
        "journal_after_reply_ms": {"finish_and_remember": _ms(journal.finish_s)},
        "progress_write_ms": _ms(progress),
        "questions": per_question,
    }  # fmt: skip


def bench_memory(settings: Settings, episodes: int = 1000) -> dict:
    from core.memory.log_db import FILE_NAME, open_database

    loader = model_loader(settings)
    start = time.perf_counter()
    embedder = loader.load_embedder()
    embedder_seconds = time.perf_counter() - start
    texts = corpus(episodes)
    with tempfile.TemporaryDirectory(prefix="tantra-bench-memory-") as folder:
        folder = Path(folder)
        settings = replace(settings, data_dir=folder, memory_size=episodes)  # never the user's tantra.db
        database = open_database(folder / FILE_NAME, lambda message: print(message, file=sys.stderr))
        ids, fill = _fill(database, embedder, texts, episodes)
        size = _size(database, episodes)
        recall, unrelated = _recall(database, embedder, texts, ids, episodes)
        database.close()
        embedding = _embedding(embedder, texts)
        user_facts = [fact for _, fact in texts.facts if fact.question == "What is my sister called?"]
        related = user_facts[0].question if user_facts else texts.facts[0][1].question
        first_token = _first_token(settings, embedder, related, unrelated)
    return {
        "embedder": embedder.name, "embedder_load_seconds": round(embedder_seconds, 3),
        "exchanges": episodes, "conversations": len(texts.conversations), "facts_told": len(texts.facts),
        "mean_characters_per_exchange": round(statistics.fmean(len(p) + len(r) for c in texts.conversations
                                                               for p, r in c)),
        "seed": SEED,
        "fill": fill,
        "recall": recall,
        "embedding": embedding,
        "first_token": first_token,
        "database": size,
        "targets": {
            "recall_p95_under_5ms_without_query_embedding": recall["without_query_embedding_ms"]["p95"] < 5,
            "recall_p95_under_5ms_with_query_embedding": recall["total_ms"]["p95"] < 5,
            "turn_embedding_p95_under_20ms": embedding["turn_ms"]["p95"] < 20,
        },
    }  # fmt: skip
