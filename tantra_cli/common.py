"""What every command shares: the settings in the Typer context, and turning errors into exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from config.settings import Settings
from core.errors import TantraError
from core.status import say

EXIT_FAILED = 1  # an input or model failed
EXIT_USAGE = 2  # the command line itself is wrong
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


def settings_of(ctx: typer.Context) -> Settings:
    return ctx.find_root().obj


def error(message: str) -> None:
    say(f"error: {message}")


@contextmanager
def user_errors(settings: Settings) -> Iterator[None]:
    """One line on stderr and an exit code instead of a traceback, unless ``--debug`` asks for it."""
    try:
        yield
    except TantraError as failure:
        if settings.debug:
            raise
        error(str(failure))
        raise typer.Exit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        if settings.debug:
            raise
        error("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except BrokenPipeError:
        # The reader went away (`tantra ... | head`): that is how pipelines end, not a failure to report.
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except Exception as failure:  # the last line of defence before the user's terminal
        if settings.debug:
            raise
        first_line = (str(failure).strip().splitlines() or [""])[0]
        error(f"unexpected {type(failure).__name__}: {first_line} (run with --debug for the traceback)")
        raise typer.Exit(EXIT_FAILED) from None
