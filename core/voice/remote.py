"""The voice on an OpenAI-compatible server (``/v1/audio/speech``: OpenAI, Kokoro-FastAPI, openedai-speech, another
``tantra serve``), as a ``core.voice.speaker.SpeechBackend``.

Each sentence goes as one request and comes back as a WAV. The backend's sample rate is the server's own, found by
one short word synthesized when it loads (that word also proves the server, the key, the model and the voice before
the chain settles on it), so its audio is never resampled in the usual case. A server that fails later gives way, in
one line, to the local voice, resampled to the same rate: a player opened at that rate plays on.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from config.errors import ModelUnavailable, TantraError
from core.runtime.fallback import GiveWay
from core.runtime.openai_http import Endpoint
from core.runtime.status import say

if TYPE_CHECKING:
    from core.voice.speaker import SpeechBackend

PROBE = "Ready."  # a word every voice says; the voice loop says it too, to warm up


def decode_wav(raw: bytes, label: str = "server") -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate from WAV bytes (a streamed WAV's unknown sizes included)."""
    import soundfile

    try:
        samples, rate = soundfile.read(io.BytesIO(raw), dtype="float32", always_2d=True)
    except (RuntimeError, ValueError, TypeError) as error:  # soundfile.LibsndfileError is a RuntimeError
        raise TantraError(f"the {label} answered something that is not a WAV file ({error})") from None
    return samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0], int(rate)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target or not samples.size:
        return samples
    import soxr

    return soxr.resample(samples, rate, target).astype(np.float32, copy=False)


class RemoteSpeechBackend:
    """``synthesize`` on a server; ``local`` (a factory of the local backend) speaks once the server fails."""

    def __init__(self, endpoint: Endpoint, model: str, voice: str, sample_rate: int,
                 local: Callable[[], SpeechBackend] | None = None,
                 warn: Callable[[str], None] = say) -> None:  # fmt: skip
        self.endpoint, self.model, self.server_voice = endpoint, model, voice
        self.sample_rate = sample_rate
        """Fixed for the backend's life (players and files are opened at it): the server's rate at load."""
        self.fallback = GiveWay(local, warn, "the local voice speaks from here on")

    @classmethod
    def connect(cls, base_url: str, model: str, voice: str, api_key: str = "", timeout: float = 60.0,
                local: Callable[[], SpeechBackend] | None = None, warn: Callable[[str], None] = say,
                ) -> RemoteSpeechBackend:  # fmt: skip
        """The server after it has said one short word (its rate is the backend's); raises so the local chain
        loads instead."""
        backend = cls(Endpoint(base_url, api_key, timeout, "speech server"), model, voice, 0, local, warn)
        samples, backend.sample_rate = backend.speak(PROBE, 1.0)
        if not samples.size:
            raise ModelUnavailable(f"the {backend.label} answered no audio for {PROBE!r}")
        return backend

    @property
    def name(self) -> str:
        return self.fallback.engine.name if self.fallback.engine is not None else "remote"

    @property
    def voice(self) -> str:
        return self.fallback.engine.voice if self.fallback.engine is not None else self.server_voice

    @property
    def label(self) -> str:
        return self.endpoint.label

    def __repr__(self) -> str:
        return f"RemoteSpeechBackend({self.model!r}, {self.server_voice!r} at {self.label!r})"  # never the key

    def speak(self, sentence: str, rate: float) -> tuple[np.ndarray, int]:
        """The server's audio for ``sentence`` at its own rate."""
        body = {"model": self.model, "input": sentence, "voice": self.server_voice, "response_format": "wav",
                "speed": rate}  # fmt: skip
        with self.endpoint.open("POST", "/audio/speech", json.dumps(body).encode(), "application/json") as response:
            raw = self.endpoint.read(response)
        return decode_wav(raw, self.label)

    def synthesize(self, sentence: str, rate: float) -> Iterator[np.ndarray]:
        local = self.fallback.engine
        if local is None:
            try:
                samples, server_rate = self.speak(sentence, rate)
            except TantraError as failure:  # a refusal of this sentence or setting is raised as it is
                local = self.fallback.after(failure)
            else:
                yield resample(samples, server_rate, self.sample_rate)
                return
        for samples in local.synthesize(sentence, rate):
            yield resample(np.asarray(samples, dtype=np.float32), local.sample_rate, self.sample_rate)


def from_settings(settings, local: Callable[[], SpeechBackend] | None = None,
                  warn: Callable[[str], None] = say) -> RemoteSpeechBackend:  # fmt: skip
    """The configured server (``TANTRA_VOICE_URL`` ...), probed."""
    if not settings.voice_url:
        raise ModelUnavailable("no speech server configured (TANTRA_VOICE_URL)")
    return RemoteSpeechBackend.connect(settings.voice_url, settings.voice_model, settings.voice_name,
                                       settings.voice_api_key, float(settings.voice_timeout), local, warn)  # fmt: skip
