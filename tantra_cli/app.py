"""The ``tantra`` command: global options, then one sub-command per module."""

from __future__ import annotations

import sys

import typer

from config.errors import TantraError
from config.settings import DEVICES, load_settings, with_server_roles
from tantra_cli import (
    __version__,
    bench,
    chat,
    describe,
    devices,
    logs,
    memory,
    models,
    serve,
    setup,
    speak,
    transcribe,
)
from tantra_cli.common import EXIT_USAGE, error, redeliver_swallowed_interrupts

app = typer.Typer(
    name="tantra",
    help="Offline multimodal assistant: speech to text, text, vision and voice on your own machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"tantra {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    device: str = typer.Option(
        None, "--device", metavar="|".join(DEVICES), help="Where models run (default auto; env TANTRA_DEVICE)."
    ),
    low_resource: bool = typer.Option(
        False, "--low-resource", help="Use the lightest backend of every role (env TANTRA_LOW_RESOURCE)."
    ),
    server: str = typer.Option(
        None, "--server", metavar="URL", help="Use a running `tantra serve` instead of loading models here "
        "(env TANTRA_SERVER; its key: TANTRA_SERVER_API_KEY).",
    ),  # fmt: skip
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Say on stderr which backends were picked."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Settings come from these flags, then TANTRA_* variables, then config.toml in your config directory."""
    # A flag that was not given must not override the environment or the config file: pass None for it.
    given = {"low_resource": low_resource, "verbose": verbose, "debug": debug}
    flags = {"device": device, "server": server, **{name: True if value else None for name, value in given.items()}}
    try:
        ctx.obj = with_server_roles(load_settings(flags))
    except TantraError as failure:
        error(str(failure))
        raise typer.Exit(EXIT_USAGE) from None


app.command(name="chat")(chat.chat)
app.command(name="transcribe")(transcribe.transcribe)
app.command(name="speak")(speak.speak)
app.command(name="describe")(describe.describe)
app.command(name="devices")(devices.devices)
app.command(name="serve")(serve.serve)
app.command(name="setup")(setup.setup)
app.add_typer(models.app, name="models")
app.add_typer(logs.app, name="logs")
app.add_typer(memory.app, name="memory")
app.add_typer(bench.app, name="bench")


def _bare_wake(args: list[str]) -> list[str]:
    """``--wake`` with no name (last, or before another option) lists the words: click options take a value or none,
    never either, so the missing name is filled in here."""
    return [part for index, arg in enumerate(args) for part in (
        [arg, "list"] if arg == "--wake" and (index + 1 == len(args) or args[index + 1].startswith("-")) else [arg]
    )]  # fmt: skip


def main() -> None:
    sys.argv[1:] = _bare_wake(sys.argv[1:])
    redeliver_swallowed_interrupts()
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C outside a command body (while parsing or importing)
        print("tantra: error: interrupted", file=sys.stderr)
        sys.exit(130)
