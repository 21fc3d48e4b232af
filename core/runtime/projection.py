"""A fixed, seeded projection that keeps inner products: how the spec's encoders make a model's features into
``embed_dim``-wide vectors (``core.hearing.audio_embedding``, ``core.vision.vision_embedding``)."""

from __future__ import annotations

import torch


def orthonormal_projection(in_dim: int, out_dim: int, seed: int) -> torch.Tensor:
    """(in_dim, out_dim) matrix; with out_dim >= in_dim its rows are orthonormal, so ``x @ P`` keeps inner products."""
    generator = torch.Generator().manual_seed(seed)
    wide, narrow = max(in_dim, out_dim), min(in_dim, out_dim)
    q, _ = torch.linalg.qr(torch.randn(wide, narrow, generator=generator))  # (wide, narrow), orthonormal columns
    return q.T.contiguous() if out_dim >= in_dim else q  # narrower output: a Johnson-Lindenstrauss projection
