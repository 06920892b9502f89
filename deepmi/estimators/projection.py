"""Random projection of high-dimensional inputs before SSGE (MIGE Sec. 3, Eq. 18-19).

MIGE replaces x by ``R x`` with a random ``R`` of shape (k, d) "whose columns have unit length"
(Eq. 18). With unit-length columns ``E ||R v||^2 = ||v||^2``: distances are preserved in expectation
without the ``sqrt(d/k)`` factor of Eq. 19 (that factor belongs to the unit-length-rows convention),
so the median-heuristic bandwidth of the joint (Rx, z) sees x at its original scale.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

__all__ = ["projection_matrix", "random_projection"]


@functools.lru_cache(maxsize=16)
def _cpu_projection(in_dim: int, out_dim: int, seed: int) -> Tensor:
    # Drawn on the CPU with its own generator: the same seed gives the same R on every device.
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(out_dim, in_dim, generator=gen, dtype=torch.float64)
    return r / r.norm(dim=0, keepdim=True)


def projection_matrix(
    in_dim: int,
    out_dim: int,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Gaussian random matrix R (out_dim, in_dim) with unit-length columns (MIGE Eq. 18)."""
    if in_dim < 1 or out_dim < 1:
        raise ValueError(f"in_dim and out_dim must be positive, got {in_dim}, {out_dim}")
    return _cpu_projection(int(in_dim), int(out_dim), int(seed)).to(device=device, dtype=dtype)


def random_projection(x: Tensor, out_dim: int, seed: int = 0) -> Tensor:
    """Project (B, ...) inputs to (B, out_dim) with a fixed seeded R; x is flattened after dim 0.

    Inputs with at most ``out_dim`` features are only flattened: projecting them would add nothing.
    Gradients flow through the projection (it is linear), which circumstance II needs.
    """
    if x.dim() < 2:
        raise ValueError(f"x must have shape (B, ...), got {tuple(x.shape)}")
    if out_dim < 1:
        raise ValueError(f"out_dim must be a positive int, got {out_dim}")
    flat = x.flatten(1)
    if flat.shape[1] <= out_dim:
        return flat
    r = projection_matrix(flat.shape[1], out_dim, seed, dtype=flat.dtype, device=flat.device)
    return flat @ r.T
