"""The spec's ``VisionEncoder``: ``VisionEncoder(embed_dim=768)(image)`` -> a unit-length vector of an image.

The embedding itself is ``core/vision/vision_embedding.py``; this entry point loads the classifier it reads through
the model loader (a fresh one, or the ``loader`` passed in to share its models). ``ModelLoader.get_vision_encoder()``
gives the same embedding from a loader. The classifier is ``core/vision/image_classifier.py``; describing images is
``core/vision/describer.py``.
"""

from __future__ import annotations

from config.model_config import MODEL_CONFIG
from core.model_loader import ModelLoader
from core.vision.vision_embedding import ImageEmbedding

__all__ = ["VisionEncoder"]


class VisionEncoder(ImageEmbedding):
    """``VisionEncoder(embed_dim=768)(image)`` -> a unit-length ``embed_dim`` tensor of an image (a path, bytes or
    a Pillow image). See ``core.vision.vision_embedding``."""

    def __init__(self, embed_dim: int = MODEL_CONFIG.vision.embed_dim, loader: ModelLoader | None = None) -> None:
        super().__init__((loader or ModelLoader(MODEL_CONFIG)).load_vision(), embed_dim)
