"""A llama-family SpikingBrain's decoding step as one native call (``native/decode_step.c``).

Per token, the PyTorch model dispatches some twenty small operations a layer (attention over the KV cache, RoPE,
norms, residuals, the gate) around the compiled projections, and on SmolLM2 that dispatch took as long as the
projections. ``NativeStep`` hands the C function the model's weights once, as pointers in a ``Network`` structure,
and then each step is one call that writes the token's keys and values into the model's own ``KVCache`` and the
logits into a tensor. The spiking projections are the very ``spiking_linear`` the per-projection path calls;
attention, norms and RoPE are the PyTorch model's fp32 arithmetic up to the order of additions; the output head is
computed in fp32 from the INT8 rows (PyTorch's path rounds its input to bfloat16 first). A model with 4-bit weights
(``weight_bits`` 4) runs ``q4_linear``'s arithmetic in its projections (``native/q4_kernel.c``).
"""

from __future__ import annotations

import ctypes
import math

import torch

from core.models.spike_coding import Q4_GROUP, Q4_OVERFLOWS
from core.models.spiking_layers import Int8Rows, SpikingLinear
from core.models.spikingbrain_model import KVCache, SpikingBrainForCausalLM

_pointer, _int, _float = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
PROJECTIONS = ("qkv", "o", "up", "down")
"""The kinds of spiking projection in a block, in the order the native step tallies them."""


class _Projection(ctypes.Structure):
    _fields_ = [("weight", _pointer), ("scale", _pointer), ("dm", _pointer), ("bias", _pointer), ("in_features", _int),
                ("groups", _int), ("out", _int), ("width", _int)]  # fmt: skip


class _Q4Input(ctypes.Structure):
    _fields_ = [("counts", _pointer), ("sums", _pointer), ("overflows", _pointer), ("overflowed", _int),
                ("v_th", _float)]  # fmt: skip


class _Layer(ctypes.Structure):
    _fields_ = [("qkv", _Projection), ("o", _Projection), ("up", _Projection), ("down", _Projection),
                ("attn_norm", _pointer), ("mlp_norm", _pointer), ("attn_out_norm", _pointer),
                ("mlp_out_norm", _pointer), ("q_norm", _pointer), ("k_norm", _pointer), ("inv_freq", _pointer),
                ("window", _int)]  # fmt: skip


class _Network(ctypes.Structure):
    _fields_ = [("n_layer", _int), ("n_embd", _int), ("n_head", _int), ("n_kv_head", _int), ("head_dim", _int),
                ("intermediate", _int), ("gelu", _int), ("norm_eps", _float), ("spike_k", _float),
                ("embed_scale", _float), ("attn_scale", _float), ("embed", _pointer), ("embed_scales", _pointer),
                ("embed_width", _int), ("head", _pointer), ("head_scales", _pointer), ("head_width", _int),
                ("vocab", _int), ("final_norm", _pointer), ("layers", ctypes.POINTER(_Layer)),
                ("scratch", _pointer), ("counts", _pointer), ("q4", _Q4Input), ("threads", _int),
                ("tally", _pointer)]  # fmt: skip


def _address(tensor: torch.Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def _projection(layer: SpikingLinear) -> _Projection:
    if layer.bits == 4:  # (out, groups * 16) uint8 and (out, groups, 2) float16
        out, groups = layer.qscale.shape[:2]
        return _Projection(layer.qweight.data_ptr(), None, layer.qscale.data_ptr(), _address(layer.bias),
                           layer.in_features, groups, out, Q4_GROUP)  # fmt: skip
    groups, out, width = layer.qweight.shape
    return _Projection(layer.qweight.data_ptr(), layer.qscale.data_ptr(), None, _address(layer.bias),
                       layer.in_features, groups, out, width)  # fmt: skip


def _padded_inputs(layer: SpikingLinear | Int8Rows) -> int:
    """The width of the counts a layer reads: its inputs padded to whole weight groups."""
    if isinstance(layer, Int8Rows):  # (rows, width)
        return layer.qweight.shape[1]
    if layer.bits == 4:  # (out, groups, 2) scales and minimums
        return layer.qscale.shape[1] * Q4_GROUP
    return layer.qweight.shape[0] * layer.qweight.shape[2]  # (groups, out, width)


def _inv_freq(head_dim: int, base: float) -> torch.Tensor:
    """RoPE's frequencies exactly as ``rope_cos_sin`` computes them."""
    steps = torch.arange(0, head_dim, 2, dtype=torch.float32)
    return 1.0 / (base ** (steps / head_dim))


def unsupported(model: SpikingBrainForCausalLM) -> str | None:
    """Why ``model`` cannot decode natively (None: it can)."""
    config = model.config
    if config.family != "llama":
        return "only llama-family models (GPT-2 decodes per projection)"
    if not model.frozen or not config.spiking:
        return "the model is not the spiking INT8 inference form"
    layers = model.spiking_layers()
    if any(layer.kernel is None for layer in layers):
        return "some projections do not use the compiled kernel"
    if any(block.attn.qkv_proj.pre_norm is None or block.mlp.up_proj.pre_norm is None for block in model.blocks):
        return "the block norms are not fused into the projections"
    return None


class NativeStep:
    """One token through ``model`` in one native call; ``model`` must stay as it is while this is in use."""

    def __init__(self, model: SpikingBrainForCausalLM, library: ctypes.CDLL, threads: int = 1) -> None:
        config = model.config
        self.model, self.threads = model, threads
        self._step = library.decode_step
        self._step.argtypes = [ctypes.POINTER(_Network), _int, _int, _pointer, _pointer, _pointer, _pointer]
        self._step.restype = None
        scratch_floats = library.decode_scratch_floats
        scratch_floats.argtypes, scratch_floats.restype = [ctypes.POINTER(_Network), _int], ctypes.c_long
        local_base = config.rope_local_base or config.rope_base
        frequencies = {base: _inv_freq(config.head_dim, base) for base in {config.rope_base, local_base}}
        self._keep = list(frequencies.values())  # what the pointers point into, alive as long as this is
        layers = (_Layer * config.n_layer)()
        for index, block in enumerate(model.blocks):
            attention, mlp = block.attn, block.mlp
            layers[index] = _Layer(
                _projection(attention.qkv_proj), _projection(attention.o_proj), _projection(mlp.up_proj),
                _projection(mlp.down_proj), block.ln_1.weight.data_ptr(), block.ln_2.weight.data_ptr(),
                *(_address(getattr(norm, "weight", None))
                  for norm in (block.attn_out_norm, block.mlp_out_norm, attention.q_norm, attention.k_norm)),
                frequencies[local_base if block.sliding else config.rope_base].data_ptr(), attention.window,
            )  # fmt: skip
        embed = model.embed_int8
        head = model.head_int8 or embed
        self.vocab = head.qweight.shape[0]
        self._network = _Network(
            config.n_layer, config.n_embd, config.n_head, config.n_kv_head, config.head_dim, config.intermediate_size,
            int(config.activation == "gelu_tanh"), config.norm_eps, config.spike_k, config.embed_scale,
            config.attn_scale or 1 / math.sqrt(config.head_dim), embed.qweight.data_ptr(), embed.qscale.data_ptr(),
            embed.qweight.shape[1], head.qweight.data_ptr(), head.qscale.data_ptr(), head.qweight.shape[1], self.vocab,
            model.ln_f.weight.data_ptr(), layers, None, None, _Q4Input(), threads, None,
        )  # fmt: skip
        self._layers = layers
        scratch = torch.empty(scratch_floats(ctypes.byref(self._network), config.block_size))
        widest = max([_padded_inputs(layer) for layer in model.spiking_layers()] + [_padded_inputs(head)])
        counts = torch.empty(widest, dtype=torch.int16)
        groups = widest // Q4_GROUP
        q4_buffers = (torch.empty(widest, dtype=torch.int8), torch.empty(groups),
                      torch.empty(2 * Q4_OVERFLOWS, dtype=torch.int32))  # fmt: skip
        self._keep += [scratch, counts, *q4_buffers]
        self._network.scratch, self._network.counts = scratch.data_ptr(), counts.data_ptr()
        self._network.q4 = _Q4Input(*(buffer.data_ptr() for buffer in q4_buffers), 0, 0.0)
        self._tally: torch.Tensor | None = None
        self._like = torch.empty(1, config.n_kv_head, 0, config.head_dim)  # a fresh cache's buffers are made so
        self._buffers: list | None = None  # the cache buffers the pointer arrays below were made for
        self._keys = self._values = self._capacities = None

    def count_silence(self, on: bool = True) -> None:
        """Start (afresh) or stop counting the spike counts that are zero, per kind of projection (``silence``)."""
        self._tally = torch.zeros(2 * len(PROJECTIONS), dtype=torch.int64) if on else None
        self._network.tally = None if self._tally is None else self._tally.data_ptr()

    def silence(self) -> dict[str, float]:
        """The share of zero spike counts in each kind of projection's inputs since ``count_silence``: inputs that
        did not fire, whose products a sparse kernel could skip."""
        if self._tally is None:
            return {}
        tally = self._tally.tolist()
        return {kind: round(tally[2 * i + 1] / max(tally[2 * i], 1), 4) for i, kind in enumerate(PROJECTIONS)}

    def __call__(self, token: int, cache: KVCache) -> torch.Tensor:
        """The (vocab,) logits after ``token``, whose keys and values join ``cache``."""
        position = cache.seen
        if position + 1 > self.model.config.block_size:
            raise ValueError(f"{position + 1} tokens exceed the context of {self.model.config.block_size}")
        self._reserve(cache, position + 1)
        self._network.spike_k = self.model.config.spike_k
        logits = torch.empty(self.vocab)
        self._step(ctypes.byref(self._network), token, position, self._keys, self._values, self._capacities,
                   logits.data_ptr())  # fmt: skip
        cache.lengths = [position + 1] * len(cache.lengths)
        return logits

    def _reserve(self, cache: KVCache, length: int) -> None:
        """Room for ``length`` tokens in every layer's buffers, and the pointer arrays for them."""
        config = self.model.config
        for layer in range(config.n_layer):
            cache.reserve(layer, length, self._like)
        buffers = list(cache.buffers)
        if self._buffers is None or any(a is not b for a, b in zip(buffers, self._buffers, strict=True)):
            self._buffers = buffers
            addresses = (ctypes.c_void_p * config.n_layer)
            self._keys = addresses(*(keys.data_ptr() for keys, _ in buffers))
            self._values = addresses(*(values.data_ptr() for _, values in buffers))
            self._capacities = (ctypes.c_int * config.n_layer)(*(keys.shape[2] for keys, _ in buffers))
