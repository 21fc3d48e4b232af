"""The typed vocabulary of a spoken conversation: its options, its models, and the events ``VoiceLoop.run`` yields.

``core.talk.voice_loop`` produces these; the CLI, the REPL and the benchmark read them. Plain data, no threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from config.errors import BadInput
from core.talk.turns import TurnSettings

BARGE_IN = ("auto", "on", "off")


@dataclass(frozen=True)
class VoiceOptions:
    barge_in: str = "auto"
    """auto: half-duplex (loudspeakers: the microphone is ignored while Tantra answers; a key or Ctrl-C stops it);
    on: sustained speech interrupts the answer (headphones); off: only Ctrl-C stops an answer."""
    turns: TurnSettings = field(default_factory=TurnSettings)
    echo_tail: float = 0.3
    """Seconds the microphone stays ignored after the speaker falls quiet (half-duplex): the room's echo dies away."""
    echo_window: float = 20.0
    """Seconds of what Tantra said that a transcript is compared with, to recognise its own voice coming back."""
    echo_margin: float = 2.0
    """Barge-in on: while Tantra speaks, a frame counts as the user only if it is this many times louder than the
    echo predicted for it (``core.talk.echo_gate``), so its own voice cannot interrupt it. With headphones the echo
    measures about nothing, and any speech interrupts."""

    echo_canceller: object | None = None
    """A ``core.talk.echo_canceller.EchoCanceller``: the microphone is heard without Tantra's own voice, and
    ``barge_in`` auto becomes on (talk over it on loudspeakers)."""
    wake: object | None = None
    """A ``core.talk.wake_word.WakeListener``: only turns with the wake word in them are answered (``--wake``)."""
    follow_up_seconds: float = 6.0
    """With ``wake``: a turn that starts this soon after an answer (or after the wake word said alone) needs none."""

    def __post_init__(self) -> None:
        if self.barge_in not in BARGE_IN:
            raise BadInput(f"--barge-in {self.barge_in!r}: choose {', '.join(BARGE_IN)}")


@dataclass
class Roles:
    """The three models of a spoken turn, loaded once and kept warm."""

    session: object
    """A ``core.language.chat_session.ChatSession``."""
    hear: Callable[[np.ndarray], str]
    """16 kHz float32 audio -> what was said."""
    speaker: object
    """An ``core.voice.speaker.Speaker``."""
    end_of_turn: Callable[[np.ndarray], float] | None = None
    """16 kHz float32 audio of a turn -> the probability that it is complete (``core.talk.end_of_turn``); None:
    silence alone ends a turn."""


@dataclass
class TurnRecord:
    turn: int
    heard: str
    reply: str
    """What the user heard of it: the whole reply, or as far as it played before an interruption."""
    interrupted: bool
    images: list[str]
    latency: dict[str, float | None]
    """Seconds from the end of the user's speech (the last voiced sample) to each stage."""
    went_on: bool = False
    """The user went on speaking before the reply made a sound: it was taken back, and the next turn is this one
    and what they went on to say."""

    def as_json(self) -> dict:
        return {"turn": self.turn, "heard": self.heard, "reply": self.reply, "interrupted": self.interrupted,
                "images": self.images, "latency": self.latency, "went_on": self.went_on}  # fmt: skip


# ---- events that run() yields ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    text: str
    """For the person, on stderr."""


@dataclass(frozen=True)
class Heard:
    turn: int
    text: str
    typed: bool = False
    """A typed turn (the REPL with the voice on): nothing to show, the user sees what they typed."""


@dataclass(frozen=True)
class ReplyText:
    text: str


@dataclass(frozen=True)
class TurnDone:
    record: TurnRecord


Event = Note | Heard | ReplyText | TurnDone
