"""Sentence embeddings: texts in, one unit-length vector per text out, as sentence-transformers' all-MiniLM-L6-v2
gives them (the episodic memory finds past turns by them).

The BERT encoder runs on onnxruntime (the graph is exported at pull time, ``core/memory/embedder_convert.py``) and the
tokenizer on ``tokenizers``: neither torch nor transformers is imported, and one turn takes a few milliseconds on a
CPU. What sentence-transformers adds after the encoder is done here: the mean of the token vectors over the attention
mask, then L2 normalisation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from config.errors import ModelUnavailable
from core.runtime.onnx_session import open_session

ONNX_GRAPH = "model.onnx"  # (input_ids, attention_mask) -> token_embeddings, exported at pull time
TOKENIZER = "tokenizer.json"
SETTINGS = "sentence_bert_config.json"  # sentence-transformers' own: max_seq_length
BATCH_SIZE = 32  # as sentence-transformers' encode(); texts are sorted by length first, so little is padding


@dataclass
class TextEmbedder:
    """A sentence-embedding model; ``TextEmbedder.load(path)`` opens a directory the store pulled."""

    name: str
    session: object
    """The ``onnxruntime.InferenceSession`` of the encoder."""
    tokenizer: object
    """A ``tokenizers.Tokenizer`` that truncates to ``max_tokens`` and does not pad (each batch is padded here)."""
    dim: int
    """Width of the vectors (384 for MiniLM-L6)."""
    max_tokens: int
    """Word pieces read of a text, [CLS] and [SEP] included; the rest of a longer text is ignored, as
    sentence-transformers ignores it."""

    @staticmethod
    def load(path: Path, providers: list[str] | None = None, threads: int = 0,
             name: str | None = None) -> TextEmbedder:  # fmt: skip
        """The model in ``path`` (``model.onnx``, ``tokenizer.json``, ``sentence_bert_config.json``) on onnxruntime's
        ``providers`` with ``threads`` (as ``core.runtime.placement`` gives them; 0: onnxruntime's own choice)."""
        from tokenizers import Tokenizer

        path = Path(path)
        try:
            tokenizer = Tokenizer.from_file(str(path / TOKENIZER))
            max_tokens = int(json.loads((path / SETTINGS).read_text(encoding="utf-8"))["max_seq_length"])
        except Exception as error:  # OSError, bad JSON, a missing key; tokenizers raises a bare Exception
            raise ModelUnavailable(f"{path} is not a usable sentence-embedding model ({error})") from None
        # The checkpoint's tokenizer.json pads every text to 128 pieces and cuts it there; sentence-transformers
        # overrides both (its max_seq_length, and padding to the longest in a batch), and so does this.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_tokens)
        session = open_session(path / ONNX_GRAPH, threads, providers or ["CPUExecutionProvider"], "text encoder")
        dim = session.get_outputs()[0].shape[-1]
        return TextEmbedder(name or path.name, session, tokenizer, dim, max_tokens)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row of length 1; an empty text is embedded too ([CLS] [SEP] alone)."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts; wrap a single text in a list")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        pieces = [encoding.ids for encoding in self.tokenizer.encode_batch(list(texts))]
        order = np.argsort([len(ids) for ids in pieces], kind="stable")
        for start in range(0, len(order), BATCH_SIZE):
            chosen = order[start : start + BATCH_SIZE]
            out[chosen] = self._embed_batch([pieces[i] for i in chosen])
        return out

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Word pieces the model reads of ``texts`` (what an embeddings API bills as prompt tokens)."""
        return sum(len(encoding.ids) for encoding in self.tokenizer.encode_batch(list(texts)))

    def _embed_batch(self, pieces: list[list[int]]) -> np.ndarray:
        width = max(len(ids) for ids in pieces)
        input_ids = np.zeros((len(pieces), width), dtype=np.int64)  # (B, T); 0 is [PAD]
        for row, ids in enumerate(pieces):
            input_ids[row, : len(ids)] = ids
        mask = (np.arange(width)[None, :] < np.array([len(ids) for ids in pieces])[:, None]).astype(np.int64)
        tokens = self.session.run(["token_embeddings"], {"input_ids": input_ids, "attention_mask": mask})[0]
        # Mean over the real tokens, then unit length: sentence-transformers' Pooling (mean) and Normalize.
        summed = (tokens * mask[:, :, None]).sum(axis=1)  # (B, C)
        means = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
