"""A GGUF projection's own 4-bit blocks in SpikingBrain's 4-bit form, exactly: no rounding of the weights again.

Q4_0, Q4_1 and Q4_K all store w = d q + m with q in 0..15 over blocks of 32 inputs (Q4_K: a float16 scale and
minimum per 256, times a 6-bit scale and minimum per 32). ``core.models.spike_coding.pack_q4`` rounds float weights
to such blocks by their minimum and maximum, which gives back a block only where it used both ends of its range:
in Gemma 3 270M's Q4_K_M file 21% of the Q4_K blocks did not, and were rounded a second time. Reading the blocks
themselves keeps every weight the file holds; Q4_K's d * scale and dmin * min are rounded to float16 once (in that
file, every weight within 0.8% of a quantization step of the file's own).
"""

from __future__ import annotations

import numpy as np

FOUR_BIT_GRIDS = ("Q4_0", "Q4_1", "Q4_K")
"""GGUF block types whose weights the 4-bit form holds as they are."""


def q4_form(tensor) -> tuple[np.ndarray, np.ndarray] | None:
    """A ``gguf.GGUFReader`` tensor's blocks as ``pack_q4`` lays them out: (out, groups * 16) uint8, byte j of a group
    holding input j in its low nibble and input j + 16 in its high one, and (out, groups, 2) float16 (d, m); None
    for other block types."""
    kind = tensor.tensor_type.name
    if kind not in FOUR_BIT_GRIDS:
        return None
    rows = int(tensor.shape[1])
    data = np.asarray(tensor.data, dtype=np.uint8).reshape(rows, -1)
    if kind == "Q4_K":
        return _q4_k(data.reshape(rows, -1, 144))
    blocks = data.reshape(rows, -1, 18 if kind == "Q4_0" else 20)
    d = blocks[..., :2].copy().view(np.float16)
    # Q4_0 is d (q - 8): a minimum of -8 d, exact in float16 (a power of two times d)
    m = (d * np.float16(-8)) if kind == "Q4_0" else blocks[..., 2:4].copy().view(np.float16)
    packed = blocks[..., -16:]
    return packed.reshape(rows, -1).copy(), np.concatenate([d, m], axis=-1)


def _q4_k(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, super-blocks, 144) Q4_K blocks: float16 d and dmin, twelve bytes of eight 6-bit scales and minimums,
    then 128 bytes in which byte j of chunk c (32 bytes) holds input 64 c + j low and 64 c + 32 + j high."""
    rows, supers = blocks.shape[:2]
    d = blocks[..., 0:2].copy().view(np.float16).astype(np.float32)
    dmin = blocks[..., 2:4].copy().view(np.float16).astype(np.float32)
    scales, minimums = _scales_and_minimums(blocks[..., 4:16])
    q = blocks[..., 16:].reshape(rows, supers, 4, 1, 32) >> np.array([0, 4], np.uint8).reshape(2, 1)
    q = (q & 15).reshape(rows, supers * 8, 32)  # (rows, groups of 32, inputs)
    packed = q[..., :16] | (q[..., 16:] << 4)
    scale = (d * scales).reshape(rows, supers * 8, 1).astype(np.float16)
    minimum = (-dmin * minimums).reshape(rows, supers * 8, 1).astype(np.float16)
    return packed.reshape(rows, -1).astype(np.uint8), np.concatenate([scale, minimum], axis=-1)


def _scales_and_minimums(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K's twelve bytes -> eight 6-bit scales and eight 6-bit minimums (as ``gguf.quants.Q4_K.get_scale_min``)."""
    d, m, both = (packed[..., 0:4], packed[..., 4:8], packed[..., 8:12])
    scales = np.concatenate([d & 0x3F, (both & 0x0F) | ((d >> 2) & 0x30)], axis=-1)
    minimums = np.concatenate([m & 0x3F, (both >> 4) | ((m >> 2) & 0x30)], axis=-1)
    return scales.astype(np.float32), minimums.astype(np.float32)
