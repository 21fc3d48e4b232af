"""A reply drafted speculatively: a turn transcribed, and the model's answer to it begun, before the turn is over.

``core.talk.voice_loop`` starts one at a pause (after 64 ms of silence with Smart Turn, 300 ms without), pulls tokens
into it while it waits, and keeps it (the user stayed silent) or throws it away (the user spoke again).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from config.errors import TantraError
from core.language.chat_session import TurnMark
from core.memory.chat_log import ImageRecord
from core.talk.turns import Utterance


@dataclass
class Draft:
    """A turn transcribed, and its reply begun, before the turn is known to be over."""

    utterance: Utterance | None
    """None for a typed turn."""
    text: str
    transcribed: float
    dropped: str = ""
    """Why this is not a turn to answer (noise, an echo); empty when it is."""
    wake_only: bool = False
    """The turn was the wake word alone: the question comes next."""
    stream: Iterator[str] | None = None
    tokens: list[str] = field(default_factory=list)
    first_token_at: float | None = None
    finished: bool = False
    failure: str = ""
    images: list[tuple[str, ImageRecord]] = field(default_factory=list)
    mark: TurnMark | None = None
    """Where the chat stood before this draft was asked (``ChatSession.turn_mark``)."""
    audio: np.ndarray | None = None
    """What was read: the utterance's audio, after that of a turn the user went on from (``VoiceLoop._draft``)."""
    clock: Callable[[], float] = time.monotonic

    @property
    def writing(self) -> bool:
        return self.stream is not None and not self.finished

    def matches(self, utterance: Utterance) -> bool:
        """Nothing was said after the draft's audio: it answers this turn."""
        return self.utterance is not None and utterance.voiced_frames == self.utterance.voiced_frames

    def write(self) -> None:
        try:
            self.tokens.append(next(self.stream))
        except StopIteration:
            self.finished = True
            return
        except TantraError as error:  # the prompt no longer fits, ...: said once the turn is answered
            self.failure, self.finished = str(error), True
            return
        if self.first_token_at is None:
            self.first_token_at = self.clock()

    def tokens_then_rest(self) -> Iterator[str]:
        """The tokens drafted so far, then the rest as the model writes them."""
        yield from self.tokens
        while not self.finished:
            self.write()
            if not self.finished:
                yield self.tokens[-1]
