"""Input validation shared by every loss: shapes, dtypes, bins, ranges and non-finite values."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def check_bins(bins: int) -> int:
    """Return ``bins`` as an int, or raise if fewer than two (one bin carries no information)."""
    if isinstance(bins, bool) or not isinstance(bins, int):
        raise ValueError(f"bins must be an int >= 2, got {bins!r}; pass e.g. bins=25")
    if bins < 2:
        raise ValueError(
            f"bins must be >= 2, got {bins}; the paper uses N between 3 and 255 (N <= 25 suffices)"
        )
    return bins


def check_range(value_range: tuple[float, float]) -> tuple[float, float]:
    """Return ``(lo, hi)`` as floats, or raise unless ``lo < hi`` are finite numbers."""
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be a pair (lo, hi) of numbers, got {value_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"value_range must satisfy lo < hi (finite), got {value_range!r}; e.g. (0.0, 1.0)")
    return lo, hi


def _all_finite(t: Tensor) -> bool:
    # One cheap reduction decides in the common case: a finite sum proves every element finite.
    # Only when it is not (a NaN/inf, or a float overflow of huge finite values) do we pay the exact test.
    s = t.detach().sum(dtype=torch.float64 if t.dtype == torch.float64 else torch.float32)
    if bool(torch.isfinite(s)):
        return True
    return bool(torch.isfinite(t).all())


def check_pair(
    pred: Tensor, target: Tensor, *, min_dim: int = 1, check_finite: bool = True
) -> tuple[Tensor, Tensor]:
    """Validate a (pred, target) pair of shape ``(B, ...)`` and return them in one floating dtype.

    Low-precision inputs (float16/bfloat16) are promoted to float32: histograms of a few hundred
    thousand fuzzy counts are meaningless at 8-11 mantissa bits.
    """
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(
                f"{name} must be a floating-point tensor, got dtype {t.dtype}; convert with .float()"
            )
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.dim() < min_dim or pred.shape[0] == 0 or pred.numel() == 0:
        raise ValueError(
            f"expected a non-empty batch (B, ...) with at least {min_dim} dims, got {tuple(pred.shape)}"
        )
    # Skip the data-dependent test while torch.compile traces the caller: it would break the graph.
    if check_finite and not torch.compiler.is_compiling():
        for name, t in (("pred", pred), ("target", target)):
            if not _all_finite(t):
                raise ValueError(f"{name} contains NaN or inf values; check the network output / the data")
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    return pred.to(dtype), target.to(dtype)
