"""What a chat writes down and remembers: its exchanges in the log, as they stream, and what the user told in each
(their statements, never the reply) as an episode of memory.

The chat never fails because of it: when the database cannot be written (a read-only directory, a full disk, a
newer schema) or the embedder cannot load, the journal says so once and the chat goes on without that part.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from config.errors import TantraError
from config.settings import Settings
from core.memory.chat_log import ChatLog, ExchangeStart, new_conversation_id
from core.memory.episodes import EpisodicMemory, Recollection
from core.memory.log_db import database_path, logging_on, open_database
from core.runtime.status import say as say_to_stderr

PROGRESS_SECONDS = 0.25
"""How often a streaming reply is written: what a ``kill -9`` can cost of it, at most."""


def open_journal(settings: Settings, load_embedder: Callable[[], object], log: bool = True, memory: bool = True,
                 say: Callable[[str], None] = say_to_stderr) -> Journal:  # fmt: skip
    """The journal of a chat: ``log`` false (``--no-log``, or ``tantra logs off``) writes nothing, but earlier
    episodes are still recalled unless ``memory`` is false too. ``load_embedder`` is called at the first recall; if
    it raises, memory recalls by words alone."""
    log = log and logging_on(settings)
    memory = memory and settings.memory_size > 0
    if not (log or memory):
        return Journal(say=say)
    try:
        database = open_database(database_path(settings), say)
    except TantraError as error:
        say(f"not logging: {error}")
        return Journal(say=say)

    def embedder():
        try:
            return load_embedder()
        except TantraError as error:
            say(f"memory recalls by words alone: {error}")
            return None

    episodes = EpisodicMemory(database, embedder, settings.memory_size) if memory else None
    if episodes is not None:
        episodes.prepare()  # while the language model loads
    return Journal(ChatLog(database) if log else None, episodes, say=say)


class Journal:
    def __init__(self, log: ChatLog | None = None, memory: EpisodicMemory | None = None,
                 conversation_id: str | None = None, say: Callable[[str], None] = say_to_stderr) -> None:  # fmt: skip
        """With neither a log nor a memory, a journal that writes nothing (``--no-log``, logs off, tests)."""
        self.log, self.memory, self._say = log, memory, say
        self.conversation_id = conversation_id or new_conversation_id()
        self.recalled: list[Recollection] = []
        """What the last message recalled (``/memory``)."""
        self.last_exchange: int | None = None
        self._in_context: set[int] = set()  # episodes recalled earlier in this conversation: read already

    def _failed(self, part: str, error: Exception) -> None:
        if part == "log":
            self._say(f"not logging: {error}")
            self.log = self.memory = None  # episodes are exchanges of the log: no log, nothing new to remember
        else:
            self._say(f"no memory: {error}")
            self.memory = None

    def new_conversation(self) -> None:
        self.conversation_id, self.recalled, self.last_exchange = new_conversation_id(), [], None
        self._in_context = set()

    def recall(self, text: str) -> list[Recollection]:
        self.recalled = []
        if self.memory is not None:
            try:
                self.recalled = self.memory.recall(text, self.conversation_id, exclude=self._in_context)
                self._in_context.update(r.exchange.id for r in self.recalled)
            except (sqlite3.Error, TantraError) as error:
                self._failed("memory", error)
        return self.recalled

    def begin(self, start: ExchangeStart) -> Entry:
        entry = Entry(self, None)
        if self.log is not None:
            try:
                entry.id = self.last_exchange = self.log.start(self.conversation_id, start)
            except (sqlite3.Error, TantraError) as error:
                self._failed("log", error)
        return entry

    def retract_last(self) -> None:
        """The last exchange never happened (a spoken draft the user talked over): out of the log and memory."""
        if self.log is not None and self.last_exchange is not None:
            try:
                self.log.delete(self.last_exchange)  # its episode goes with it
                if self.memory is not None:
                    self.memory.forget(self.last_exchange)
            except sqlite3.Error as error:
                self._failed("log", error)
        self.last_exchange = None

    def amend_last(self, reply: str) -> None:
        """The reply as the user heard it, cut by a barge-in."""
        if self.log is not None and self.last_exchange is not None:
            try:
                self.log.progress(self.last_exchange, reply)
            except sqlite3.Error as error:
                self._failed("log", error)

    def _remember(self, exchange_id: int) -> None:
        if self.memory is None:
            return
        try:
            self.memory.remember(self.log.get([exchange_id])[0])
        except (sqlite3.Error, TantraError) as error:
            self._failed("memory", error)


class Entry:
    """One exchange being written: the reply every ``PROGRESS_SECONDS`` as it streams, then its ending."""

    def __init__(self, journal: Journal, exchange_id: int | None) -> None:
        self.journal, self.id = journal, exchange_id
        self._written_at = time.monotonic()

    def _log(self) -> ChatLog | None:
        """The log to write to, or None when this exchange is not logged (or the log has failed since)."""
        return self.journal.log if self.id is not None else None

    def progress(self, pieces: list[str]) -> None:
        """The reply so far, as the pieces streamed (joined only when it is time to write)."""
        log = self._log()
        if log is None or time.monotonic() - self._written_at < PROGRESS_SECONDS:
            return
        self._written_at = time.monotonic()
        try:
            log.progress(self.id, "".join(pieces))
        except sqlite3.Error as error:
            self.journal._failed("log", error)

    def finish(self, reply: str, **facts) -> None:
        """Write the reply whole with ``facts`` (token counts, timings, interrupted, error), then remember it."""
        log = self._log()
        if log is None:
            return
        try:
            log.finish(self.id, reply, **facts)
        except sqlite3.Error as error:
            self.journal._failed("log", error)
            return
        self.journal._remember(self.id)
