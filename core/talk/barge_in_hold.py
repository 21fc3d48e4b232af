"""A barge-in's hold on the reply: the voice pauses at the decision, and the turn that made it waits for the
conversation to judge it. The user: the reply stops and the turn is answered. Tantra's own voice (a real room's echo
that the canceller let through as sure speech) or a noise: the reply goes on where it paused.

The listener pauses and fills the hold, the conversation takes, resumes and releases it, and one lock orders them so
that the end of a reply never leaves a pause that nobody ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from core.talk.turns import Ended, Utterance

Held = tuple[Utterance, bool]
"""A barge-in's turn, and whether it was spoken to Tantra (with a wake word, a turn without it is not)."""


class BargeInHold:
    def __init__(self, playback, replying: threading.Event, clock: Callable[[], float]) -> None:
        """``playback``: the sound link's playback queue; ``replying``: set while a reply is being answered;
        ``clock``: the sound link's clock."""
        self.playback, self.replying, self.clock = playback, replying, clock
        self._lock = threading.Lock()
        self._holding = False  # the barge-in's turn has not ended yet
        self._held: Held | None = None  # it has ended, and waits to be judged
        self.paused_at = 0.0
        """When the last barge-in paused the voice, on the link's clock."""

    def pause(self) -> None:
        """A barge-in was decided: the reply's voice stops at the sound link's next block, until ``resume`` or
        ``release``. With no reply going on, what plays (the wake word's chime) just stops."""
        with self._lock:
            if not self.replying.is_set():
                self.playback.clear()
                return
            self._holding, self.paused_at = True, self.clock()
            self.playback.pause()

    def keep(self, event, spoken_to: bool) -> bool:
        """The listener's turn events while a barge-in holds the reply are the hold's: its turn's end is kept for
        ``take``. True when ``event`` was kept (the conversation must not get it)."""
        with self._lock:
            if not self._holding:
                return False
            if isinstance(event, Ended):
                self._holding, self._held = False, (event.utterance, spoken_to)
            return True

    def take(self) -> Held | None:
        """The barge-in's turn, once it has ended (then it is the caller's to judge), or None."""
        with self._lock:
            held, self._held = self._held, None
        return held

    def put_back(self, held: Held) -> None:
        """A turn taken but not judged (Ctrl-C meanwhile): ``release`` hands it on."""
        with self._lock:
            self._held = held

    def resume(self) -> None:
        """The barge-in was no barge-in: the voice goes on, unless another barge-in holds it since."""
        with self._lock:
            if not self._holding:
                self.playback.resume()

    def release(self) -> Held | None:
        """The reply is over (said to its end, or stopped): the voice is not left paused, and a held turn is
        returned to be answered like any other."""
        with self._lock:
            held, self._held, self._holding = self._held, None, False
            self.playback.resume()
        return held
