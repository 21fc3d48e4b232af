"""SpikingBrain's arithmetic: spike coding of activations and INT8 group-quantized weights, and their products.

Everything here is plain tensor functions (and the ``SpikeStats`` tally), no modules: the threshold and integer
spike counts (W8ASpike: x ~ s * V_th, V_th = mean(|x|) / k), unrolling counts into spike trains, firing statistics,
symmetric INT8 quantization with one scale per group of inputs, the INT8 products (torch's INT8 kernel, or exact
integer sums for spike counts), and the layout INT8 weights are packed and saved in. It is separate from
``spikingbrain_model`` so that the network file stays the readable model (config, layers, the model class) while
the numerics it relies on, which the tests also check on their own, live in one place.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F


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


@dataclass
class SpikeStats:
    """Firing of spike-coded activations, accumulated over the projections and tokens that ``add`` sees.

    Each token's input to a projection is a vector of counts; unrolled, it is a train of ``window`` time steps for
    every entry, where the window is the largest |count| of that vector (ternary: -1/0/+1 spikes) or its bit length
    (bitwise). Sparsity is the share of silent (0) entries in those trains, following the report's unrolled view;
    the formulas below count them without building the trains (``unroll_spikes`` does, and the tests compare).
    """

    bitwise: bool = False
    """Also count the bitwise trains (a popcount per entry: slower)."""
    last_tokens: int = 0
    """Only the last this many positions of each pass count (0: all)."""
    entries: int = 0
    silent_entries: int = 0
    """Entries whose count is 0: neurons that do not fire at all for that token."""
    spikes: int = 0
    """Sum of |count|: the spikes of the ternary (or binary) trains."""
    ternary_slots: int = 0
    bitwise_spikes: int = 0
    bitwise_slots: int = 0
    blocks: int = 0
    silent_blocks: int = 0
    """Blocks of ``Q4_GROUP`` (32) consecutive inputs whose counts are all 0 for a token: the work a kernel could
    skip whole (a zero inside a vector lane costs what any count costs)."""

    def add(self, counts: torch.Tensor) -> None:
        if self.last_tokens and counts.dim() == 3:
            counts = counts[:, -self.last_tokens :]
        magnitude = counts.detach().reshape(-1, counts.shape[-1]).abs().to(torch.int64)
        width = magnitude.shape[-1]
        window = magnitude.amax(dim=-1)  # (tokens,) time steps of each token's train
        self.entries += magnitude.numel()
        self.silent_entries += int((magnitude == 0).sum())
        self.spikes += int(magnitude.sum())
        self.ternary_slots += int(window.sum()) * width
        blocks = F.pad(magnitude, (0, -width % Q4_GROUP)).reshape(magnitude.shape[0], -1, Q4_GROUP)
        self.blocks += blocks.shape[0] * blocks.shape[1]
        self.silent_blocks += int((blocks.amax(dim=-1) == 0).sum())
        if self.bitwise:
            bits = int(window.max()).bit_length() if window.numel() else 0
            self.bitwise_spikes += sum(int(((magnitude >> t) & 1).sum()) for t in range(bits))
            self.bitwise_slots += sum(int(w).bit_length() for w in window.tolist()) * width

    @property
    def silent_share(self) -> float:
        return self.silent_entries / max(self.entries, 1)

    @property
    def silent_block_share(self) -> float:
        return self.silent_blocks / max(self.blocks, 1)

    @property
    def mean_spikes(self) -> float:
        """Spikes per activation (ternary coding); the bitwise one is ``bitwise_spikes / entries``."""
        return self.spikes / max(self.entries, 1)

    @property
    def ternary_sparsity(self) -> float:
        return 1 - self.spikes / max(self.ternary_slots, 1)

    @property
    def bitwise_sparsity(self) -> float:
        return 1 - self.bitwise_spikes / max(self.bitwise_slots, 1)


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


KERNEL_WIDTH = 64
"""The INT8 kernel works on inputs in whole blocks of 64 (it crashes on others): weights are zero-padded to fit."""


MANY_ROWS = 16
"""From this many tokens at once (a prompt), one batched fp32 product of INT8 weights scaled once beats torch's INT8
kernel, a pass over the weights per token (``int8_matmul``; the compiled kernel has crossovers of its own below). On
a GPU batched products always win: there decoding waits on kernel launches more than on memory."""
KERNEL_ROWS_WITHOUT_INT8 = 80
"""Where torch's INT8 product is slow (no VNNI), the decoding kernel, four tokens a pass over the weights, is
faster up to about this many tokens. SmolLM2-135M on an AVX2 EPYC, the kernel against the fp32 product: a spoken
question's 16-31 tokens 0.10-0.19 s against 0.25-0.29 s, 48 tokens 0.33 against 0.52 s, 80 tokens 0.47 against
0.51 s, 107 tokens 0.66 against 0.60 s. 4-bit weights have no INT8 product on any CPU, so theirs is this too
(with VNNI their crossover is later still: 128 tokens, 0.25 s either way)."""
KERNEL_ROWS_WITH_INT8 = 40
"""Where torch's INT8 product is fast (VNNI), the kernel, on the prompt's two threads, is still the faster below
about this many tokens: SmolLM2-135M on an AVX-512 EPYC, 16 / 24 / 32 tokens 0.05 / 0.06 / 0.08 s against
0.08-0.10 / 0.08-0.11 / 0.09-0.12 s, 48 tokens 0.11-0.12 against 0.10-0.15 s, 64 tokens 0.14-0.17 against 0.11-0.17."""


def kernel_rows(bits: int = 8) -> int:
    """Spike-coded projections of fewer tokens than this at once go through the decoding kernel: for INT8 weights
    ``KERNEL_ROWS_WITH_INT8`` where torch's INT8 product is the faster, ``KERNEL_ROWS_WITHOUT_INT8`` where it is
    not; for 4-bit weights ``KERNEL_ROWS_WITHOUT_INT8`` everywhere."""
    return KERNEL_ROWS_WITH_INT8 if bits == 8 and int8_product_is_fast() else KERNEL_ROWS_WITHOUT_INT8


def int8_matmul(inputs: torch.Tensor, qweight: torch.Tensor, qscale: torch.Tensor,
                dtype: torch.dtype = torch.bfloat16, counts: bool = False) -> torch.Tensor:  # fmt: skip
    """The product of (..., in) inputs and INT8 weights scaled per group: (..., in) -> (..., out) float32.

    ``qweight`` is (groups, out, group) int8 and ``qscale`` (groups, out) bfloat16. Integer spike ``counts`` go
    through ``integer_matmul``, exact (decoding normally takes the compiled kernel instead, which is faster still).
    Other inputs: one token at a time, torch's INT8 kernel reads the weights straight from memory with the inputs in
    ``dtype`` (fp32 exact, bfloat16, for the output head, twice as fast); many tokens share each weight, so there
    the weights are scaled into fp32 once per call for a single product.
    """
    groups, out_features, group = qweight.shape
    rows = inputs.reshape(-1, inputs.shape[-1])
    if rows.shape[-1] != groups * group:
        rows = F.pad(rows, (0, groups * group - rows.shape[-1]))
    if counts and rows.device.type == "cpu":
        y = integer_matmul(rows, qweight, qscale)
    elif rows.shape[0] >= MANY_ROWS or rows.device.type != "cpu":  # a GPU: fewer, larger launches win
        weight = qweight.transpose(0, 1) * qscale.t().float().unsqueeze(-1)  # (out, groups, group) fp32
        y = F.linear(rows.float(), weight.reshape(out_features, groups * group))
    elif groups == 1:
        y = torch.ops.aten._weight_int8pack_mm(rows.to(dtype), qweight[0], qscale[0].to(dtype)).float()
    else:  # one kernel call per group, each with its own scales; summed in fp32
        by_group = rows.to(dtype).view(-1, groups, group).transpose(0, 1).contiguous()
        kernel = torch.ops.aten._weight_int8pack_mm
        scales = qscale.to(dtype)
        parts = [kernel(x, w.contiguous(), scale) for x, w, scale in zip(by_group, qweight, scales, strict=True)]
        y = torch.stack(parts).float().sum(dim=0)
    return y.reshape(*inputs.shape[:-1], out_features)


def integer_matmul(counts: torch.Tensor, qweight: torch.Tensor, qscale: torch.Tensor) -> torch.Tensor:
    """(tokens, groups * group) integer spike counts times the INT8 weights, each group's sum exact in int32.

    ``torch._int_mm`` multiplies int8 by int8 (VNNI where the CPU has it). A token whose counts all fit int8 goes
    through as it is; one with larger counts (the thousands, at outlier features) is split exactly into two int8
    levels, c = 128 h + l with |l| <= 64, and its group sums are 128 * sum(h w) + sum(l w), still integers. About a
    fifth of a prompt's tokens need the split. A count past 127 * 128 (one input holding most of a wide input's
    magnitude: |c| <= k * in_features) takes its token's products to float64, exact too. Only the scaling and the
    sum over groups round, in fp32.
    """
    groups, out_features, group = qweight.shape
    tokens = counts.shape[0]
    low = counts.to(torch.int32)
    largest = low.abs().amax(dim=-1)
    huge = (largest > 127 * 128).nonzero().squeeze(-1)  # beyond two int8 levels: a wide input's lone outlier
    low[huge] = 0
    big = largest > 127
    high = torch.div(low[big] + 64, 128, rounding_mode="floor")
    low[big] -= 128 * high
    levels = torch.cat([low, high]).to(torch.int8)  # (tokens + big tokens, groups * group)
    by_group = levels.view(-1, groups, group).transpose(0, 1).contiguous()  # (groups, rows, group)
    big_rows = big.nonzero().squeeze(-1)
    scales = qscale.float()
    y = None
    for index in range(groups):
        sums = _int8_sums(by_group[index], qweight[index])  # (rows, out) int32, exact
        exact = sums[:tokens].index_add_(0, big_rows, sums[tokens:], alpha=128)
        part = exact.float().mul_(scales[index])
        y = part if y is None else y.add_(part)
    if len(huge):  # integers in float64 are exact to 2^53: every group's sum is, and is scaled as the others
        wide = counts[huge].double().view(-1, groups, group)
        sums = torch.einsum("rgi,goi->rgo", wide, qweight.double())
        y[huge] = (sums.float() * scales[None]).sum(dim=1)
    return y


def _int8_sums(levels: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(rows, group) int8 times (out, group) int8: (rows, out) int32, exact, by the faster of two products here."""
    if levels.shape[-1] * 128 * 128 < 2**24 and not int8_product_is_fast():
        # In fp32 every product and every partial sum is an integer below 2^24: exact, in whatever order it is summed.
        return (levels.float() @ weight.float().t()).to(torch.int32)
    return torch._int_mm(levels, weight.t())


@functools.cache
def int8_product_is_fast() -> bool:
    """Whether torch's INT8 product beats the fp32 one on this CPU, measured once. With VNNI it is the faster;
    without (an AVX2 EPYC), torch falls back to a loop: 20.8 ms against fp32's 0.7 for 32 x 576 x 1536, which made
    a 28-token prompt take 1.5 s instead of 0.2."""
    levels, weight = torch.ones(32, 128, dtype=torch.int8), torch.ones(1536, 128, dtype=torch.int8)

    def fastest(product) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            product()
            times.append(time.perf_counter() - start)
        return min(times)

    return fastest(lambda: torch._int_mm(levels, weight.t())) < fastest(lambda: levels.float() @ weight.float().t())


def pack_int8(weight: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``quantize_int8`` laid out for ``int8_matmul``: (groups, out, group) int8 and (groups, out) bfloat16.

    ``group`` 0 means one scale per output row; group sizes are whole kernel blocks, padded with zero weights. The
    int8 tensor is a view of (out, groups, group) memory, each output's weights one run: the layout the decoding
    kernel streams fastest, and the one saved (``stored_int8``).
    """
    out_features, in_features = weight.shape
    if weight.is_meta:  # shapes only, while loading; quantizing on meta would import sympy (70 MB) for nothing
        group = group or in_features
        width = math.ceil(group / KERNEL_WIDTH) * KERNEL_WIDTH
        groups = math.ceil(in_features / group)
        return torch.empty(out_features, groups, width, dtype=torch.int8).transpose(0, 1), torch.empty(
            groups, out_features, dtype=torch.bfloat16
        )
    q, scale = quantize_int8(weight, group or in_features)  # (out, groups, group)
    if q.shape[-1] % KERNEL_WIDTH:
        q = F.pad(q, (0, KERNEL_WIDTH - q.shape[-1] % KERNEL_WIDTH))
    return q.contiguous().transpose(0, 1), scale[..., 0].t().to(torch.bfloat16).contiguous()


def grouped_int8(name: str, tensor: torch.Tensor) -> bool:
    """Whether a state entry is a grouped INT8 weight: saved as (out, groups, group) memory (``stored_int8``)."""
    return name.endswith("qweight") and tensor.dim() == 3


def stored_int8(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A frozen model's state as saved: grouped INT8 weights as their (out, groups, group) memory, contiguous."""
    return {name: t.transpose(0, 1).contiguous() if grouped_int8(name, t) else t for name, t in state.items()}


Q4_GROUP = 32
"""Inputs that share one scale and one minimum in the 4-bit form (GGUF's Q4_1 blocks)."""
Q4_OVERFLOWS = 1024
"""``MAX_Q4_OVERFLOWS`` in ``native/spike_kernel.h``: the 4-bit kernel keeps aside that many counts past int8 a token
(an index and the rest, two int32 each)."""


def pack_q4(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4_1's 4-bit form, w = d q + m, q in 0..15, one float16 d and m per (output row, group of 32 inputs).

    Returns (out, groups * 16) uint8, byte j of a group holding input j in its low nibble and input j + 16 in its
    high one (GGUF's layout, which ``native/q4_kernel.c`` reads), and (out, groups, 2) float16 (d, m). Inputs are
    padded to whole groups with zeros. Weights dequantized from a Q4_1 GGUF come back as the very same blocks
    wherever a block used both ends of its range.
    """
    out_features, in_features = weight.shape
    groups = math.ceil(in_features / Q4_GROUP)
    if weight.is_meta:  # shapes only, while loading
        return (torch.empty(out_features, groups * 16, dtype=torch.uint8),
                torch.empty(out_features, groups, 2, dtype=torch.float16))  # fmt: skip
    w = F.pad(weight.float(), (0, groups * Q4_GROUP - in_features)).reshape(out_features, groups, Q4_GROUP)
    low, high = w.amin(dim=-1, keepdim=True), w.amax(dim=-1, keepdim=True)
    d, m = ((high - low) / 15).half(), low.half()  # quantized against the float16 values that are kept
    q = torch.round((w - m.float()) / d.float().clamp_min(1e-30)).clamp(0, 15).to(torch.uint8)
    packed = q[..., :16] | (q[..., 16:] << 4)
    return packed.reshape(out_features, groups * 16).contiguous(), torch.cat([d, m], dim=-1).contiguous()


Q4_WIDEN_ROWS = 1024
"""``q4_matmul`` widens this many outputs' weights to fp32 at a time: 4 bytes a weight of one block, not of a whole
projection (an 8B model's gate and up projections, fused, are 117 million weights: 470 MB in fp32)."""


def q4_matmul(x: torch.Tensor, packed: torch.Tensor, dm: torch.Tensor, in_features: int) -> torch.Tensor:
    """(..., in_features) inputs times ``pack_q4``'s weights: (..., out) fp32, in PyTorch (many tokens, a GPU)."""
    x = x.float()
    blocks = [F.linear(x, unpack_q4(packed[first : first + Q4_WIDEN_ROWS], dm[first : first + Q4_WIDEN_ROWS])
                       [:, :in_features]) for first in range(0, packed.shape[0], Q4_WIDEN_ROWS)]  # fmt: skip
    return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-1)


def unpack_q4(packed: torch.Tensor, dm: torch.Tensor) -> torch.Tensor:
    """``pack_q4``'s weights as fp32 (out, groups * 32), padding included."""
    out_features, groups = dm.shape[:2]
    bytes_ = packed.reshape(out_features, groups, 16)
    q = torch.cat([bytes_ & 15, bytes_ >> 4], dim=-1).float()
    d, m = dm.float().unbind(-1)
    return q.mul_(d.unsqueeze(-1)).add_(m.unsqueeze(-1)).reshape(out_features, groups * Q4_GROUP)  # in place
