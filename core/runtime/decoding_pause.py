"""A pause of the local language model's decoding, for work that the user is waiting on more.

After a spoken question the user waits for the first audio of the answer, and the model's decoding thread, which
runs ahead of the voice anyway, shares the two cores with the voice making it. On the AVX2 EPYC, Piper made a first
sentence in 0.09 s alone and in 0.17-0.21 s with the decoding beside it. So the voice loop opens a pause around the
first piece of a reply: decoding waits between two tokens until it closes, and catches up while the piece plays.

No torch here: the voice loop imports it, and its tests run without the model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_open = 0  # pauses open now: decoding goes on when the last one closes
_running = threading.Event()
_running.set()


@contextmanager
def decoding_paused() -> Iterator[None]:
    """Decoding waits between tokens while this is open (nested or from several threads: until all close)."""
    global _open
    with _lock:
        _open += 1
        _running.clear()
    try:
        yield
    finally:
        with _lock:
            _open -= 1
            if _open == 0:
                _running.set()


def is_paused() -> bool:
    return not _running.is_set()


def wait_while_paused() -> None:
    """Called by the decoding thread between two tokens."""
    _running.wait()
