"""``ImageEmbedding``: an image as a fixed-size vector, for memory and retrieval (see the class docstring)."""

from __future__ import annotations

import torch
from torch import nn

from core.runtime.projection import orthonormal_projection
from core.vision.image_io import load_image

FEATURES = 1280  # EfficientNet-Lite0's pooled features


class ImageEmbedding(nn.Module):
    """``ImageEmbedding(classifier, embed_dim)(image)`` -> a unit-length ``embed_dim`` tensor; ``classifier`` is an
    ``core.vision.image_classifier.Classifier``. ``encoders.vision.VisionEncoder`` loads one for it.

    What the vector is: EfficientNet-Lite0's 1280-d pooled features of the image, scaled to unit length, then
    multiplied by a fixed random matrix (seeded, so every process builds the same one). Narrowing 1280 -> 768 cannot
    keep every inner product exactly, but a random projection keeps them closely (Johnson-Lindenstrauss), so cosine
    similarity between two images survives. Nothing is trained.

    What it is for: memory and retrieval, finding images of the same kind of thing. It is not in the same space as
    text or audio embeddings: the language model learns what an image shows through text (labels and OCR).
    """

    def __init__(self, classifier, embed_dim: int) -> None:
        super().__init__()
        self.classifier = classifier
        self.register_buffer("projection", orthonormal_projection(FEATURES, embed_dim, seed=1280))
        self.projection *= (FEATURES / embed_dim) ** 0.5  # columns of unit expected length: lengths stay near 1

    def forward(self, image) -> torch.Tensor:
        if not hasattr(image, "mode"):  # a path or bytes, not a Pillow image
            image, _ = load_image(image)
        features = torch.from_numpy(self.classifier.look(image, top=1).features)
        vector = torch.nn.functional.normalize(features, dim=-1) @ self.projection
        return torch.nn.functional.normalize(vector, dim=-1)
