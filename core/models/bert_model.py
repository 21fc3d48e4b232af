"""BERT's encoder, as sentence-transformers' MiniLM runs it (nanoGPT style): token ids in, one vector per token out.

Only the pull uses it: ``core/memory/embedder_convert.py`` loads the checkpoint's safetensors into it and exports it to
the ONNX graph that ``core/memory/text_embedding.py`` runs, so nothing imports torch when text is embedded. The
parameter names are the checkpoint's own (``encoder.layer.0.attention.self.query.weight`` ...), so ``load_state_dict``
reads it as it is. Single sentences only: the token type is always 0, and the pooler (unused by sentence embeddings) is
left out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522  # BERT's uncased WordPiece
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_json(cls, path: Path) -> BertConfig:
        """The fields of a Hugging Face ``config.json`` this encoder uses; one it cannot run is an error."""
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("hidden_act", "gelu") != "gelu" or raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only BERT with GELU and absolute positions is supported")
        return cls(**{name: raw[name] for name in cls.__dataclass_fields__ if name in raw})


class Embeddings(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (T,)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions) + self.token_type_embeddings.weight[0]
        return self.LayerNorm(x)  # (B, T, C)


class SelfAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.n_head = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (proj(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for proj in
                   (self.query, self.key, self.value))  # (B, nh, T, hs)  # fmt: skip
        scores = q @ k.transpose(-2, -1) / math.sqrt(C // self.n_head) + mask_bias  # (B, nh, T, T)
        y = torch.softmax(scores, dim=-1) @ v  # (B, nh, T, hs)
        return y.transpose(1, 2).reshape(B, T, C)


class DenseNorm(nn.Module):
    """A projection back to the hidden width, added to the residual, then LayerNorm (BERT is post-norm)."""

    def __init__(self, config: BertConfig, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = SelfAttention(config)
        self.output = DenseNorm(config, config.hidden_size)


class Intermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)


class Layer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Intermediate(config)
        self.output = DenseNorm(config, config.intermediate_size)

    def forward(self, x: torch.Tensor, mask_bias: torch.Tensor) -> torch.Tensor:
        x = self.attention.output(self.attention.self(x, mask_bias), x)
        return self.output(F.gelu(self.intermediate.dense(x)), x)  # exact (erf) GELU, as BERT's "gelu"


class Encoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))


class BertEncoder(nn.Module):
    """``(input_ids, attention_mask)`` (B, T) int64 -> token vectors (B, T, C) float32, the last layer's output."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)

    @classmethod
    def from_checkpoint(cls, directory: Path) -> BertEncoder:
        """The encoder of a Hugging Face BERT checkpoint (``config.json`` + ``model.safetensors``), eval mode."""
        from safetensors.torch import load_file

        model = cls(BertConfig.from_json(directory / "config.json"))
        state = load_file(directory / "model.safetensors")
        ignored = ("pooler.", "embeddings.position_ids")  # the pooler is not used; position_ids is a constant
        state = {name: tensor for name, tensor in state.items() if not name.startswith(ignored)}
        model.load_state_dict(state, strict=True)
        return model.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # Padding gets the most negative float added to its attention scores: softmax gives it weight 0.
        mask_bias = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min  # (B, 1, 1, T)
        x = self.embeddings(input_ids)
        for layer in self.encoder.layer:
            x = layer(x, mask_bias)
        return x  # (B, T, C)
