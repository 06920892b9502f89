"""Bin coordinates of the fuzzy histograms (DeepMI Eq. 14-15), shared by every histogram-based loss.

Convention: N bins whose centres are evenly spaced over ``[lo, hi]``, the first at ``lo`` and the
last at ``hi``, so a value ``v`` sits at the fractional bin coordinate
``v_b = (clamp(v, lo, hi) - lo) / (hi - lo) * (N - 1)``. Eq. 14 read literally (``bin_res =
(max - min) / N``) gives N + 1 bin indices 0..N for values in range; we keep exactly N.

Subgradient convention (every path, every kernel): the memberships are piecewise linear in ``v``,
with kinks on the bin centres and, through the clamp, at ``lo`` and ``hi``. At a kink the gradient
is the **mean of the right and the left derivative**. Inside a cell the backward passes use the
cell's slope; exactly on a centre (:func:`centre_cells`) the mean of the slopes of the cells on
both sides, where a "cell" beyond ``lo`` or ``hi`` has slope 0 (the clamp is flat there), so a
value exactly at ``lo``/``hi`` gets half its one-sided slope. Values outside the range get 0.
"""

from __future__ import annotations

from torch import Tensor


def bin_scale(bins: int, lo: float, hi: float) -> float:
    """d v_b / d v inside the range: bins per unit of value."""
    return (bins - 1) / (hi - lo)


def bin_coords(v: Tensor, bins: int, lo: float, hi: float) -> Tensor:
    """Fractional bin coordinate ``v_b`` in ``[0, N - 1]`` of every value, flattened to ``(B, P)``."""
    # in-place after the first op: one (B, P) allocation instead of three (autograd-safe: clamp's
    # backward reads its input, not its output)
    return v.clamp(lo, hi).sub_(lo).mul_(bin_scale(bins, lo, hi)).reshape(v.shape[0], -1)


def split_cells(vb: Tensor, bins: int) -> tuple[Tensor, Tensor]:
    """Lower bin ``v_0`` (as float) and membership ``m_1 = v_b - v_0`` of the upper bin (Eq. 15).

    ``v_0`` is capped at N - 2 so a value exactly at ``hi`` lands in the last cell with ``m_1 = 1``:
    every value then has its two bins ``v_0, v_0 + 1`` inside ``0..N-1``, with no special case.
    """
    v0 = vb.floor().clamp_(max=bins - 2)
    return v0, vb - v0


def centre_cells(vb: Tensor) -> tuple[Tensor, Tensor]:
    """``c = floor(v_b)`` (``N - 1`` only at ``hi``) and ``on = 1.0`` where ``v_b == c``, exactly on a centre.

    A backward pass takes the slope of the cell ``[c, c + 1]``; on a centre the mean of that and the
    cell ``[c - 1, c]``, where a cell beyond the range (below 0, above N - 1) has slope 0.
    """
    c = vb.floor()
    return c, (vb - c).sign_().neg_().add_(1)  # float ops only: bool masks are ~5x slower on CPU


def in_range(v: Tensor, lo: float, hi: float) -> Tensor:
    """1 where ``lo <= v <= hi``, else 0: outside the range the clamp passes no gradient."""
    return v.clamp(lo, hi).sub_(v).abs_().sign_().neg_().add_(1)  # float ops only, as centre_cells


# hat runs inside the kernels only (never under autograd), so in-place steps are safe.
def hat(t: Tensor) -> Tensor:
    """Linear membership of a value at offset ``t`` (in bins) from a bin centre: ``max(0, 1 - |t|)``."""
    return t.abs().neg_().add_(1).clamp_(min=0)
