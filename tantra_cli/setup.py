"""``tantra setup``: after ``pip install``, everything Tantra's defaults need, in one command. It pulls the default
models, builds and checks SpikingBrain's kernel, and says in a short table what else it found (voices, sound devices,
the wake words, the echo canceller), with the command that adds what is missing on this operating system."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from core.runtime.status import say
from tantra_cli.common import EXIT_FAILED, print_table, settings_of, user_errors


def setup(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print every finding as JSON."),
) -> None:
    """Pull the default models, build SpikingBrain's kernel, and check voices, sound devices and the rest; exits 1
    when a default model could not be pulled."""
    from core.runtime import machine_check

    settings = settings_of(ctx)
    with user_errors(settings):
        say(f"model store: {settings.models_dir}")
        findings = machine_check.pull_models(settings, say)
        say("building SpikingBrain's decoding kernel")
        findings.append(machine_check.kernel(settings))
        findings += [*machine_check.voices(), *machine_check.sound(), *machine_check.listening(),
                     machine_check.whisper_engines()]  # fmt: skip
    if as_json:
        print(json.dumps([asdict(finding) for finding in findings], indent=2))
    else:
        # "missing" stops the defaults; "-" has a fallback, or is optional.
        rows = [(f.part, "ok" if f.ok else "missing" if f.needed else "-", f.found, f.fix) for f in findings]
        print_table(("part", "", "found", "to add it"), rows, width=120, wrapping=("found", "to add it"))
    if any(f.needed and not f.ok for f in findings):
        raise typer.Exit(EXIT_FAILED)
    say("ready: try `tantra chat`, or `tantra chat --voice` to talk")
