"""SpikingBrain: a spiking causal language model, converted from a pretrained transformer (nanoGPT style).

As the SpikingBrain report does it (arXiv 2509.05276, W8ASpike): every projection's input x is coded per token as
integer spike counts s = round(x / V_th) with an adaptive threshold V_th = mean(|x|) / k, so x ~ s * V_th, and the
weights are INT8, symmetric, one scale per group of 128 inputs. The rounding passes gradients straight through, so
the model stays trainable. ``model.set_spiking(False)`` gives the plain network: the reference for every quality
figure. Two families share the code: ``gpt2`` (LayerNorm, learned positions, GELU, biases) and ``llama`` (RMSNorm,
RoPE, SwiGLU, grouped-query attention, tied embeddings).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class SpikingBrainConfig:
    vocab_size: int = 50257  # GPT-2 BPE
    n_embd: int = 768
    n_layer: int = 6
    n_head: int = 12
    n_kv_head: int = 0
    """Key/value heads for grouped-query attention; 0 means n_head (plain multi-head attention)."""
    block_size: int = 1024
    """Context length in tokens."""
    family: str = "gpt2"
    """gpt2 or llama."""
    intermediate_size: int = 0
    """MLP width; 0 means 4 * n_embd."""
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    tie_embeddings: bool = True
    spiking: bool = True
    """Spike-code activations and use INT8 weights; False runs the plain network."""
    spike_k: float = 3.0
    """Threshold constant: V_th = mean(|x|) / k. Larger k: finer coding, more spikes."""
    weight_group: int = 128
    """Inputs that share one INT8 weight scale."""
    extra: dict = field(default_factory=dict)
    """Whatever else a checkpoint carries (token ids of the chat template, the source)."""

    def __post_init__(self) -> None:
        if self.family not in ("gpt2", "llama"):
            raise ValueError(f"unknown family {self.family!r}; use gpt2 or llama")
        self.n_kv_head = self.n_kv_head or self.n_head
        self.intermediate_size = self.intermediate_size or 4 * self.n_embd
        if self.n_embd % self.n_head or self.n_head % self.n_kv_head:
            raise ValueError("n_embd must divide into n_head heads, and n_head into n_kv_head groups")


# ---- spike coding ---------------------------------------------------------------------------------------------------


def spike_threshold(x: torch.Tensor, k: float) -> torch.Tensor:
    """Adaptive per-token threshold V_th = mean(|x|) / k, shape (..., 1)."""
    return (x.abs().mean(dim=-1, keepdim=True) / k).clamp_min(1e-8)


def spike_counts(x: torch.Tensor, k: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer spike counts (as floats) and the threshold: x ~ counts * v_th. Rounding passes gradients through."""
    v_th = spike_threshold(x, k)
    scaled = x / v_th
    counts = scaled + (torch.round(scaled) - scaled).detach()  # straight-through estimator
    return counts, v_th


def unroll_spikes(counts: torch.Tensor, coding: str) -> torch.Tensor:
    """Spike trains over time steps (first dimension) whose sum gives back ``counts``.

    binary: unsigned 0/1 spikes (the sign rides on the neuron pair: positive and negative inputs) over max|s| steps;
    ternary: -1/0/+1 spikes over max|s| steps; bitwise: the bits of |s| (weighted 2^t when summed), with sign.
    """
    counts = counts.round().to(torch.int64)
    magnitude, sign = counts.abs(), counts.sign()
    if coding == "bitwise":
        steps = max(1, int(magnitude.max().item()).bit_length())
        return torch.stack([((magnitude >> t) & 1) * sign for t in range(steps)])
    steps = max(1, int(magnitude.max().item()))
    trains = torch.stack([(magnitude > t).to(torch.int64) for t in range(steps)])
    return trains if coding == "binary" else trains * sign


def quantize_int8(weight: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric INT8 with one scale per (output row, group of ``group`` inputs); inputs padded to whole groups."""
    out_features, in_features = weight.shape
    padded = math.ceil(in_features / group) * group
    w = F.pad(weight, (0, padded - in_features)).reshape(out_features, padded // group, group)
    scale = (w.abs().amax(dim=-1, keepdim=True) / 127).clamp_min(1e-12)  # (out, groups, 1)
    q = torch.clamp(torch.round(w / scale), -127, 127).to(torch.int8)
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor, in_features: int) -> torch.Tensor:
    return (q.float() * scale).reshape(q.shape[0], -1)[:, :in_features]


class SpikingLinear(nn.Linear):
    """A linear layer that, when spiking, sees spike-coded inputs and INT8 group-quantized weights."""

    def __init__(self, in_features: int, out_features: int, bias: bool, config: SpikingBrainConfig) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.k = config.spike_k
        self.group = config.weight_group
        self.spiking = config.spiking
        self.record: list[torch.Tensor] | None = None  # set to a list to collect spike counts for statistics
        self._int8_cache: torch.Tensor | None = None

    def int8_weight(self) -> torch.Tensor:
        """The dequantized INT8 weight; cached for inference, rebuilt with a straight-through gradient in training."""
        if self.training or torch.is_grad_enabled():
            q, scale = quantize_int8(self.weight, self.group)
            dequantized = dequantize_int8(q, scale, self.in_features)
            return self.weight + (dequantized - self.weight).detach()
        if self._int8_cache is None:
            self._int8_cache = dequantize_int8(*quantize_int8(self.weight.detach(), self.group), self.in_features)
        return self._int8_cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.spiking:
            return F.linear(x, self.weight, self.bias)
        counts, v_th = spike_counts(x, self.k)
        if self.record is not None:
            self.record.append(counts.detach().reshape(-1, counts.shape[-1]))
        return F.linear(counts * v_th, self.int8_weight(), self.bias)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self._int8_cache = None  # new weights: quantize again
        super()._load_from_state_dict(*args, **kwargs)


# ---- the network ----------------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_cos_sin(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, head_dim/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, head_dim), the rotate-half layout of Hugging Face Llama
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, config: SpikingBrainConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head = config.n_head, config.n_kv_head
        self.head_dim = config.n_embd // config.n_head
        bias = config.family == "gpt2"
        kv_width = self.n_kv_head * self.head_dim
        self.q_proj = SpikingLinear(config.n_embd, config.n_embd, bias, config)
        self.k_proj = SpikingLinear(config.n_embd, kv_width, bias, config)
        self.v_proj = SpikingLinear(config.n_embd, kv_width, bias, config)
        self.o_proj = SpikingLinear(config.n_embd, config.n_embd, bias, config)
        self.rope = config.family == "llama"
        self.rope_base = config.rope_base

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: tuple | None):
        B, T, C = x.shape  # (batch, new tokens, n_embd)
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if self.rope:
            cos, sin = rope_cos_sin(positions, self.head_dim, self.rope_base)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        new_cache = (k, v)
        if self.n_kv_head != self.n_head:  # grouped-query attention: each KV head serves a group of query heads
            repeat = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        # Causal over the whole cached sequence: new token i sees every cached token and new tokens <= i.
        past = k.shape[2] - T
        mask = torch.ones(T, k.shape[2], dtype=torch.bool, device=x.device).tril(diagonal=past)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hd)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C)), new_cache


class MLP(nn.Module):
    def __init__(self, config: SpikingBrainConfig) -> None:
        super().__init__()
        self.llama = config.family == "llama"
        width, bias = config.intermediate_size, not self.llama
        self.up_proj = SpikingLinear(config.n_embd, width, bias, config)
        self.down_proj = SpikingLinear(width, config.n_embd, bias, config)
        if self.llama:
            self.gate_proj = SpikingLinear(config.n_embd, width, False, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.llama:
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # SwiGLU
        return self.down_proj(F.gelu(self.up_proj(x), approximate="tanh"))  # GPT-2's "gelu_new"


class Block(nn.Module):
    def __init__(self, config: SpikingBrainConfig) -> None:
        super().__init__()
        norm = (lambda: RMSNorm(config.n_embd, config.norm_eps)) if config.family == "llama" else (
            lambda: nn.LayerNorm(config.n_embd, eps=config.norm_eps)
        )  # fmt: skip
        self.ln_1, self.attn, self.ln_2, self.mlp = norm(), Attention(config), norm(), MLP(config)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, cache: tuple | None):
        attended, new_cache = self.attn(self.ln_1(x), positions, cache)
        x = x + attended
        return x + self.mlp(self.ln_2(x)), new_cache


@dataclass
class CausalLMOutput:
    logits: torch.Tensor
    """(B, T, vocab_size)"""
    past_key_values: list[tuple[torch.Tensor, torch.Tensor]]


class SpikingBrainForCausalLM(nn.Module):
    def __init__(self, config: SpikingBrainConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd) if config.family == "gpt2" else None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = RMSNorm(config.n_embd, config.norm_eps) if config.family == "llama" else nn.LayerNorm(
            config.n_embd, eps=config.norm_eps
        )  # fmt: skip
        # The output head stays full precision and is not spike-coded, as in the report: it reads the last state.
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.wte.weight

    def spiking_layers(self) -> list[SpikingLinear]:
        return [m for m in self.modules() if isinstance(m, SpikingLinear)]

    def set_spiking(self, enabled: bool) -> SpikingBrainForCausalLM:
        self.config.spiking = enabled
        for layer in self.spiking_layers():
            layer.spiking = enabled
        return self

    def set_spike_k(self, k: float) -> SpikingBrainForCausalLM:
        self.config.spike_k = k
        for layer in self.spiking_layers():
            layer.k = k
        return self

    def forward(self, input_ids: torch.Tensor, past_key_values: list | None = None) -> CausalLMOutput:
        B, T = input_ids.shape
        past = past_key_values[0][0].shape[2] if past_key_values else 0
        if past + T > self.config.block_size:
            raise ValueError(f"{past + T} tokens exceed the context of {self.config.block_size}")
        positions = torch.arange(past, past + T, device=input_ids.device)
        x = self.wte(input_ids)  # (B, T, C)
        if self.wpe is not None:
            x = x + self.wpe(positions)
        new_cache = []
        for index, block in enumerate(self.blocks):
            x, layer_cache = block(x, positions, past_key_values[index] if past_key_values else None)
            new_cache.append(layer_cache)
        return CausalLMOutput(self.lm_head(self.ln_f(x)), new_cache)
