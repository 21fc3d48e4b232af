"""Status lines for people. Everything that is not data goes to stderr, prefixed so the speaker is clear."""

import sys


def say(message: str) -> None:
    print(f"tantra: {message}", file=sys.stderr, flush=True)
