"""How the loader builds the vision role: EfficientNet-Lite0 on onnxruntime or torch, from one pull.
``ModelLoader.load_vision`` walks what this gives."""

from __future__ import annotations

from functools import partial

from config.model_config import find_store_model
from core.runtime import model_store
from core.runtime.fallback import Candidate


def vision_candidates(loader, order: tuple[str, ...]) -> list[Candidate]:
    from core.vision.image_classifier import ONNX_GRAPH, TORCH_WEIGHTS, OnnxClassifier, TorchClassifier

    stored = find_store_model(loader.config.vision.default)
    size, root = loader.image_size, loader.pulled(stored, "vision", order)
    names = root / "class_names.json"

    def onnx():
        graph = model_store.verify_file(stored, root, ONNX_GRAPH)
        return OnnxClassifier(graph, names, size, loader.placement.onnx_providers(), loader.placement.threads)

    def torch():
        weights = model_store.verify_file(stored, root, TORCH_WEIGHTS)
        loader.placement.torch_ready()
        return TorchClassifier(weights, names, size, loader.placement.device("torch"))

    def attempt(engine: str):
        classifier = {"onnxruntime": onnx, "torch": torch}[engine]()
        loader.note(f"vision: {stored.name} on {engine}, {size} px")
        return classifier

    return [loader.candidate("vision", engine, engine, partial(attempt, engine)) for engine in order]
