"""SpikingBrain's two kinds of weight layer: ``SpikingLinear`` (every projection: spike-coded inputs times INT8 or
4-bit weights) and ``Int8Rows`` (the token embedding and the output head, INT8 rows that are not spike-coded).

They are the network's arithmetic in module form: which weights a layer keeps once frozen, and which path a call
takes (the compiled kernel for a few tokens, PyTorch's products for many, the trainable form with straight-through
rounding). ``core.models.spikingbrain_model`` builds the network from them; the numerics themselves are
``core.models.spike_coding``'s.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from core.models.spike_coding import (
    Q4_OVERFLOWS,
    SpikeStats,
    dequantize_int8,
    int8_matmul,
    kernel_rows,
    pack_int8,
    pack_q4,
    q4_matmul,
    quantize_int8,
    spike_counts,
    spike_threshold,
    unpack_q4,
)
from core.models.spikingbrain_config import SpikingBrainConfig


class SpikingLinear(nn.Linear):
    """A linear layer that, when spiking, sees spike-coded inputs and INT8 (or 4-bit) group-quantized weights.

    Trainable form: full-precision weights, quantized on the fly with straight-through gradients. Inference form
    (after ``freeze_int8``): the quantized weights only, and integer spike counts multiplied with them directly.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool, config: SpikingBrainConfig) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.k = config.spike_k
        self.group = config.weight_group if 0 < config.weight_group < in_features else 0  # 0: one per row
        self.bits = config.weight_bits
        self.spiking = config.spiking
        self.record: SpikeStats | None = None  # set to collect firing statistics
        self.register_buffer("qweight", None)  # the INT8 inference form, once frozen
        self.register_buffer("qscale", None)
        self.kernel = None  # core.models.native.Kernel: decoding in one call (use_kernel)
        self.pre_norm: nn.Module | None = None  # a norm the kernel applies first (its module then passes x through)

    def freeze_int8(self) -> None:
        """Keep only the INT8 weights (a quarter of the memory; 4-bit: ``pack_q4``'s, a sixth); with spiking off they
        then see the plain inputs."""
        pack = pack_q4 if self.bits == 4 else functools.partial(pack_int8, group=self.group)
        self.qweight, self.qscale = pack(self.weight.detach())
        self.weight = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.qweight is None:
            return self._forward_trainable(x)
        if self.decodes(x):
            return self._decode(x, x.numel() // x.shape[-1])
        if not self.spiking:  # the same quantized weights, without spike coding
            y = self._product(x, counts=False)
            return y if self.bias is None else y.add_(self.bias)
        v_th = spike_threshold(x, self.k)
        counts = torch.round(x / v_th)
        if self.record is not None:
            self.record.add(counts)
        y = self._product(counts, counts=True).mul_(v_th)  # W (s v_th) = (W s) v_th
        return y if self.bias is None else y.add_(self.bias)

    def _product(self, x: torch.Tensor, counts: bool) -> torch.Tensor:
        """x times the quantized weights in PyTorch: 4-bit ones widened to fp32 a block at a time (``q4_matmul``),
        INT8 ones through ``int8_matmul`` (exact integer sums for spike counts)."""
        if self.bits == 4:
            return q4_matmul(x, self.qweight, self.qscale, self.in_features)
        if counts:
            return int8_matmul(x, self.qweight, self.qscale, counts=True)
        return int8_matmul(x, self.qweight, self.qscale, torch.float32)

    def _forward_trainable(self, x: torch.Tensor) -> torch.Tensor:
        """Full-precision weights; spiking, everything differentiable (straight-through rounding)."""
        if not self.spiking:
            return F.linear(x, self.weight, self.bias)
        counts, v_th = spike_counts(x, self.k)
        if self.record is not None:
            self.record.add(counts)
        if self.bits == 4:  # the frozen form's very weights
            quantized = unpack_q4(*pack_q4(self.weight.detach()))[:, : self.in_features]
        else:
            q, scale = quantize_int8(self.weight, self.group or self.in_features)
            quantized = dequantize_int8(q, scale, self.in_features)
        weight = self.weight + (quantized - self.weight).detach()  # straight-through estimator
        return F.linear(counts * v_th, weight, self.bias)

    def use_kernel(self, kernel) -> bool:
        """Decode through ``kernel`` (None: PyTorch again); False where more of its int16 counts could overflow
        than it keeps aside (256: an input over 8 million wide; 4-bit weights' int8 counts: 1,024, over 26,000).

        The kernel reads each output's weights as one run of memory, so they are laid out (out, groups, group)
        underneath, once: ``qweight`` stays a (groups, out, group) view of them for the other paths. Streaming
        one run instead of one per group made the kernel 2.2x as fast (81 against 177 us for 576 x 3072)."""
        self.kernel = kernel if self.fits_kernel() else None
        if self.kernel is not None and self.bits == 8 and self.qweight.is_contiguous():
            self.qweight = self.qweight.transpose(0, 1).contiguous().transpose(0, 1)
        return self.kernel is not None or kernel is None

    def fits_kernel(self) -> bool:
        """Whether the kernel keeps aside every count its int16 (INT8 weights) or int8 (4-bit) counts could
        overflow, at this layer's k: (k + 1) * in_features / 32767 of them at most, or / 127."""
        if self.qweight is None:
            return False
        if self.bits == 4:
            return (self.k + 1) * self.in_features < Q4_OVERFLOWS * 127
        return ((self.k + 1) * self.in_features < 256 * 2**15 and self.qscale.dtype == torch.bfloat16
                and self.qscale.is_contiguous())  # fmt: skip

    def decodes(self, x: torch.Tensor) -> bool:
        """Whether ``x`` goes through the kernel: a few tokens (decoding, and a short prompt where torch's INT8 product
        is slow: ``kernel_rows``) on the CPU, firing not being recorded."""
        return (self.kernel is not None and self.spiking and x.numel() < kernel_rows(self.bits) * x.shape[-1]
                and self.record is None and x.device.type == "cpu")  # fmt: skip

    def _decode(self, x: torch.Tensor, rows: int) -> torch.Tensor:
        """A few tokens in one kernel call: the norm before (if fused), spike coding, every group's exact integer
        sum, scales and bias."""
        inputs = x.reshape(rows, self.in_features).float().contiguous()
        norm = None if self.pre_norm is None else (self.pre_norm.weight.data_ptr(), self.pre_norm.eps)
        if self.bits == 4:
            y = torch.empty(rows, self.out_features)
            self.kernel.q4_linear(inputs.data_ptr(), rows, self.in_features, self.k,
                                  self.qweight.data_ptr(), self.qscale.data_ptr(), self.qscale.shape[:2],
                                  None if self.bias is None else self.bias.data_ptr(), y.data_ptr(), norm)  # fmt: skip
            return y.reshape(*x.shape[:-1], self.out_features)
        groups, out, width = self.qweight.shape
        y = torch.empty(rows, out)
        counts, v_th = torch.empty(rows, groups * width, dtype=torch.int16), torch.empty(rows)
        self.kernel.spiking_linear(inputs.data_ptr(), rows, self.in_features, self.k, self.qweight.data_ptr(),
                                   self.qscale.data_ptr(), (groups, out, width),
                                   None if self.bias is None else self.bias.data_ptr(), y.data_ptr(),
                                   counts.data_ptr(), v_th.data_ptr(), norm)  # fmt: skip
        return y.reshape(*x.shape[:-1], out)


class Int8Rows(nn.Module):
    """A (rows, dim) matrix as INT8 with one scale per row: the token embedding and the output head, which are
    not spike-coded (the head reads the last state, as in the report) but are the largest weights of a small model.
    They stay INT8 with 4-bit projections too: SmolLM2's perplexity rose 11% with them in 4 bits, 0.4% without.
    """

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.dim = weight.shape[1]
        qweight, qscale = pack_int8(weight.detach(), 0)
        self.register_buffer("qweight", qweight[0])  # (rows, dim) int8
        self.register_buffer("qscale", qscale[0])  # (rows,) bfloat16

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.qweight[ids, : self.dim].float() * self.qscale[ids].float().unsqueeze(-1)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return int8_matmul(x, self.qweight[None], self.qscale[None])
