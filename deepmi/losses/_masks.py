"""Voxel masks and per-sample automatic ranges, shared by every histogram loss.

A mask (boolean, or weights in [0, 1]) turns each voxel's unit count in the histograms into a
count of its weight: the pdfs are weighted sums over voxels divided by the sample's total weight.
With a boolean mask this is exactly the histogram of the selected voxels alone, so a masked loss
equals the unmasked loss of the selected voxels. Masks are data, not parameters: no gradient
flows into them.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

AUTO = "auto"


def check_value_range(value_range: object) -> tuple[float, float] | str:
    """``"auto"``, or ``(lo, hi)`` as floats with ``lo < hi`` finite."""
    if isinstance(value_range, str):
        if value_range != AUTO:
            raise ValueError(f"value_range must be a pair (lo, hi) or 'auto', got {value_range!r}")
        return AUTO
    try:
        lo, hi = (float(v) for v in value_range)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(
            f"value_range must be a pair (lo, hi) of numbers or 'auto', got {value_range!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"value_range must satisfy lo < hi (finite), got {value_range!r}; e.g. (0.0, 1.0)")
    return lo, hi


def voxel_weights(mask: Tensor | None, like: Tensor) -> Tensor | None:
    """The mask as per-voxel weights ``(B, P)`` in ``like``'s dtype (detached), or None without a mask.

    ``mask`` must broadcast to ``like``'s shape ``(B, ...)``; a boolean mask selects voxels, a
    floating one weights them and must lie in [0, 1]. Every sample needs a positive total weight.
    """
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        raise ValueError(
            f"mask must be a torch.Tensor (bool or weights in [0, 1]), got {type(mask).__name__}"
        )
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise ValueError(f"mask must be boolean or floating-point weights in [0, 1], got dtype {mask.dtype}")
    try:
        full = torch.broadcast_to(mask.detach(), like.shape)
    except RuntimeError:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the input's shape {tuple(like.shape)}; "
            "give it the input's shape, or 1 in the dimensions it shares (e.g. (1, 1, D, H, W))"
        ) from None
    w = full.to(like.dtype).reshape(like.shape[0], -1).contiguous()
    if not torch.compiler.is_compiling():
        if mask.dtype != torch.bool:
            lo_hi = torch.stack([w.amin(), w.amax()]).tolist()
            if not (0.0 <= lo_hi[0] and lo_hi[1] <= 1.0):  # also false for NaN
                raise ValueError(
                    f"mask weights must lie in [0, 1], got values in [{lo_hi[0]:g}, {lo_hi[1]:g}]; "
                    "pass a boolean mask or rescale the weights"
                )
        empty = (w.sum(1) <= 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"the mask selects no voxel (total weight 0) in sample(s) {empty}: the histograms of an "
                "empty set are undefined; drop those samples or widen their masks"
            )
    return w


def total_weight(x2: Tensor, w: Tensor | None) -> Tensor | int:
    """The histograms' normaliser per sample: the voxel count ``P``, or the mask's total ``(B, 1, 1)``."""
    return x2.shape[1] if w is None else w.sum(1).view(-1, 1, 1)


def normalise_per_sample(v: Tensor, w: Tensor | None) -> Tensor:
    """``(v - min) / (max - min)`` per sample, min and max over the (masked) voxels, both detached.

    The range is a constant to autograd: each voxel's gradient is its in-range slope divided by
    ``max - min``. The voxels at the minimum and the maximum land exactly on the range ends, where
    the clamp's mean convention (binning.py) gives them half of their inward slope; moving them
    outward is not seen as stretching the range. A constant sample (max == min) maps to 0.
    """
    flat = v.reshape(v.shape[0], -1)
    d = flat.detach()
    if w is None:
        lo, hi = d.amin(1, keepdim=True), d.amax(1, keepdim=True)
    else:
        sel = w > 0
        lo = torch.where(sel, d, torch.full_like(d, math.inf)).amin(1, keepdim=True)
        hi = torch.where(sel, d, torch.full_like(d, -math.inf)).amax(1, keepdim=True)
    span = hi - lo
    span = torch.where(span > 0, span, torch.ones_like(span))
    return ((flat - lo) / span).reshape(v.shape)


def prepare(
    x: Tensor, y: Tensor, value_range: tuple[float, float] | str, mask: Tensor | None
) -> tuple[Tensor, Tensor, float, float, Tensor | None]:
    """Validated inputs ``(x, y, lo, hi, w)``: with ``value_range="auto"`` each input rescaled to
    [0, 1] by its own per-sample (masked) min and max; ``w`` the voxel weights or None."""
    from ._checks import check_pair  # late: _checks stays free of mask logic

    auto = value_range == AUTO
    x, y = check_pair(x, y, value_range=None if auto else value_range)
    w = voxel_weights(mask, x)
    if not auto:
        lo, hi = value_range
        return x, y, lo, hi, w
    return normalise_per_sample(x, w), normalise_per_sample(y, w), 0.0, 1.0, w
