"""The one error type library code raises (here, at the bottom, since the settings raise it too: every package
imports it and it imports nothing).

Like simonw/llm's errors, its message is displayed to the user as it is, so write it for a person: say what went
wrong and what to do about it, in one line. Only ``tantra_cli`` turns it into an exit code.
"""


class TantraError(Exception):
    """A failure a person can act on; ``str(error)`` is the one-line message shown to them."""


class ModelUnavailable(TantraError):
    """A model cannot be had: not pulled and not downloadable, unknown name, or a backend not installed."""


class BadInput(TantraError):
    """An input file or stream that cannot be used (missing, empty, truncated, not audio, ...)."""
