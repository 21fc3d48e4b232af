"""``tantra devices``: the microphones and speakers PortAudio can open, for ``--input-device`` / ``--output-device``."""

from __future__ import annotations

import typer

from core.runtime.status import say
from tantra_cli.common import settings_of, user_errors


def devices(ctx: typer.Context) -> None:
    """List the sound inputs and outputs (index, name, channels, rate); the defaults are marked."""
    with user_errors(settings_of(ctx)):
        from core.runtime.sound_cards import list_devices

        found = list_devices()
        if not found:
            say("no sound devices here (or PortAudio is missing); talk through files instead: "
                "tantra chat --mic-file question.wav --speaker-file reply.wav")  # fmt: skip
            return
        for kind, default in (("inputs", "default_input"), ("outputs", "default_output")):
            print(f"{kind}:")
            for device in (d for d in found if getattr(d, kind) > 0):
                mark = "  (default)" if getattr(device, default) else ""
                print(f"  {device.index:>3}  {device.name}  [{getattr(device, kind)} ch, "
                      f"{device.sample_rate:.0f} Hz, {device.host}]{mark}")  # fmt: skip
