"""The memory's sentence embedder run by a ``tantra serve`` (``/v1/embeddings``, with ``--server``): the same model
as here, so the memory's vectors are the same whichever process embeds them."""

from __future__ import annotations

from config.errors import ModelUnavailable
from core.runtime.openai_http import Endpoint


class ServerEmbedder:
    """``embed`` and ``dim`` as ``core.memory.text_embedding.TextEmbedder`` has them, on the server."""

    def __init__(self, api: Endpoint) -> None:
        self.api = api
        models = {m.get("role"): m["id"] for m in api.get_json("/models").get("data", []) if isinstance(m, dict)}
        if "memory" not in models:
            raise ModelUnavailable(f"the {api.label} has no embedding model")
        self.name = models["memory"]
        self.dim = len(self.embed(["dimension probe"])[0])

    def embed(self, texts):
        import numpy as np

        answer = self.api.post_json("/embeddings", {"model": self.name, "input": list(texts),
                                                    "encoding_format": "float"})  # fmt: skip
        rows = sorted(answer.get("data", []), key=lambda d: d["index"])
        return np.asarray([row["embedding"] for row in rows], dtype=np.float32).reshape(len(texts), -1)
