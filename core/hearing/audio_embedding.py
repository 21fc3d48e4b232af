"""A fixed-size embedding of a sound clip from Whisper's audio encoder.

What the vector is: Whisper's encoder states (``n_audio_state`` wide: 384 for tiny.en, 512 for base) averaged over
the frames that hold the clip (the padding Whisper adds up to 30 s is left out), scaled to unit length, then
multiplied by a fixed random matrix with orthonormal rows (seeded, so every process builds the same one). A matrix
with orthonormal rows keeps lengths and inner products exactly, so cosine similarity between two clips is the same
before and after the projection; it only changes the width to ``embed_dim`` (768 by default, the width the rest of
Tantra's memory uses). Nothing is trained.

What it is good for: comparing and retrieving clips. The same sentence, the same speaker or the same kind of
sound lands closer than unrelated audio, so the vector can index a conversation's audio in memory. It is not in the
same space as text or image embeddings, and it is not a transcript: the language model hears speech as Whisper's
text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.hearing.audio_io import SAMPLE_RATE, load_audio, probe
from core.runtime.projection import orthonormal_projection

WINDOW_SAMPLES = 30 * SAMPLE_RATE  # Whisper's encoder always sees 30 s
FRAMES_PER_SECOND = 50  # encoder output rate: 100 mel frames/s, halved by the stride-2 convolution


class AudioEmbedding(nn.Module):
    """``AudioEmbedding(whisper, embed_dim)(audio)`` -> a unit-length ``embed_dim`` tensor (see the module
    docstring); ``whisper`` is an openai-whisper model. ``encoders.audio.AudioEncoder`` loads one for it.

    ``audio`` is a path, or 16 kHz mono float32 samples (numpy or torch), or a (batch, samples) tensor, which gives
    (batch, embed_dim).
    """

    def __init__(self, whisper, embed_dim: int, seed: int = 0) -> None:
        super().__init__()
        self.whisper = whisper
        self.embed_dim = embed_dim
        width = self.whisper.dims.n_audio_state
        self.register_buffer("projection", orthonormal_projection(width, embed_dim, seed))

    @torch.no_grad()
    def _pooled(self, samples: torch.Tensor) -> torch.Tensor:
        """Mean encoder state over the clip's frames, 30-s window by window (weighted by frames used)."""
        import whisper

        total = torch.zeros(self.whisper.dims.n_audio_state)
        frames_used = 0
        for start in range(0, max(len(samples), 1), WINDOW_SAMPLES):
            window = samples[start : start + WINDOW_SAMPLES]
            mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(window, WINDOW_SAMPLES), self.whisper.dims.n_mels)
            states = self.whisper.embed_audio(mel.unsqueeze(0).to(self.whisper.device))[0]  # (1500, n_audio_state)
            frames = max(1, min(len(states), int(np.ceil(len(window) / SAMPLE_RATE * FRAMES_PER_SECOND))))
            total += states[:frames].float().sum(dim=0).cpu()
            frames_used += frames
        return total / frames_used

    def forward(self, audio: str | Path | np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(audio, (str, Path)):
            audio = load_audio(probe(Path(audio)))
        samples = torch.as_tensor(np.asarray(audio, dtype=np.float32) if isinstance(audio, np.ndarray) else audio)
        samples = samples.float()
        if samples.dim() == 2:
            return torch.stack([self.forward(row) for row in samples])
        pooled = self._pooled(samples)
        pooled = pooled / pooled.norm().clamp_min(1e-12)
        return pooled @ self.projection  # (embed_dim,)
