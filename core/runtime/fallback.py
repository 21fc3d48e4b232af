"""One fallback policy for every role: try a chain's backends in order; the first that loads (or runs) answers.

A backend that fails for a reason that is not the user's own input (a library not installed, weights missing or
corrupt, a device or kernel absent, a server down) makes way for the next, with one line saying why and which one
comes next. Bad input (``BadInput``) stops the walk at once: no other backend would do better with it. When every
backend has failed, the error lists what each one said, in the chain's order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from config.errors import BadInput, ModelUnavailable, TantraError

T = TypeVar("T")
Say = Callable[[str], None]

FALLS_THROUGH = (TantraError, ImportError, OSError, RuntimeError, ValueError)
"""What a backend that cannot load or run here raises: our own errors, a library not installed, a file that cannot
be read or parsed, a kernel or device that fails. Anything else is a bug, and surfaces as one."""

Factory = Callable[[], Any]
"""What builds a backend (or raises): a chain entry's attempt, a test's fake."""


@dataclass(frozen=True)
class Candidate(Generic[T]):
    """One entry of a chain, ready to try."""

    label: str
    """How people know it: "piper", "spikingbrain-smollm2-135m (spiking)", "the local classifier"."""
    attempt: Callable[[], T]
    """Loads (or runs) the backend; raises to make way for the next one."""
    unavailable: str | None = None
    """Why it cannot be used here, known without trying (not configured, not pulled); it is then passed over."""
    weights: str | None = None
    """The weights it reads, where other entries read the same: once they are found missing (``ModelUnavailable``),
    those entries are passed over too, rather than looking again."""


def _reason(error: BaseException) -> str:
    if isinstance(error, ModuleNotFoundError):
        return f"{error.name or error} is not installed"
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def first_that_works(candidates: Sequence[Candidate[T]], what: str, warn: Say, note: Say | None = None) -> T:
    """The result of the first candidate whose attempt succeeds; ``what`` names the role in the final error
    ("language model", "speech backend", ...). ``warn`` tells why one gave way to the next; ``note`` (for
    ``--verbose``) hears about entries passed over without trying."""
    missing: dict[str, str] = {}  # weights found missing -> the entry that found out

    def passed_over(candidate: Candidate) -> str | None:
        if candidate.unavailable is not None:
            return candidate.unavailable
        if candidate.weights in missing:
            return f"its weights are missing (see {missing[candidate.weights]})"
        return None

    failures: list[str] = []
    tried: list[BaseException] = []
    for index, candidate in enumerate(candidates):
        skip = passed_over(candidate)
        if skip is not None:
            failures.append(f"{candidate.label}: {skip}")
            if note is not None:
                note(f"{candidate.label}: {skip}; passed over")
            continue
        try:
            return candidate.attempt()
        except BadInput:
            raise
        except FALLS_THROUGH as error:
            tried.append(error)
            if isinstance(error, ModelUnavailable) and candidate.weights is not None:
                missing[candidate.weights] = candidate.label
            failures.append(f"{candidate.label}: {_reason(error)}")
            upcoming = next((c for c in candidates[index + 1 :] if passed_over(c) is None), None)
            if upcoming is not None:
                warn(f"{candidate.label} cannot be used ({_reason(error)}); trying {upcoming.label}")
    if sum(c.unavailable is None for c in candidates) == 1 and isinstance(tried[0], TantraError):
        raise tried[0]  # the one backend there was to try (a pinned one): its own error says it best
    raise ModelUnavailable(f"no {what} can run here: " + "; ".join(failures))


class GiveWay:
    """A server's engine giving way to the local one in the middle of a session: at the server's first failure
    (not a refusal of the input: another engine would be told the same), one line says so and ``local()``, loaded
    once, answers from then on. Used by every role's remote engine, so each says it and behaves alike."""

    def __init__(self, local: Factory | None, warn: Say, then: str) -> None:
        """``then``: what the line says happens now ("the local voice speaks from here on")."""
        self.local, self.warn, self.then = local, warn, then
        self.engine = None
        """The local engine, once the server has failed; None before."""
        self._lock = threading.Lock()  # one local engine, even when two threads find the server gone

    def after(self, failure: TantraError):
        """The local engine, after ``failure``; raises ``failure`` itself where it is a refusal of the input or
        there is no local engine to give way to."""
        if isinstance(failure, BadInput) or self.local is None:
            raise failure
        with self._lock:
            if self.engine is None:
                self.warn(f"{failure}; {self.then}")
                self.engine = self.local()
        return self.engine
