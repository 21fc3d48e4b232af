"""The spec's ``AudioEncoder``: ``AudioEncoder(embed_dim=768)(audio)`` -> a unit-length vector of a sound clip.

The embedding itself is ``core/hearing/audio_embedding.py``; this entry point loads the openai-whisper model it reads
through the model loader (a fresh one, or the ``loader`` passed in to share its models).
"""

from __future__ import annotations

from config.model_config import MODEL_CONFIG
from core.hearing.audio_embedding import AudioEmbedding
from core.model_loader import ModelLoader
from core.runtime.projection import orthonormal_projection

__all__ = ["AudioEncoder", "orthonormal_projection"]


class AudioEncoder(AudioEmbedding):
    """``AudioEncoder(embed_dim=768)(audio)`` -> a unit-length ``embed_dim`` tensor of a clip (a path, or 16 kHz
    mono float32 samples; a (batch, samples) tensor gives (batch, embed_dim)). See ``core.hearing.audio_embedding``."""

    def __init__(self, embed_dim: int = MODEL_CONFIG.hearing.embed_dim, model: str | None = None,
                 loader: ModelLoader | None = None, seed: int = 0) -> None:  # fmt: skip
        """``model``: a Whisper name or path (default: the audio role's); ``seed`` picks the projection."""
        whisper = (loader or ModelLoader(MODEL_CONFIG)).load_whisper(model, engine="openai-whisper").model
        super().__init__(whisper, embed_dim, seed)
