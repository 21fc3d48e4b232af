"""What a conversation with a language model is made of, apart from the model: its sampling settings, its
messages kept within the context, and the cache of its last prompt. No torch here: a chat whose model runs on a
server (``core.language.remote``) needs these, and starts without loading torch."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SamplingOptions:
    """How a reply is sampled. The defaults are what ``tantra bench answers`` chose for a 135M model: greedy
    decoding answered grounded questions right far more often than sampling at 0.7 (docs/BENCHMARKS.md), and the
    repetition penalty (over the reply's own tokens) keeps greedy decoding out of loops."""

    temperature: float = 0.0
    """0 decodes greedily (always the most likely token)."""
    top_k: int = 50
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None


class PromptCache:
    """The keys and values of a conversation's last prompt and reply. The next prompt of the same conversation
    starts with the same tokens, so only what is new (the last reply's end, the new message) has to be run: the
    time to the first token stops growing with the conversation. One per conversation; used by one reply at a time.
    """

    def __init__(self, only_continued: bool = False) -> None:
        """``only_continued``: only a prompt that goes on from all the cache holds reuses it (a server's cache: the
        same prompt sent again is read afresh, so a greedy answer is the same every time)."""
        self.only_continued = only_continued
        self._ids: list[int] = []
        self._kv = None
        self._free = threading.Event()  # the last reply's decoding is over: the cache is not being written
        self._free.set()

    def take(self, prompt_ids: list[int]):
        """(cache, tokens of ``prompt_ids`` it already holds); (None, 0) when nothing can be reused."""
        self._free.wait()
        self._free.clear()
        if self.only_continued and not self.continued_by(prompt_ids):
            self._ids, self._kv = [], None
        kept = 0
        for cached, new in zip(self._ids, prompt_ids[:-1]):  # the last prompt token always runs: it gives the logits
            if cached != new:
                break
            kept += 1
        if self._kv is None or kept == 0 or not hasattr(self._kv, "truncate"):
            return None, 0
        self._kv.truncate(kept)
        return self._kv, kept

    def continued_by(self, prompt_ids: list[int]) -> bool:
        """Whether ``prompt_ids`` goes on from all this cache holds (the next turn of its conversation), rather than
        sharing only a part of it (another conversation, or the same prompt again)."""
        return bool(self._ids) and prompt_ids[: len(self._ids)] == self._ids

    def keep(self, ids: list[int], kv) -> None:
        """Called when decoding ends: ``kv`` holds exactly ``ids`` (None after a failure: start afresh)."""
        self._ids, self._kv = (list(ids), kv) if kv is not None else ([], None)
        self._free.set()


@dataclass
class Conversation:
    """Messages that always fit the context: the oldest turns go first, the system prompt stays."""

    system: str | None = None
    messages: list[dict] = field(default_factory=list)

    @property
    def head(self) -> list[dict]:
        """What every prompt of the conversation begins with: the system message, where there is one."""
        return [{"role": "system", "content": self.system}] if self.system else []

    def prompt_ids(self, tokenizer, context: int, reserve: int) -> list[int]:
        """The prompt's token ids by ``tokenizer`` (a ``core.language.language_model.ChatTokenizer``), with room for
        ``reserve`` tokens of reply: the oldest exchanges give way."""
        turns, head = list(self.messages), self.head
        while True:
            ids = tokenizer.encode(tokenizer.apply_chat_template(head + turns))
            if len(ids) + reserve <= context or not any(m["role"] == "assistant" for m in turns):
                return ids
            # Drop the oldest exchange: a turn's note (``core.language.grounding``), the user's message and the reply.
            turns = turns[[m["role"] for m in turns].index("assistant") + 1 :]
