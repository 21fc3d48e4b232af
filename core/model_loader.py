"""The spec's model loader: each role's model through its ordered fallback chain, every model loaded once per
loader, and one loader shared by threads.

Every role is loaded the same way: the chain of ``config.model_config`` in the order the settings ask for
(``--low-resource``, a GPU named by ``--device``), a server first where the role's URL is set, each entry made into a
``Candidate``, and ``core.runtime.fallback`` walks them. This module is that shared machinery; each role builds its
own candidates in its ``loading.py`` (``core.hearing.loading``, ``core.language.loading``, ...). ``--low-resource`` is
read only through the loader (``low_resource``, ``order``); ``core.runtime.placement`` decides devices and threads.
The roles' engines never import this module; only the spec's entry points (``encoders/audio.py``,
``encoders/vision.py``, ``utils/model_loader.py``) do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config.errors import TantraError
from config.model_config import MODEL_CONFIG, REMOTE, Chain, ModelConfig, StoreModel
from config.settings import Settings, load_settings
from core.hearing import loading as hearing_loading
from core.hearing.transcriber import WhisperEngine
from core.language import loading as language_loading
from core.memory import loading as memory_loading
from core.runtime import model_store
from core.runtime.fallback import Candidate, Factory, first_that_works
from core.runtime.placement import Placement
from core.runtime.status import say
from core.vision import loading as vision_loading
from core.voice import loading as speech_loading

if TYPE_CHECKING:
    from core.memory.text_embedding import TextEmbedder



class ModelLoader:
    """``ModelLoader(MODEL_CONFIG).load_whisper()``, as the spec uses it; one instance caches what it loaded.

    ``backends`` replaces chain entries with other factories, keyed ``"role:entry"`` (``"voice:piper"``,
    ``"hearing:faster-whisper"``, ``"language:gpt2"``, ``"vision:onnxruntime"``, ``"vision:long-vita-remote"``,
    ``"memory:onnxruntime"``; ``"language:remote"``, ``"hearing:remote"``, ``"voice:remote"`` for a configured
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
        audio = self.config.hearing
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

    def note(self, message: str) -> None:
        if self.settings.verbose:
            self.warn(message)

    def once(self, key: tuple, load: Callable[[], Any]) -> Any:
        """``load()``'s result, made once per key even when threads ask at the same moment (each key has its own
        lock, so two roles still load side by side)."""
        with self._locks_lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._loaded:
                self._loaded[key] = load()
            return self._loaded[key]

    def candidate(self, role: str, entry: str, label: str, attempt: Factory, unavailable: str | None = None,
                  weights: str | None = None) -> Candidate:  # fmt: skip
        override = self.backends.get(f"{role}:{entry}")
        if override is not None:
            return Candidate(label, override)
        return Candidate(label, attempt, unavailable, weights)

    def order(self, chain: Chain, library: str) -> tuple[str, ...]:
        """The chain in the order the settings ask for: ``--low-resource``, or a GPU named and there (asked of
        ``library`` only when the chain has a GPU order, since asking torch costs an import)."""
        gpu = bool(chain.gpu) and self.placement.gpu_asked_and_there(library)
        return chain.order(self.low_resource, gpu)

    def walk(self, candidates: list[Candidate], what: str):
        return first_that_works(candidates, what, self.warn, self.note)

    def pulled(self, stored: StoreModel, role: str, order: tuple[str, ...]) -> Path:
        """``stored``'s directory, pulled first if need be: once for every engine of a walk, since they all read
        files of the same pull (an engine that fails must not pull again). Not pulled when every engine is replaced
        (tests' fakes read nothing)."""
        if all(f"{role}:{entry}" in self.backends for entry in order):
            return model_store.model_dir(stored, self.settings)
        return model_store.ensure(stored, self.settings)

    # ---- language model -------------------------------------------------------------------------------------------

    def load_spikingbrain(self, spiking: bool = True, model: str | None = None, remote: bool = True) -> dict:
        """``{"model": SpikingBrainForCausalLM, "tokenizer": ..., "name": ..., "device": ..., "chat": ...}``, as the
        spec uses it; ``chat`` is the same model as a ``core.language.chat_model.ChatModel``, what a chat talks to.

        By default the first entry of the fallback chain that loads and runs: SpikingBrain converted from
        SmolLM2-135M, spiking; the same weights without spiking; GPT-2 and DistilGPT-2 where they were pulled.
        ``spiking=False`` asks for the plain network; ``model`` names one model (or a converted directory).

        Where a server is configured (``TANTRA_LANGUAGE_URL``) and neither of those asks for a local model, the server
        comes first: ``{"model": RemoteChatModel, "tokenizer": None, "name": <its model>, "device": "remote",
        "chat": <the same RemoteChatModel>}``
        (see ``core.language.remote``). ``remote=False`` leaves it out: the local model a failing server gives
        way to.
        """
        candidates = partial(language_loading.language_candidates, self, spiking, model)
        local = partial(self.once, ("language", spiking, model), lambda: self.walk(candidates(), "language model"))
        if not (remote and self.settings.language_url and spiking and model is None):
            return local()

        return self._server_first(("language", REMOTE), "language",
                                  partial(language_loading.remote_language_model, self), local,
                                  lambda: first_label(language_loading.language_candidates(self, spiking, None),
                                                      "the local language model"), "language model")  # fmt: skip

    # ---- servers (OpenAI-compatible) ------------------------------------------------------------------------------
    # A server is not an entry of ``config.model_config``'s chains: it is the user's setting (a URL), not a model
    # choice, and it goes first in every order (``--low-resource`` and a GPU included), since it costs this machine
    # nothing. The loader puts a "remote" candidate before a role's chain when the role's URL is set and the command
    # pinned no local model; ``backends["role:remote"]`` replaces it, as any entry, for tests' fakes.

    def _server_first(self, key: tuple, role: str, server: Factory, local: Factory, local_label: Callable[[], str],
                      what: str):  # fmt: skip
        """The role's server, then the local chain walked as one entry (``local``, cached under its own key): a
        server that fails later in the session gives way to the very model loaded here, never to a second copy."""

        def walk():
            return self.walk([self.candidate(role, REMOTE, REMOTE, server), Candidate(local_label(), local)], what)

        return self.once(key, walk)

    def use_decoding_kernel(self, model) -> None:
        """SpikingBrain's compiled decoding kernel on ``model`` (see ``core.language.loading.use_decoding_kernel``)."""
        language_loading.use_decoding_kernel(self, model)

    # ---- text to speech -------------------------------------------------------------------------------------------

    def load_speaker(self, backend: str | None = None, voice: str | None = None, remote: bool = True):
        """A speech backend (see ``core.voice.speaker``): ``backend`` and ``voice`` pin one, else the fallback chain
        (Coqui, Piper, espeak-ng; espeak-ng first with ``--low-resource``) gives the first that loads. Where a
        speech server is configured (``TANTRA_VOICE_URL``) and nothing pins a local voice, the server comes first
        (``core.voice.remote``); ``remote=False`` leaves it out."""
        section = self.config.voice
        if backend is not None and backend not in section.chain.entries:
            raise TantraError(f"unknown speech backend {backend!r}; choose {', '.join(section.chain.entries)}")
        pinned = backend is not None or voice is not None
        if backend is None and voice is not None:
            backend = speech_loading.backend_of_voice(self, voice)
        order = (backend,) if backend is not None else self.order(section.chain, "onnxruntime")
        local = partial(self.once, ("voice", order, voice), partial(speech_loading.walk_speech, self, order, voice))
        if not remote or pinned or not self.settings.voice_url:
            return local()

        return self._server_first(("voice", REMOTE), "voice", partial(speech_loading.remote_speech, self, local), local,
                                  lambda: first_label(speech_loading.speech_candidates(self, order, None),
                                                      "the local voice"), "speech backend")  # fmt: skip

    def load_coqui_tts(self, voice: str | None = None):
        """Coqui TTS, the spec's voice: ``tts_models/en/ljspeech/tacotron2-DDC`` unless ``voice`` names another.
        Where that voice was never downloaded (it comes from Coqui's servers, out of reach offline), Coqui's own
        VITS code speaks the pulled Piper voice instead, with one note."""
        return self.load_speaker("coqui", speech_loading.coqui_voice(self, voice))

    # ---- vision ---------------------------------------------------------------------------------------------------

    def load_vision(self, engine: str | None = None):
        """EfficientNet-Lite0 (see ``core.vision.image_classifier``) on ``engine``, else on the first engine that loads:
        onnxruntime, then torch; torch first when a GPU is named and there, since the pinned onnxruntime runs on the
        CPU only."""
        engines = self.config.vision.engines
        if engine is not None and engine not in engines.entries:
            raise TantraError(f"unknown engine {engine!r}; choose {' or '.join(engines.entries)}")
        order = (engine,) if engine else self.order(engines, "torch")
        candidates = partial(vision_loading.vision_candidates, self, order)
        return self.once(("vision", order), lambda: self.walk(candidates(), "vision engine"))

    def get_vision_encoder(self, embed_dim: int | None = None):
        """An image as a unit-length vector, as the spec's ``VisionEncoder`` gives it, on this loader's classifier
        (see ``core.vision.vision_embedding``)."""
        from core.vision.vision_embedding import ImageEmbedding

        return ImageEmbedding(self.load_vision(), embed_dim or self.config.vision.embed_dim)

    def load_remote_vision(self):
        """The configured Long-VITA server (``TANTRA_VISION_URL`` ...), or None when none is configured."""
        override = self.backends.get("vision:long-vita-remote")
        if override is not None:
            return override()
        from core.vision.remote import from_settings

        return from_settings(self.settings)

    # ---- memory ---------------------------------------------------------------------------------------------------

    def load_embedder(self, remote: bool = True) -> TextEmbedder:
        """The sentence-embedding model of the episodic memory (see ``core.memory.text_embedding``): all-MiniLM-L6-v2
        on onnxruntime, pulled first if need be. With ``--server`` the server's copy comes first
        (``core.memory.remote``); ``remote=False`` leaves it out."""
        order = self.config.memory.engines.entries
        candidates = partial(memory_loading.embedder_candidates, self, order)
        local = partial(self.once, ("memory", order), lambda: self.walk(candidates(), "text embedder"))
        if not remote or not self.settings.server:
            return local()
        return self._server_first(("memory", REMOTE), "memory", partial(memory_loading.remote_embedder, self), local,
                                  lambda: order[0], "text embedder")  # fmt: skip

    # ---- speech to text -------------------------------------------------------------------------------------------

    def load_whisper(self, model: str | None = None, engine: str | None = None, remote: bool = True) -> WhisperEngine:
        """A ready Whisper engine for ``model`` (default: the audio role's), along the engine fallback chain. Where
        a speech-to-text server is configured (``TANTRA_HEARING_URL``) and neither ``model`` nor ``engine`` asks for a
        local one, the server comes first (``core.hearing.remote``); ``remote=False`` leaves it out. A
        ``tantra serve`` (``--server``) knows the same model names as this process: ``model`` is asked of it."""
        asks_local = engine is not None or (model is not None and not self.settings.server)
        if not remote or asks_local or not self.settings.hearing_url:
            return hearing_loading.local_whisper(self, model, engine)
        local = partial(hearing_loading.local_whisper, self, model, None)
        server = partial(hearing_loading.remote_whisper, self, local, model)
        return self._server_first(("whisper", REMOTE, model), "hearing", server,
                                  local, lambda: self.order(self.config.hearing.engines, "ctranslate2")[0],
                                  "Whisper engine")  # fmt: skip


def first_label(candidates: list[Candidate], otherwise: str) -> str:
    """The label of the first candidate that may load (how a server's fallback is named in its one line)."""
    return next((c.label for c in candidates if c.unavailable is None), otherwise)
