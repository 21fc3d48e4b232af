"""How the loader builds the voice role: which backend a voice name belongs to, the chain (Coqui, Piper,
espeak-ng) made into candidates, each backend built, or the voice on a server. ``ModelLoader.load_speaker`` walks
what this gives."""

from __future__ import annotations

from pathlib import Path

from config.errors import BadInput, ModelUnavailable
from config.model_config import find_store_model
from core.runtime import model_store
from core.runtime.fallback import Candidate, Factory


def remote_speech(loader, local: Factory):
    from core.voice.remote import from_settings

    backend = from_settings(loader.settings, local, loader.warn)
    loader.note(f"speech: voice {backend.voice} of {backend.model} on the {backend.label}, {backend.sample_rate} Hz")
    return backend


def walk_speech(loader, order: tuple[str, ...], voice: str | None):
    return loader.walk(speech_candidates(loader, order, voice), "speech backend")


def speech_candidates(loader, order: tuple[str, ...], voice: str | None) -> list[Candidate]:
    from core.voice.speaker import coqui_model_is_local

    candidates = []
    for name in order:
        chosen = voice or loader.config.voice.voices[name]
        unavailable = None
        if name == "coqui" and len(order) > 1:  # in the chain, never pinned: it must not download a voice
            from importlib.util import find_spec

            if find_spec("TTS") is None:
                unavailable = "Coqui TTS is not installed (pip install 'tantra[coqui]')"
            elif not coqui_model_is_local(chosen):
                unavailable = "its voice is not downloaded; `--backend coqui` fetches it where reachable"

        def attempt(name: str = name, chosen: str = chosen):
            backend = _build_speech_backend(loader, name, chosen)
            loader.note(f"speech: {backend.name}, voice {backend.voice}")
            return backend

        candidates.append(loader.candidate("voice", name, name, attempt, unavailable))
    return candidates


def backend_of_voice(loader, voice: str) -> str:
    from core.voice.speaker import espeak_voices

    stored = find_store_model(voice)
    if (stored is not None and stored.role == "voice") or voice.endswith(".onnx"):
        return "piper"
    if voice.startswith("tts_models/") or Path(voice).expanduser().is_dir():
        return "coqui"
    if voice in espeak_voices():
        return "espeak-ng"
    raise BadInput(f"unknown voice {voice!r}; `tantra speak --list-voices` lists them")


def _build_speech_backend(loader, name: str, voice: str):
    from core.voice.speaker import CoquiBackend, EspeakBackend, PiperBackend, coqui_status

    if name == "espeak-ng":
        return EspeakBackend(voice)
    if name == "coqui":
        status = coqui_status()  # before asking torch for a device: 200 MB for a backend that is not there
        if status != "ready":
            raise ModelUnavailable(f"Coqui TTS is {status}")
        # A Piper .onnx voice runs on Coqui's onnxruntime code, any other Coqui model on torch.
        return CoquiBackend(voice, loader.placement.device("onnxruntime" if voice.endswith(".onnx") else "torch"))
    path = Path(voice).expanduser()
    if path.suffix == ".onnx":
        if not path.is_file():
            raise BadInput(f"{voice}: no such voice file")
        return PiperBackend(path, path.stem, loader.placement.onnx_providers(), loader.placement.threads)
    stored = find_store_model(voice)
    if stored is None or stored.role != "voice":
        raise BadInput(f"unknown Piper voice {voice!r}; `tantra speak --list-voices` lists them")
    root = model_store.ensure(stored, loader.settings)
    model_store.verify_file(stored, root, "voice.onnx")
    return PiperBackend(
        root / "voice.onnx", stored.name.removeprefix("piper-"), loader.placement.onnx_providers(),
        loader.placement.threads,
    )  # fmt: skip


def coqui_voice(loader, voice: str | None) -> str | None:
    """The voice Coqui speaks when ``voice`` names none: its tacotron2-DDC where that was downloaded; otherwise (it
    comes from Coqui's servers, out of reach offline) the pulled Piper voice through Coqui's own VITS code, said in
    one note per loader. Where Coqui cannot run at all, nothing is pulled: loading it says why."""
    from core.voice.speaker import coqui_model_is_local, coqui_status

    default = loader.config.voice.voices["coqui"]
    if voice is not None or "voice:coqui" in loader.backends or coqui_model_is_local(default):
        return voice
    if coqui_status(loader.settings.models_dir) != "ready":
        return voice

    def piper_voice() -> str:
        piper = find_store_model(loader.config.voice.voices["piper"])
        path = loader.pulled(piper, "voice", ("coqui",)) / "voice.onnx"  # Coqui reads it: pulled even beside a fake
        loader.warn(f"Coqui's {default.rpartition('/')[2]} is not on disk (it downloads from Coqui's servers): "
                    f"Coqui speaks the Piper voice {piper.name} instead")  # fmt: skip
        return str(path)

    return loader.once(("coqui-voice",), piper_voice)
