"""Input validation shared by every loss: shapes, dtypes, bins, ranges and non-finite values."""

from __future__ import annotations

import contextlib
import math
import operator
import warnings

import torch
from torch import Tensor


def check_bins(bins: object) -> int:
    """Return ``bins`` as an int, or raise unless it is an integer >= 2 (one bin carries no information).

    Python ints, numpy integer scalars and 0-dim integer torch tensors are accepted; bools and
    floats (even 25.0) are not.
    """
    is_bool = isinstance(bins, bool) or (isinstance(bins, Tensor) and bins.dtype == torch.bool)
    try:
        n = None if is_bool else operator.index(bins)  # int, np.int64, torch.tensor(25)
    except TypeError:
        n = None
    if n is None:
        raise ValueError(
            f"bins must be an integer >= 2, got {bins!r} of type {type(bins).__name__}; pass e.g. bins=25"
        )
    if n < 2:
        raise ValueError(f"bins must be >= 2, got {n}; the paper uses N between 3 and 255 (N <= 25 suffices)")
    return n


def check_range(value_range: tuple[float, float]) -> tuple[float, float]:
    """Return ``(lo, hi)`` as floats, or raise unless ``lo < hi`` are finite numbers."""
    try:
        lo, hi = (float(v) for v in value_range)
    except (TypeError, ValueError):
        raise ValueError(f"value_range must be a pair (lo, hi) of numbers, got {value_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"value_range must satisfy lo < hi (finite), got {value_range!r}; e.g. (0.0, 1.0)")
    return lo, hi


# The out-of-range check looks at about this many evenly strided values per input (a view, not a pass).
RANGE_SAMPLE = 4096
# ... and warns when more than this share of them lies outside value_range.
RANGE_WARN_SHARE = 0.5
_warned_ranges: set[tuple[float, float]] = set()


def _sample(t: Tensor) -> Tensor:
    flat = t.detach().reshape(-1)
    return flat[:: max(1, flat.numel() // RANGE_SAMPLE)]


def _cheap_stats(
    tensors: tuple[Tensor, ...], check_finite: bool, value_range: tuple[float, float] | None
) -> list[float]:
    """Per input: its float sum (if ``check_finite``) and the out-of-range share of a strided sample
    (if ``value_range``), all read back in one host sync."""
    parts = []
    for t in tensors:
        t = t.detach()
        if check_finite:
            parts.append(t.sum(dtype=torch.float64 if t.dtype == torch.float64 else torch.float32).float())
        if value_range is not None:
            s = _sample(t)
            parts.append(((s < value_range[0]) | (s > value_range[1])).float().mean())
    return torch.stack(parts).tolist()


def _warn_out_of_range(name: str, t: Tensor, share: float, value_range: tuple[float, float]) -> None:
    if value_range in _warned_ranges:
        return
    _warned_ranges.add(value_range)
    s = _sample(t).float()
    lo, hi = value_range
    warnings.warn(
        f"{share:.0%} of {name}'s values (a strided sample, min {s.min().item():g}, max "
        f"{s.max().item():g}) lie outside value_range=({lo:g}, {hi:g}). They are clamped to the range "
        "ends, so the histogram loss sees a flat image and passes them no gradient. Pass a value_range "
        "that covers the data, e.g. value_range=(0, 255) for 8-bit images. (Shown once per value_range.)",
        UserWarning,
        stacklevel=4,
    )


_warned_two_dims: set[tuple[int, ...]] = set()


def _warn_two_dims(shape: tuple[int, ...]) -> None:
    """A 2-D input is read as (B, values): say so once per shape, since an (H, W) image passed
    without its batch dimension would silently become H samples of W pixels each."""
    if shape in _warned_two_dims:
        return
    _warned_two_dims.add(shape)
    warnings.warn(
        f"a 2-D input of shape {shape} is read as {shape[0]} samples of {shape[1]} values each; "
        "if it is one (H, W) image, pass image[None, None] (shape (1, 1, H, W)) instead",
        UserWarning,
        stacklevel=4,
    )


def check_pair(
    pred: Tensor,
    target: Tensor,
    *,
    min_dim: int = 1,
    check_finite: bool = True,
    value_range: tuple[float, float] | None = None,
) -> tuple[Tensor, Tensor]:
    """Validate a (pred, target) pair of shape ``(B, ...)`` and return them in one floating dtype.

    Low-precision inputs (float16/bfloat16) are promoted to float32: histograms of a few hundred
    thousand fuzzy counts are meaningless at 8-11 mantissa bits. With ``value_range``, warns (once
    per range) when most of a strided sample of either input lies outside it.
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
    if pred.dim() == 2 and not torch.compiler.is_compiling():
        _warn_two_dims(tuple(pred.shape))
    # Skip the data-dependent tests while torch.compile traces the caller: they would break the graph.
    if (check_finite or value_range is not None) and not torch.compiler.is_compiling():
        stats = iter(_cheap_stats((pred, target), check_finite, value_range))
        for name, t in (("pred", pred), ("target", target)):
            # a finite sum proves every element finite; only when it is not (a NaN/inf, or a float
            # overflow of huge finite values) do we pay the exact test
            if check_finite and not math.isfinite(next(stats)) and not bool(torch.isfinite(t).all()):
                raise ValueError(f"{name} contains NaN or inf values; check the network output / the data")
            if value_range is not None and (share := next(stats)) > RANGE_WARN_SHARE:
                _warn_out_of_range(name, t, share, value_range)
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    return pred.to(dtype), target.to(dtype)


def autocast_off(t: Tensor) -> contextlib.AbstractContextManager:
    """A region where autocast is disabled on ``t``'s device, so matmuls run in ``t``'s dtype.

    The histograms are computed in float32 or float64 (see :func:`check_pair`); under
    ``torch.autocast`` a bf16 ``bmm`` would otherwise lose ~1 % of the mutual information.
    """
    available = getattr(torch.amp, "is_autocast_available", lambda d: d in ("cpu", "cuda"))
    if available(t.device.type):
        return torch.autocast(t.device.type, enabled=False)
    return contextlib.nullcontext()
