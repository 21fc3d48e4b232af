"""Language models the user already has, made into SpikingBrain: a model from Ollama's store (its manifest names the
GGUF blob; nothing is downloaded), kept in the model store under ``imported/NAME`` so that ``tantra chat -m NAME``
and ``tantra models`` know it by name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from config.errors import BadInput, ModelUnavailable
from core.runtime.files import sha256_of

OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
DEFAULT_REGISTRY = "registry.ollama.ai"


def imported_root(settings) -> Path:
    return settings.models_dir / "imported"


def imported_dir(settings, name: str) -> Path | None:
    """The converted directory of the imported model ``name``, or None when there is none."""
    path = imported_root(settings) / name
    return path if re.fullmatch(r"\w[\w.+-]*", name) and (path / "config.json").is_file() else None


def imported_models(settings) -> list[Path]:
    root = imported_root(settings)
    return sorted(p for p in root.iterdir() if (p / "config.json").is_file()) if root.is_dir() else []


def ollama_models_dir() -> Path:
    """Where Ollama keeps its models: ``$OLLAMA_MODELS``, the user's ``~/.ollama/models``, or the Linux service's."""
    if os.environ.get("OLLAMA_MODELS"):
        return Path(os.environ["OLLAMA_MODELS"]).expanduser()
    for candidate in (Path.home() / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")):
        if candidate.is_dir():
            return candidate
    return Path.home() / ".ollama" / "models"


def ollama_blob(reference: str, models: Path | None = None) -> tuple[Path, str]:
    """The GGUF blob of ``reference`` (``NAME[:TAG]``, ``USER/NAME[:TAG]`` or ``HOST/NAMESPACE/NAME[:TAG]``) in
    Ollama's store, and its sha256 as the manifest records it."""
    models = models or ollama_models_dir()
    name, _, tag = reference.partition(":")
    parts = name.split("/")
    valid = [re.fullmatch(r"\w[\w.-]*", part) for part in (*parts, tag or "latest")]  # never "..": no way out
    if not name or not all(valid) or len(parts) > 3:
        raise BadInput(f"ollama:{reference}: not a model name (ollama:NAME[:TAG], as `ollama list` shows them)")
    path = {1: [DEFAULT_REGISTRY, "library"], 2: [DEFAULT_REGISTRY], 3: []}[len(parts)] + parts
    manifest = models / "manifests" / Path(*path) / (tag or "latest")
    if not manifest.is_file():
        raise ModelUnavailable(f"ollama:{reference} is not in Ollama's store at {models} (`ollama pull {reference}` "
                               "first, or set OLLAMA_MODELS)")  # fmt: skip
    try:
        layers = json.loads(manifest.read_text())["layers"]
        digest = next(layer["digest"] for layer in layers if layer.get("mediaType") == OLLAMA_MODEL_LAYER)
    except (ValueError, KeyError, TypeError, StopIteration):
        raise BadInput(f"{manifest}: not an Ollama manifest with a model layer") from None
    algorithm, _, expected = digest.partition(":")
    if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise BadInput(f"{manifest}: the model layer's digest {digest!r} is not a sha256")
    for blob in (models / "blobs" / f"sha256-{expected}", models / "blobs" / f"sha256:{expected}"):
        if blob.is_file():
            return blob, expected
    raise ModelUnavailable(f"ollama:{reference}: its model blob sha256-{expected[:12]}... is missing from {models}")


def import_ollama(reference: str, settings, say, models: Path | None = None,
                  bits: int | None = None) -> tuple[str, Path]:
    """``reference`` converted from Ollama's store into the model store (spiking weights in ``bits``, None: the
    GGUF's own): ``(its name here, its directory)``. The blob is checked against the manifest's sha256 first; the
    conversion goes to a staging directory renamed into place, so an interrupted import leaves nothing that loads."""
    from core.language.spikingbrain_convert import convert_gguf

    blob, expected = ollama_blob(reference, models)
    # Named after where it came from: never the same name as a store model (the hub's qwen2.5-0.5b, say).
    name = "ollama-" + re.sub(r"[^\w.+-]", "-", reference.rsplit("/", 1)[-1]).strip("-")
    say(f"checking {blob.name[:19]}... against Ollama's manifest")
    if sha256_of(blob) != expected:
        raise BadInput(f"{blob}: its sha256 does not match Ollama's manifest: the file is damaged; pull it again")
    root = imported_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    staging, target = root / f".partial-{name}", root / name
    shutil.rmtree(staging, ignore_errors=True)
    say(f"converting ollama:{reference} into {target}")
    try:
        convert_gguf(blob, staging, bits)
        (staging / "imported.json").write_text(json.dumps({"from": f"ollama:{reference}", "sha256": expected}))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return name, target
