"""How the loader builds the language role: SpikingBrain's chain (spiking, plain, GPT-2 where pulled) made into
candidates, each model loaded, checked to run, and given its decoding kernel; or the model on a server.
``ModelLoader.load_spikingbrain`` walks what this gives."""

from __future__ import annotations

import subprocess
from pathlib import Path

from config.errors import ModelUnavailable, TantraError
from config.model_config import STORE_MODELS, StoreModel, find_store_model
from core.language.imported_models import imported_dir, imported_models
from core.runtime import model_store
from core.runtime.fallback import Candidate


def remote_language_model(loader) -> dict:
    from core.language.remote import from_settings

    model = from_settings(loader.settings)
    loader.note(f"language model: {model.model} on the {model.label}")
    return {"model": model, "tokenizer": None, "name": model.model, "device": "remote", "chat": model}


def language_candidates(loader, spiking: bool, model: str | None) -> list[Candidate]:
    section = loader.config.language
    if model is not None:
        source = named_model(loader.settings, model)
        return [_language_candidate(loader, source.name if isinstance(source, StoreModel) else model, source, spiking)]
    candidates, seen = [], set()
    for entry in loader.order(section.chain, "torch"):
        stored = find_store_model(section.default if entry.startswith("spikingbrain") else entry)
        entry_spiking = spiking and entry != "spikingbrain-nospike"
        if (stored.name, entry_spiking) not in seen:
            seen.add((stored.name, entry_spiking))
            candidates.append(_language_candidate(loader, entry, stored, entry_spiking))
    return candidates


def named_model(settings, model: str) -> StoreModel | Path:
    """What ``-m`` names: a directory from ``tantra models convert``, a store model of the language role, or a model
    ``tantra models import`` brought in."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    stored = find_store_model(model)
    imported = imported_dir(settings, model) if stored is None else None
    if imported is not None:
        return imported
    if stored is None or stored.role != "language":
        names = [m.name for m in STORE_MODELS if m.role == "language"] + [p.name for p in imported_models(settings)]
        raise ModelUnavailable(f"unknown language model {model!r}; choose {', '.join(names)}, or a directory from "
                               "`tantra models convert`")  # fmt: skip
    return stored


def _language_candidate(loader, entry: str, source: StoreModel | Path, spiking: bool) -> Candidate:
    label = f"{getattr(source, 'name', source)} ({'spiking' if spiking else 'not spiking'})"
    unavailable = None
    if isinstance(source, StoreModel) and _unpulled_hub_model(loader, source):
        unavailable = f"not pulled (`tantra models pull {source.name}`)"

    def attempt() -> dict:
        loaded = _load_language_model(loader, source, spiking)
        loader.note(f"language model: {label}, on {loaded['device']}")
        return loaded

    weights = source.name if isinstance(source, StoreModel) else None  # spiking or not: one pull
    return loader.candidate("language", entry, label, attempt, unavailable, weights)


def _unpulled_hub_model(loader, model: StoreModel) -> bool:
    """Models from the Hugging Face hub join the fallback chain only once pulled: never a download at run time."""
    return bool(model.hub_repo) and model_store.status(model, loader.settings).state != "ready"


def _load_language_model(loader, source: StoreModel | Path, spiking: bool) -> dict:
    import torch

    from core.language.chat_model import LocalChatModel
    from core.language.language_model import load_spikingbrain_dir
    from core.language.spikingbrain_convert import INT8_WEIGHTS, WEIGHTS

    if isinstance(source, StoreModel):
        root = model_store.ensure(source, loader.settings)
        model_store.verify_file(source, root, INT8_WEIGHTS if spiking else WEIGHTS)
    else:
        root = source
    loader.placement.torch_ready()
    device = loader.placement.device("torch")
    loaded = load_spikingbrain_dir(root, device, spiking)
    if spiking and device == "cpu":
        use_decoding_kernel(loader, loaded["model"])
    try:  # one token through every layer: the INT8 kernel may be missing on this platform or device
        with torch.no_grad():
            loaded["model"](torch.tensor([[0]], device=device))
    except (RuntimeError, NotImplementedError) as error:
        first_line = (str(error).strip().splitlines() or ["failed"])[0]
        raise TantraError(f"it does not run here ({first_line})") from None
    name = getattr(source, "name", str(source))
    chat = LocalChatModel(loaded["model"], loaded["tokenizer"], name)
    return {**loaded, "name": name, "device": device, "chat": chat}


def decoding_threads(settings) -> int:
    """The threads of the native decoding step: ``threads`` where set, else one. Two decode faster alone (130
    against 100 tokens/s in ``tantra chat`` on 2 cores), but their workers spin on every core while a voice session's
    audio callbacks and echo canceller need one; until a voice session is measured on loudspeakers with them, more
    than one must be asked for."""
    return settings.threads or 1


def use_decoding_kernel(loader, model) -> None:
    """SpikingBrain's compiled decoding kernel (``core.models.native``), built once per machine into the store;
    without it the model decodes in PyTorch (its exact integer product), at about 40% of the speed, and says
    so once.

    The native step runs on ``decoding_threads`` with its own team of threads (``native/team.c``). A model that
    decodes per projection (GPT-2) keeps one thread unless ``threads`` is set: its OpenMP loops, about 120 a token,
    put their workers to sleep whenever torch's pool also exists (49 against 54 tokens/s on two, 2 cores). A short
    prompt's products (under ``kernel_rows`` tokens) run on every core, as torch's do: nothing else runs then."""
    from core.models import decode_step, native, spike_coding

    try:
        kernel = loader.once(("native-kernel",), lambda: native.load(loader.settings.models_dir / "kernels"))
    except (OSError, subprocess.SubprocessError) as error:
        loader.warn(f"SpikingBrain decodes without its compiled kernel, about 2.5x slower ({error}); install gcc")
        return
    threads = decoding_threads(loader.settings)
    kernel.threads, kernel.prompt_threads = threads, loader.placement.threads
    if not model.use_kernel(kernel):
        loader.note("some layers of this model decode in PyTorch: their spike counts could pass the kernel's")
    native.keep_freed_memory()  # after the weights' new layout: those copies are not kept in the heap
    spike_coding.kernel_rows()  # which prompt product is faster here, measured once: while loading, not answering
    why_not = decode_step.unsupported(model)
    if why_not is None:
        model.native_step = decode_step.NativeStep(model, kernel.library, threads)
        loader.note(f"language model: native decoding step ({kernel.path.name}) on {threads} thread(s)")
    else:
        loader.note(f"language model: decoding per projection, not in one native step: {why_not}")
        loader.note(f"language model: decoding kernel {kernel.path.name} on {kernel.threads} thread(s)")
