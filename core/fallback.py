"""One fallback policy for every role: try a chain's backends in order; the first that loads (or runs) answers.

A backend that fails for a reason that is not the user's own input (a library not installed, weights missing or
corrupt, a device or kernel absent, a server down) makes way for the next, with one line saying why. Bad input
(``BadInput``) stops the walk at once: no other backend would do better with it. When every backend has failed,
the error lists what each one said, the last failure last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from core.errors import BadInput, ModelUnavailable, TantraError

T = TypeVar("T")
Say = Callable[[str], None]


class Skip(TantraError):
    """Raised by an attempt that does not apply after all (the same weights already found missing): passed over
    without a warning, and listed with the other failures if nothing works."""


@dataclass(frozen=True)
class Candidate(Generic[T]):
    """One entry of a chain, ready to try."""

    label: str
    """How people know it: "piper", "spikingbrain-smollm2-135m (spiking)", "the local classifier"."""
    attempt: Callable[[], T]
    """Loads (or runs) the backend; raises to make way for the next one."""
    unavailable: str | None = None
    """Why it cannot be used here, known without trying (not configured, not pulled); it is then passed over."""


def _reason(error: BaseException) -> str:
    if isinstance(error, ImportError):
        return f"{error.name or error} is not installed"
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def first_that_works(candidates: Sequence[Candidate[T]], what: str, warn: Say, note: Say | None = None) -> T:
    """The result of the first candidate whose attempt succeeds; ``what`` names the role in the final error
    ("language model", "speech backend", ...). ``warn`` tells why one gave way to the next; ``note`` (for
    ``--verbose``) hears about entries that were passed over without trying."""
    runnable = [c for c in candidates if c.unavailable is None]
    failures = [f"{c.label}: {c.unavailable}" for c in candidates if c.unavailable is not None]
    if note is not None:
        for line in failures:
            note(f"{line}; passed over")
    error: BaseException | None = None
    for index, candidate in enumerate(runnable):
        try:
            return candidate.attempt()
        except BadInput:
            raise
        except Skip as skipped:
            failures.append(f"{candidate.label}: {skipped}")
            continue
        # ImportError: a library not installed; OSError and RuntimeError: a file or a kernel that does not work
        # here. Anything else is a bug, and surfaces as one.
        except (TantraError, ImportError, OSError, RuntimeError) as failed:
            error = failed
        failures.append(f"{candidate.label}: {_reason(error)}")
        if index + 1 < len(runnable):
            warn(f"{candidate.label} cannot be used ({_reason(error)}); trying {runnable[index + 1].label}")
    if len(candidates) == 1 and isinstance(error, TantraError):
        raise error  # one backend was asked for: its own error says it best
    raise ModelUnavailable(f"no {what} can run here: " + "; ".join(failures))
