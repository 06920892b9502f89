"""The cubic B-spline Parzen joint histogram of Mattes et al. (2001, 2003), memory-flat.

Mattes et al. (and ITK's MattesMutualInformation, and MONAI's ``GlobalMutualInformationLoss(
kernel_type="b-spline")`` after them) window the *moving* image (here the first input, ``pred``)
with the cubic B-spline ``beta3`` and the *fixed* image (the second input, ``target``) with the
zero-order box car, which counts each value in its nearest bin (a value exactly half-way between
two centres counts 1/2 in each). So the joint pdf is differentiable in the first input and
piecewise constant in the second: the second input gets no gradient.

Bin placement (as MONAI, after ITK): bins of width ``(hi - lo) / (N - 4)`` put ``lo`` on bin
coordinate 2 and ``hi`` on N - 2, and coordinates are clamped into ``[2, N - 3]``, so the cubic
window (4 bins, ``|u - i| < 2``) never leaves the N bins and needs no boundary case (N >= 5).
A consequence kept for agreement with MONAI: values in the top ``1 / (N - 4)`` of the range all
sit at coordinate N - 3 and pass no gradient, as values clamped at ``lo`` do.

With ``u`` a value's bin coordinate, ``c = floor(u)`` and ``t = u - c``, the four non-zero
weights on bins ``c - 1 .. c + 2`` are (1-t)^3/6, (3t^3 - 6t^2 + 4)/6, (-3t^3 + 3t^2 + 3t + 1)/6
and t^3/6; they sum to 1 (partition of unity), so no normalisation is needed. Each voxel pair
adds these four weights to one column of the joint histogram: four scatter-adds of one index per
voxel (eight where a target value sits exactly between two centres), no ``(P, N)`` table. The
backward pass gathers dL/dp at the same four cells and weighs them with the derivatives of beta3.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._compile import MaybeCompiled
from ._kernels import PixelKernel, chunked_sum
from ._masks import total_weight

PAD = 2  # padding bins at either end of the range
MIN_BINS = 2 * PAD + 1


def raw_coords(v: Tensor, bins: int, lo: float, hi: float) -> Tensor:
    """Unclamped bin coordinate ``2 + (v - lo) / (hi - lo) * (N - 4)``, as a new tensor."""
    return (v - lo).mul_((bins - 2 * PAD) / (hi - lo)).add_(PAD)


def coords(v: Tensor, bins: int, lo: float, hi: float) -> Tensor:
    """Bin coordinate clamped into ``[2, N - 3]``, as a new tensor."""
    return raw_coords(v, bins, lo, hi).clamp_(PAD, bins - PAD - 1)


def cubic_weights(t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """beta3 weights of bins ``c - 1, c, c + 1, c + 2`` for the fractional part ``t`` in [0, 1)."""
    s = 1 - t
    t2 = t * t
    t3 = t2 * t
    return s * s * s / 6, (3 * t3 - 6 * t2 + 4) / 6, (-3 * t3 + 3 * t2 + 3 * t + 1) / 6, t3 / 6


def cubic_slopes(t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """d/du of :func:`cubic_weights` (beta3 is C2: no kinks, no subgradient convention needed)."""
    s = 1 - t
    t2 = t * t
    return -0.5 * s * s, 1.5 * t2 - 2 * t, -1.5 * t2 + t + 0.5, 0.5 * t2


def _box(v: Tensor, bins: int, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """The box car's bin ``r`` (nearest centre, as float) and its share ``a``: 1, or 1/2 on a tie
    (then the other half goes to bin ``r - 1``)."""
    ub = coords(v, bins, lo, hi).add_(0.5)
    r = ub.floor()
    return r, 1 - 0.5 * (ub == r).to(v.dtype)


def _cells(
    x: Tensor, y: Tensor, bins: int, lo: float, hi: float, w: Tensor | None = None
) -> tuple[Tensor, ...]:
    """Per voxel pair: flat index of cell (c - 1, r) as float, the box car's share ``a`` and the four
    beta3 weights (times the mask weight ``w`` if given), all ``(B, P)``."""
    u = coords(x, bins, lo, hi)
    c = u.floor()
    r, a = _box(y, bins, lo, hi)
    weights = cubic_weights(u - c)
    if w is not None:
        weights = tuple(q * w for q in weights)
    return ((c - 1) * bins + r, a, *weights)


_cells_k = MaybeCompiled(_cells)


def _counts(
    x: Tensor, y: Tensor, bins: int, lo: float, hi: float, compile: bool = False, w: Tensor | None = None
) -> Tensor:
    """Unnormalised joint histogram ``(B, N*N)`` of flattened ``(B, P)`` inputs."""
    k, a, *weights = _cells_k(x, y, bins, lo, hi, w, compile=compile)
    k = k.long()
    h = x.new_zeros(x.shape[0], bins * bins)
    tie = bool((a < 1).any())  # a target value exactly between two centres (quantised data)
    for i, q in enumerate(weights):
        h.scatter_add_(1, k + i * bins, q * a if tie else q)
        if tie:
            h.scatter_add_(1, k + (i * bins - 1), q * (1 - a))
    return h


def _counts_grad(
    x: Tensor, y: Tensor, g: Tensor, bins: int, lo: float, hi: float, w: Tensor | None = None
) -> tuple[Tensor]:
    """d/dx of ``sum(G * counts)`` for flattened ``(B, P)`` inputs and G ``(B, N*N)``.

    The clamp's slope follows the library's mean convention (binning.py): 1 inside ``(2, N - 3)``,
    1/2 exactly at either end, 0 outside.
    """
    raw = raw_coords(x, bins, lo, hi)
    u = raw.clamp(PAD, bins - PAD - 1)
    c = u.floor()
    r, a = _box(y, bins, lo, hi)
    k = ((c - 1) * bins + r).long()
    slopes = cubic_slopes(u - c)
    main = sum(s * g.gather(1, k + i * bins) for i, s in enumerate(slopes))
    tie = sum(s * g.gather(1, (k + (i * bins - 1)).clamp_(min=0)) for i, s in enumerate(slopes))
    du = torch.lerp(tie, main, a)  # a = 1 almost everywhere: the tie term drops out
    top = bins - PAD - 1
    inside = (raw >= PAD).to(x.dtype) + (raw <= top).to(x.dtype) - 1
    gate = inside - 0.5 * ((raw == PAD).to(x.dtype) + (raw == top).to(x.dtype))
    grad = du * gate * ((bins - 2 * PAD) / (hi - lo))
    return (grad if w is None else grad * w,)


_counts_grad_k = PixelKernel(_counts_grad, reduce=False)


class BSplineJointCounts(torch.autograd.Function):
    """Joint histogram ``(B, N, N)``: beta3 windows of x (rows) against box cars of y (columns)."""

    @staticmethod
    def forward(
        ctx, x: Tensor, y: Tensor, bins: int, lo: float, hi: float, compile: bool, w: Tensor | None
    ) -> Tensor:
        ctx.save_for_backward(x, y, w)
        ctx.args = (bins, lo, hi, compile)
        if compile and _cells_k.failed is None:
            h = _counts(x, y, bins, lo, hi, True, w)
        else:  # eager, over cache-sized chunks
            h = chunked_sum(_counts, x, y, bins, lo, hi, False, w=w, per_column=4)
        return h.reshape(-1, bins, bins)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor):
        x, y, w = ctx.saved_tensors
        bins, lo, hi, compile = ctx.args
        grad_x = None
        if ctx.needs_input_grad[0]:
            g = grad_h.reshape(grad_h.shape[0], -1).to(x.dtype).contiguous()
            (grad_x,) = _counts_grad_k(x, y, g, bins, lo, hi, w=w, compile=compile)
        # the box car is piecewise constant: y gets no gradient (None counts as zero)
        return grad_x, None, None, None, None, None, None


def check_bspline_bins(bins: int) -> None:
    """Raise unless there are enough bins for the two padding bins at each end."""
    if bins < MIN_BINS:
        raise ValueError(
            f"kernel='bspline' needs bins >= {MIN_BINS} (two padding bins at each end, as ITK/MONAI), "
            f"got {bins}; use more bins or kernel='linear'"
        )


def bspline_joint_pdf(
    x: Tensor, y: Tensor, bins: int, lo: float, hi: float, compile: bool = False, w: Tensor | None = None
) -> Tensor:
    """Mattes' joint pdf ``(B, N, N)`` of validated ``(B, ...)`` inputs; ``w``: voxel weights ``(B, P)``."""
    check_bspline_bins(bins)
    x2, y2 = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    return BSplineJointCounts.apply(x2, y2, bins, lo, hi, compile, w) / total_weight(x2, w)
