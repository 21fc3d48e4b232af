"""What every command shares: the settings in the Typer context, text from stdin, and turning errors into
exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from config.errors import BadInput, TantraError
from config.settings import Settings
from core.runtime.status import say

EXIT_FAILED = 1  # an input or model failed
EXIT_USAGE = 2  # the command line itself is wrong
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


def redeliver_swallowed_interrupts() -> None:
    """A Ctrl-C that Python raises inside a callback it cannot raise from (a weakref callback in the import system,
    a ``__del__``) is printed as "Exception ignored" and lost: the model went on loading. Deliver it again, once the
    callback has returned, so that it stops the command as any other Ctrl-C does."""
    default_hook = sys.unraisablehook

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            default_hook(unraisable)
            return
        import _thread
        import threading

        # From another thread and a moment later: raised from here, inside the hook, it would be swallowed again.
        try:
            threading.Timer(0.01, _thread.interrupt_main).start()
        except RuntimeError:  # the interpreter is shutting down: nothing is left to stop
            pass

    sys.unraisablehook = hook


def settings_of(ctx: typer.Context) -> Settings:
    return ctx.find_root().obj


def error(message: str) -> None:
    say(f"error: {message}")


def read_stdin_text(command: str) -> str:
    """All of stdin as text, or BadInput for binary data or bytes that are not UTF-8."""
    data = sys.stdin.buffer.read()
    if b"\0" in data:
        raise BadInput(f"stdin holds binary data, not text; pipe text into {command}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as undecodable:
        raise BadInput(
            f"stdin is not valid UTF-8 text (byte {undecodable.start}); convert it first, e.g. with iconv"
        ) from None


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


def print_table(columns: tuple[str, ...], rows: list[tuple[str, ...]], width: int, wrapping: tuple[str, ...]) -> None:
    """A plain table at the terminal's width, or ``width`` wide at most when stdout is a file or a pipe. Where it
    is too narrow, cells of the ``wrapping`` columns wrap within them (a long status, such as Coqui's install
    hint, rather than a model's name)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column not in wrapping)
    for row in rows:
        table.add_row(*(escape(value) for value in row))  # "tantra[coqui]" is not markup
    if sys.stdout.isatty():
        Console().print(table)
        return
    console = Console(width=width)
    with console.capture() as captured:
        console.print(table)
    # rich pads every line to the table's width; a file or a pipe gets the lines without the trailing blanks.
    print("\n".join(line.rstrip() for line in captured.get().splitlines()))
