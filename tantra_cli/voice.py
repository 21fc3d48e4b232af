"""``tantra chat --voice`` without a terminal: a spoken conversation until the stand-in microphone's file ends (or
Ctrl-C), each turn shown as text or one JSON object per line. The link and the models come from ``core.talk.start``."""

from __future__ import annotations

import json
import signal
import threading

from config.errors import TantraError
from core.runtime.status import say


def run_headless(loop, load, as_json: bool) -> int:
    """Answer spoken turns until the stand-in microphone's file is over; the exit code. Ctrl-C stops what is going
    on (a recording, a reply); pressed when nothing is, it ends the session."""
    from core.talk.events import Heard, Note, ReplyText, TurnDone

    ended_by_user = False

    def ctrl_c() -> None:
        nonlocal ended_by_user
        stopped = loop.interrupt()
        if stopped:
            say(f"stopped the {stopped}")
        else:
            ended_by_user = True
            loop.quit()

    def on_ctrl_c(signum, frame) -> None:
        # Python runs a handler between two steps of the main thread, which may then hold a lock that stopping takes
        # (the turn queue's, stderr's): taken here, it would wait on itself forever. A thread of its own waits its turn.
        threading.Thread(target=ctrl_c, name="ctrl-c", daemon=True).start()

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    failed = False
    try:
        for event in loop.run(load):
            if isinstance(event, Note):
                say(event.text)
                failed = failed or event.text.startswith("the microphone stopped")
            elif as_json:
                if isinstance(event, Heard):
                    say(f"heard: {event.text}")
                elif isinstance(event, TurnDone):
                    print(json.dumps(event.record.as_json(), ensure_ascii=False), flush=True)
            elif isinstance(event, Heard):
                print(f"you: {event.text}\ntantra: ", end="", flush=True)
            elif isinstance(event, ReplyText):
                print(event.text, end="", flush=True)
            elif isinstance(event, TurnDone):
                record = event.record
                ending = " (you went on)" if record.went_on else " (interrupted)" if record.interrupted else ""
                print(ending, flush=True)
    finally:
        signal.signal(signal.SIGINT, previous)
        loop.link.close()
    if failed:
        raise TantraError("the voice conversation ended because the microphone stopped")
    return 130 if ended_by_user else 0

