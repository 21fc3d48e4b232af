"""SpikingBrain: a spiking causal language model, converted from a pretrained transformer (nanoGPT style).

As the SpikingBrain report does it (arXiv 2509.05276, W8ASpike): every projection's input x is coded per token as
integer spike counts s = round(x / V_th) with an adaptive threshold V_th = mean(|x|) / k, so x ~ s * V_th, and the
weights are INT8, symmetric, one scale per group of 128 inputs. The rounding passes gradients straight through, so
the model stays trainable. ``model.set_spiking(False)`` gives the plain network: the reference for every quality
figure. Two families share the code: ``gpt2`` (LayerNorm, learned positions, GELU, biases) and ``llama`` (RMSNorm,
RoPE, SwiGLU, grouped-query attention, tied embeddings), which holds Qwen2 (biases on q, k, v) and Qwen3 (norms on
each query and key head, heads of their own width) too, and Gemma 3. This file is the network: norms, RoPE, the
KV cache, attention, the blocks and the model. Its layers with weights (``SpikingLinear``, INT8 or 4-bit, and
``Int8Rows``) are ``core.models.spiking_layers``, its settings ``core.models.spikingbrain_config``, and the
arithmetic they rely on ``core.models.spike_coding``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from core.models.spike_coding import SpikeStats, grouped_int8
from core.models.spiking_layers import Int8Rows, SpikingLinear
from core.models.spikingbrain_config import SpikingBrainConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.fused_into: SpikingLinear | None = None
        """The projection that reads this norm's output alone and applies the norm itself when it decodes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused_into is not None and self.fused_into.decodes(x):
            return x  # the projection's kernel normalises it
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_cos_sin(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    steps = torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device)
    inv_freq = 1.0 / (base ** (steps / head_dim))
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, head_dim/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, head_dim), the rotate-half layout of Hugging Face Llama
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class KVCache:
    """Every layer's keys and values for the tokens seen so far. The buffers grow by doubling, so a new token is
    written in place instead of copying the whole cache (which costs more with every token of a long chat).
    A forward pass extends the cache it is given: keep using the returned one."""

    def __init__(self, n_layer: int) -> None:
        self.buffers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layer
        self.lengths = [0] * n_layer

    @property
    def seen(self) -> int:
        return self.lengths[0]

    def truncate(self, length: int) -> None:
        """Forget every token from ``length`` on (the buffers stay, to be written over)."""
        self.lengths = [min(seen, length) for seen in self.lengths]

    def reserve(self, layer: int, end: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The layer's key and value buffers, grown to hold ``end`` tokens if they do not; a first buffer takes the
        batch, heads, head width, dtype and device of ``like`` (B, heads, T, head_dim)."""
        old = self.buffers[layer]
        if old is None or end > old[0].shape[2]:
            start = self.lengths[layer]
            capacity = max(end, 64, 2 * (old[0].shape[2] if old else 0))
            like = old[0] if old is not None else like
            new = tuple(like.new_empty(*like.shape[:2], capacity, like.shape[3]) for _ in range(2))
            if old is not None:
                for fresh, previous in zip(new, old, strict=True):
                    fresh[:, :, :start] = previous[:, :, :start]
            self.buffers[layer] = old = new
        return old

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append (B, heads, T, head_dim) keys and values; returns all of the layer's so far."""
        start, end = self.lengths[layer], self.lengths[layer] + k.shape[2]
        keys, values = self.reserve(layer, end, k)
        keys[:, :, start:end], values[:, :, start:end] = k, v
        self.lengths[layer] = end
        return keys[:, :, :end], values[:, :, :end]


class Attention(nn.Module):
    def __init__(self, config: SpikingBrainConfig, sliding: bool = False) -> None:
        super().__init__()
        self.window = config.sliding_window if sliding else 0
        self.scale = config.attn_scale or None  # None: scaled_dot_product_attention's own 1 / sqrt(head_dim)
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        bias = config.family == "gpt2"
        width = (config.n_head + 2 * self.n_kv_head) * self.head_dim
        # q, k and v read the same input: one projection codes it into spikes once (GPT-2's own c_attn layout).
        self.qkv_proj = SpikingLinear(config.n_embd, width, bias or config.qkv_bias, config)
        self.o_proj = SpikingLinear(config.n_head * self.head_dim, config.n_embd, bias, config)
        self.q_norm = self.k_norm = None
        if config.qk_norm:
            self.q_norm, self.k_norm = RMSNorm(self.head_dim, config.norm_eps), RMSNorm(self.head_dim, config.norm_eps)

    def forward(self, x: torch.Tensor, rope: tuple | None, cache: KVCache, layer: int) -> torch.Tensor:
        B, T, _ = x.shape  # (batch, new tokens, n_embd)
        q_width, kv_width = self.n_head * self.head_dim, self.n_kv_head * self.head_dim
        q, k, v = self.qkv_proj(x).split([q_width, kv_width, kv_width], dim=-1)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        k, v = cache.extend(layer, k, v)
        # Causal over the whole cached sequence: new token i sees every cached token and new tokens <= i.
        # One new token sees everything, and a fresh prompt is plain causal: neither needs a mask tensor.
        past = k.shape[2] - T
        if self.window and T == 1:  # a sliding layer's one new token sees the window's last tokens alone
            k, v = k[:, :, -self.window :], v[:, :, -self.window :]
        mask = None
        if (T > 1 and past) or (self.window and T > 1 and past + T > self.window):
            mask = torch.ones(T, k.shape[2], dtype=torch.bool, device=x.device).tril(diagonal=past)
            if self.window:
                mask &= ~torch.ones_like(mask).tril(diagonal=past - self.window)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None and T > 1 and past == 0,
            enable_gqa=self.n_kv_head != self.n_head, scale=self.scale,
        )  # (B, nh, T, hd)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, q_width))


class MLP(nn.Module):
    def __init__(self, config: SpikingBrainConfig) -> None:
        super().__init__()
        self.llama = config.family == "llama"
        self.width, bias = config.intermediate_size, not self.llama
        self.gelu_gate = config.activation == "gelu_tanh"
        # SwiGLU's gate and up projections read the same input: one projection, one spike coding.
        self.up_proj = SpikingLinear(config.n_embd, self.width * (2 if self.llama else 1), bias, config)
        self.down_proj = SpikingLinear(self.width, config.n_embd, bias, config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.llama:
            gate, up = self.up_proj(x).split(self.width, dim=-1)
            gate = F.gelu(gate, approximate="tanh") if self.gelu_gate else F.silu(gate)
            return self.down_proj(gate * up)  # SwiGLU, or Gemma's GeGLU
        return self.down_proj(F.gelu(self.up_proj(x), approximate="tanh"))  # GPT-2's "gelu_new"


class Block(nn.Module):
    def __init__(self, config: SpikingBrainConfig, sliding: bool = False) -> None:
        super().__init__()
        norm = (lambda: RMSNorm(config.n_embd, config.norm_eps)) if config.family == "llama" else (
            lambda: nn.LayerNorm(config.n_embd, eps=config.norm_eps)
        )  # fmt: skip
        self.sliding = sliding
        self.ln_1, self.attn, self.ln_2, self.mlp = norm(), Attention(config, sliding), norm(), MLP(config)
        self.attn_out_norm = self.mlp_out_norm = None
        if config.sandwich_norms:
            self.attn_out_norm, self.mlp_out_norm = norm(), norm()

    def forward(self, x: torch.Tensor, rope: tuple | None, cache: KVCache, layer: int) -> torch.Tensor:
        attended = self.attn(self.ln_1(x), rope, cache, layer)
        x = x + (attended if self.attn_out_norm is None else self.attn_out_norm(attended))
        mixed = self.mlp(self.ln_2(x))
        return x + (mixed if self.mlp_out_norm is None else self.mlp_out_norm(mixed))


@dataclass
class CausalLMOutput:
    logits: torch.Tensor
    """(B, T, vocab_size)"""
    past_key_values: KVCache


def _embedding(rows: int, dim: int) -> nn.Embedding:
    """An embedding initialized as GPT-2's, or left uninitialized on the meta device (while loading weights): the
    meta kernel of ``normal_`` is Python that imports some 800 modules, 70 MB of memory, for nothing."""
    weight = torch.empty(rows, dim)
    if not weight.is_meta:
        nn.init.normal_(weight, std=0.02)
    return nn.Embedding(rows, dim, _weight=weight)


class SpikingBrainForCausalLM(nn.Module):
    def __init__(self, config: SpikingBrainConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = _embedding(config.vocab_size, config.n_embd)
        self.wpe = _embedding(config.block_size, config.n_embd) if config.family == "gpt2" else None
        types = config.layer_types or ("full",) * config.n_layer
        self.blocks = nn.ModuleList(Block(config, kind == "sliding") for kind in types)
        for name in config.int8_projections:  # a 4-bit model's projections that stay INT8
            self.get_submodule(name).bits = 8
        self.ln_f = RMSNorm(config.n_embd, config.norm_eps) if config.family == "llama" else nn.LayerNorm(
            config.n_embd, eps=config.norm_eps
        )  # fmt: skip
        # The output head is not spike-coded, as in the report: it reads the last state.
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.tie_weights()
        self.embed_int8: Int8Rows | None = None  # the INT8 inference form (freeze_int8)
        self.head_int8: Int8Rows | None = None
        self.native_step = None
        """``core.models.decode_step.NativeStep``: one token's whole pass in one compiled call, when set."""

    @classmethod
    def from_state_dict(cls, config: SpikingBrainConfig, state: dict, int8: bool = False) -> SpikingBrainForCausalLM:
        """A model holding ``state`` (the INT8 inference form when ``int8``), built without a random init first."""
        with torch.device("meta"):  # shapes only: the state's tensors are assigned, not copied
            model = cls(config)
            if int8:
                model.set_spiking(True).freeze_int8()
        # The INT8 kernel reads weights with aligned vector loads and crashes on less than 64-byte alignment (as
        # safetensors' own loader gives): copy those (torch's allocations are aligned; read_safetensors uses them).
        state = {name: t if t.data_ptr() % 64 == 0 else t.clone() for name, t in state.items()}
        expected = model.state_dict()
        for name, tensor in state.items():  # saved as (out, groups, group) memory: seen as (groups, out, group)
            if grouped_int8(name, tensor) and name in expected and tensor.shape != expected[name].shape:
                state[name] = tensor.transpose(0, 1)
        unexpected = model.load_state_dict(state, strict=False, assign=True).unexpected_keys
        model.tie_weights()
        missing = [name for name, tensor in model.state_dict().items() if tensor.is_meta]
        if missing or unexpected:
            raise ValueError(f"weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model.eval()

    def tie_weights(self) -> None:
        if self.config.tie_embeddings and self.lm_head is not None:
            self.lm_head.weight = self.wte.weight

    def spiking_layers(self) -> list[SpikingLinear]:
        return [m for m in self.modules() if isinstance(m, SpikingLinear)]

    @property
    def frozen(self) -> bool:
        return self.embed_int8 is not None

    def freeze_int8(self) -> SpikingBrainForCausalLM:
        """The inference form of spiking: INT8 weights everywhere, full precision dropped (a quarter the memory)."""
        if not self.config.spiking:
            raise RuntimeError("freeze_int8 is for the spiking model; switch spiking on first")
        for layer in self.spiking_layers():
            layer.freeze_int8()
        self.embed_int8 = Int8Rows(self.wte.weight)
        if not self.config.tie_embeddings:  # tied: the embedding's INT8 rows are the head too
            self.head_int8 = Int8Rows(self.lm_head.weight)
        self.wte = self.lm_head = None
        return self

    def use_kernel(self, kernel) -> bool:
        """Decode every spiking projection through ``kernel`` (``core.models.native.Kernel``; None: PyTorch's
        operations again); False if some layer cannot (its counts could overflow the kernel's int16). In a llama
        block each norm feeds one projection alone, so the kernel applies the norm too."""
        fits = all([layer.use_kernel(kernel) for layer in self.spiking_layers()])
        for block in self.blocks:
            for norm, layer in ((block.ln_1, block.attn.qkv_proj), (block.ln_2, block.mlp.up_proj)):
                if isinstance(norm, RMSNorm):
                    fused = layer.kernel is not None
                    # Plain attributes, not submodules: registered, each would hold the other, a cycle.
                    object.__setattr__(norm, "fused_into", layer if fused else None)
                    object.__setattr__(layer, "pre_norm", norm if fused else None)
        return fits

    def set_spiking(self, enabled: bool) -> SpikingBrainForCausalLM:
        """Spike coding on or off. Off, an INT8 model multiplies its plain inputs with the same INT8 weights: the
        difference then is the spike coding alone."""
        self.config.spiking = enabled
        for layer in self.spiking_layers():
            layer.spiking = enabled
        return self

    @torch.no_grad()
    def spike_stats(self, input_ids: torch.Tensor, last_tokens: int = 0, bitwise: bool = False) -> SpikeStats:
        """How the spiking layers fire over ``input_ids`` (only the last ``last_tokens`` positions, if given)."""
        stats = SpikeStats(bitwise=bitwise, last_tokens=last_tokens)
        layers, native_step = self.spiking_layers(), self.native_step
        for layer in layers:
            layer.record = stats
        self.native_step = None  # it does not record
        try:
            self(input_ids)
        finally:
            for layer in layers:
                layer.record = None
            self.native_step = native_step
        return stats

    def set_spike_k(self, k: float) -> SpikingBrainForCausalLM:
        """A finer or coarser spike coding. A layer whose kernel could then drop overflowed counts (a wider k makes
        more) decodes in PyTorch instead, and the whole model too."""
        self.config.spike_k = k
        for layer in self.spiking_layers():
            layer.k = k
            if layer.kernel is not None and not layer.fits_kernel():
                layer.use_kernel(None)
                self.native_step = None
        return self

    def forward(self, input_ids: torch.Tensor, past_key_values: KVCache | None = None,
                last_only: bool = False) -> CausalLMOutput:  # fmt: skip
        """Logits for every position, or with ``last_only`` for the last (all that generation needs of a prompt:
        the output head is the largest matrix of a small model)."""
        B, T = input_ids.shape
        cache = past_key_values if past_key_values is not None else KVCache(self.config.n_layer)
        if self.native_step is not None and B == T == 1 and self.config.spiking and input_ids.device.type == "cpu":
            return CausalLMOutput(self.native_step(int(input_ids[0, 0]), cache).view(1, 1, -1), cache)
        past = cache.seen
        if past + T > self.config.block_size:
            raise ValueError(f"{past + T} tokens exceed the context of {self.config.block_size}")
        positions = torch.arange(past, past + T, device=input_ids.device)
        x = self.embed_int8.embed(input_ids) if self.frozen else self.wte(input_ids)  # (B, T, C)
        if self.config.embed_scale != 1.0:
            x = x * self.config.embed_scale
        rope = local_rope = None
        if self.wpe is not None:
            x = x + self.wpe(positions)
        else:  # once per pass, shared by every layer (sliding layers may have a base of their own)
            config = self.config
            rope = rope_cos_sin(positions, config.head_dim, config.rope_base)
            local = config.rope_local_base or config.rope_base
            local_rope = rope if local == config.rope_base else rope_cos_sin(positions, config.head_dim, local)
        for index, block in enumerate(self.blocks):
            x = block(x, local_rope if block.sliding else rope, cache, index)
        x = self.ln_f(x[:, -1:] if last_only else x)
        if self.frozen:
            logits = (self.embed_int8 if self.head_int8 is None else self.head_int8).project(x)
        else:
            logits = self.lm_head(x)
        return CausalLMOutput(logits, cache)
