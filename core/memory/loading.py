"""How the loader builds the memory's embedder: all-MiniLM-L6-v2 on onnxruntime, pulled first if need be, or the
same model on a ``tantra serve``. ``ModelLoader.load_embedder`` walks what this gives."""

from __future__ import annotations

from functools import partial

from config.model_config import find_store_model
from core.runtime import model_store
from core.runtime.fallback import Candidate


def embedder_candidates(loader, order: tuple[str, ...]) -> list[Candidate]:
    from core.memory.text_embedding import ONNX_GRAPH, TextEmbedder

    stored = find_store_model(loader.config.memory.default)
    root = loader.pulled(stored, "memory", order)

    def attempt(engine: str):
        model_store.verify_file(stored, root, ONNX_GRAPH)
        embedder = TextEmbedder.load(root, loader.placement.onnx_providers(), loader.placement.threads, stored.name)
        loader.note(f"memory: {stored.name} on {engine}")
        return embedder

    return [loader.candidate("memory", engine, engine, partial(attempt, engine)) for engine in order]


def remote_embedder(loader):
    from core.memory.remote import ServerEmbedder
    from core.runtime.openai_http import tantra_server

    embedder = ServerEmbedder(tantra_server(loader.settings, timeout=60))
    loader.note(f"memory: {embedder.name} on the {embedder.api.label}")
    return embedder
