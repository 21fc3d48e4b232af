"""Fake backends for every role: deterministic, a few milliseconds, no weights.

Each has the interface of the real backends of its role, so it can stand in any chain entry:
``ModelLoader(MODEL_CONFIG, settings, backends={"voice:piper": FakeVoice, "hearing:faster-whisper": broken(...)})``.
As simonw/llm tests its CLI with a mock model, these test the shape around the models: chain order, fall-through,
``--low-resource``, ``--device``, and the loops that join the roles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace

import numpy as np

from config.errors import ModelUnavailable
from core.hearing.transcriber import Segment, TranscribeOptions
from core.language.chat_model import LocalChatModel
from core.vision.image_classifier import Label, Seen


def broken(error: BaseException) -> Callable[[], object]:
    """A factory whose backend cannot load: it raises ``error``."""

    def factory():
        raise error

    return factory


def named(backend_class, name: str) -> Callable[[], object]:
    """A factory for ``backend_class`` standing in the chain entry ``name`` (it says its name, so a test sees which
    entry answered)."""
    return lambda: backend_class(name)


# ---- speech to text -------------------------------------------------------------------------------------------------


class FakeWhisper:
    """Hears "N.N seconds of sound" in every block that is not silent; ``heard`` says something else."""

    multilingual = False
    languages = ("en",)

    def __init__(self, name: str = "fake-whisper", heard: Callable[[np.ndarray], str] | None = None) -> None:
        self.name = name
        self.model_name = "fake"
        self.device = "cpu"
        self.heard = heard or (lambda audio: f"{len(audio) / 16000:.1f} seconds of sound")

    def transcribe_block(self, audio: np.ndarray, options: TranscribeOptions) -> tuple[str, Iterator[Segment]]:
        return "en", iter([Segment(0, 0.0, len(audio) / 16000, " " + self.heard(audio))])


# ---- the voice ------------------------------------------------------------------------------------------------------


class FakeVoice:
    """A 440 Hz tone, 10 ms per character of the sentence at rate 1."""

    sample_rate = 16000

    def __init__(self, name: str = "fake-voice") -> None:
        self.name = name
        self.voice = "tone"

    def synthesize(self, sentence: str, rate: float) -> Iterator[np.ndarray]:
        samples = int(len(sentence) * 0.01 / rate * self.sample_rate)
        yield (0.1 * np.sin(2 * np.pi * 440 * np.arange(samples) / self.sample_rate)).astype(np.float32)


# ---- vision ---------------------------------------------------------------------------------------------------------


class FakeClassifier:
    """Sees an image's strongest colour channel: "red", "green" or "blue"."""

    name = "fake-classifier"

    def __init__(self, engine: str = "fake") -> None:
        self.engine = engine

    def look(self, image, top: int = 5) -> Seen:
        means = np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(axis=0)
        shares = means / max(float(means.sum()), 1e-6)
        labels = sorted((Label(c, round(float(s), 4)) for c, s in zip(("red", "green", "blue"), shares)),
                        key=lambda label: -label.score)  # fmt: skip
        return Seen(labels[:top], np.resize(means, 1280).astype(np.float32))


class FakeRemoteVision:
    """A vision-language server that answers with the image's size."""

    name = "long-vita-remote"

    def ask(self, image, question: str) -> str:
        return f"A {image.width}x{image.height} image."


# ---- the language model ---------------------------------------------------------------------------------------------

END = 256  # byte-level vocabulary: 256 bytes, then end-of-turn


class FakeTokenizer:
    """Bytes as tokens, and a plain chat template."""

    eos_token_id = END
    stop_token_ids = {END}
    stop_strings: tuple[str, ...] = ()

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i < END).decode("utf-8", errors="replace")

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        turns = "".join(f"<{m['role']}>{m['content']}\n" for m in messages)
        return turns + ("<assistant>" if add_generation_prompt else "")


PROMPTS_READ: list[str] = []
"""Every prompt a fake language model read, in order: what a test checks the layout of (``core.language.grounding``)."""
READ_AHEAD: list[str] = []
"""Every prompt start a fake language model read ahead of its prompt (``LocalChatModel.read_ahead``), in order."""


class FakeChatModel(LocalChatModel):
    """A local chat model whose network is a script: it answers "You said: MESSAGE." (or ``reply(message)``), one
    byte per token, whatever the sampling options. Everything around the network is the real one: the prompt and
    its fitting into the context, stop strings, counts. No torch."""

    def __init__(self, name: str, reply: Callable[[str], str], spiking: bool, context: int = 4096) -> None:
        super().__init__(SimpleNamespace(config=SimpleNamespace(block_size=context, spiking=spiking)),
                         FakeTokenizer(), name)  # fmt: skip
        self.reply = reply

    def _tokens(self, ids: list[int], options, cache) -> Iterator[int]:
        prompt = self.tokenizer.decode(ids)
        PROMPTS_READ.append(prompt)
        message = prompt.rsplit("<user>", 1)[-1].split("\n<assistant>", 1)[0].strip()
        for token in self.reply(message).encode("utf-8")[: options.max_tokens]:
            yield token

    def _read(self, ids: list[int], cache) -> None:
        READ_AHEAD.append(self.tokenizer.decode(ids))

    def describe(self) -> str:
        return f"{self.name}: a scripted fake"

    def stats(self, counts) -> list[str]:
        return []


def fake_language_model(name: str = "fake-lm", reply: Callable[[str], str] | None = None, spiking: bool = True):
    """``load_spikingbrain()``'s dict for a ``FakeChatModel``."""
    chat = FakeChatModel(name, reply or (lambda message: f"You said: {message}."), spiking)
    return {"model": chat.network, "tokenizer": chat.tokenizer, "name": name, "device": "cpu", "chat": chat}


def failing(message: str = "it does not run here") -> Callable[[], object]:
    """A factory for a backend whose weights cannot be had."""
    return broken(ModelUnavailable(message))


# ---- memory ---------------------------------------------------------------------------------------------------------


class FakeEmbedder:
    """Bag of words hashed into 4,096 dimensions (few collisions), normalised: texts that share words are alike,
    as with a real sentence embedder, and the cosine says how many they share."""

    dim = 4096

    def __init__(self, name: str = "fake-embedder") -> None:
        self.name = name
        self.calls = 0

    def embed(self, texts) -> np.ndarray:
        import re
        import zlib

        self.calls += 1
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-9)

    def count_tokens(self, texts) -> int:
        import re

        return sum(len(re.findall(r"\w+", text)) for text in texts)
