"""Linearised mutual information L_LMI (DeepMI Sec. 4.2, Eq. 13), three ways that agree exactly.

``histogram``: Eq. 13 as written on the fuzzy pdfs,
    L = 1/3 ( sum_{i != j} p_xy^ij + sum_i |p_xy^ii - p_x^i| + sum_i |p_xy^ii - p_y^i| ).

``closed_form``: with paired samples every pixel puts unit mass in the joint histogram, so its
row/column sums are exactly the fuzzy marginals. Then p_xy^ii <= p_x^i, p_y^i and each of the three
terms equals 1 - trace(p_xy), i.e. L = 1 - trace(p_xy). The trace is the pixel mean of
sum_i m_x(i) m_y(i), an elementwise quantity: one pass over the pixels, no histogram at all.

``reference``: Eq. 13 on pdfs built from ``(B, P, N)`` memberships with plain autograd
(:mod:`deepmi.losses.reference`), the yardstick the other two are tested against.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import autocast_off, check_bins
from ._kernels import PixelKernel
from ._lmi_fused import FusedTraceSum
from ._masks import check_value_range, prepare
from .binning import bin_coords, bin_scale, centre_cells, hat, in_range, split_cells
from .fuzzy import fuzzy_joint_pdf, fuzzy_marginal_pdf
from .reference import reference_lmi

METHODS = ("closed_form", "histogram", "reference")


def _overlap(x: Tensor, y: Tensor, bins: int, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """``t = x_b - y0`` and ``fy``: y has memberships 1 - fy at y0 and fy at y0 + 1, and x's
    membership of bin i is hat(x_b - i), so sum_i m_x(i) m_y(i) = (1 - fy) hat(t) + fy hat(t - 1)."""
    y0, fy = split_cells(bin_coords(y, bins, lo, hi), bins)
    return bin_coords(x, bins, lo, hi).sub_(y0), fy


def _trace_sum(x: Tensor, y: Tensor, bins: int, lo: float, hi: float, w: Tensor | None = None) -> Tensor:
    """Per-sample (``w``-weighted) sum over pixels of sum_i m_x(i) m_y(i), shape ``(B,)``."""
    t, fy = _overlap(x, y, bins, lo, hi)
    h0 = hat(t)
    h0 = h0.lerp_(hat(t.sub_(1)), fy)
    return (h0 if w is None else h0.mul_(w)).sum(1)


def _mean_slope(v: Tensor, vb: Tensor, wb: Tensor, bins: int, lo: float, hi: float) -> Tensor:
    """d/dv of sum_i m_v(i) m_w(i), with m_w(i) = hat(w_b - i), in the mean convention (binning.py).

    Inside the cell [c, c + 1], moving v shifts its membership from bin c to c + 1: the slope is
    m_w(c + 1) - m_w(c). Exactly on centre c it is the mean of that and m_w(c) - m_w(c - 1), the
    slope of the cell below; a cell beyond the range ends has slope 0.
    """
    c, on = centre_cells(vb)
    t = wb - c
    up, mid, down = hat(t - 1), hat(t), hat(t + 1)  # m_w(c + 1), m_w(c), m_w(c - 1)
    right = (up - mid).mul_((bins - 1 - c).clamp_(max=1))  # 0 in the "cell" above centre N - 1
    left = (mid - down).mul_(c.clamp(max=1))  # 0 in the "cell" below centre 0
    slope = right.lerp_(left, on.mul_(0.5))  # (right + left) / 2 on a centre, else right
    return slope.mul_(in_range(v, lo, hi).mul_(bin_scale(bins, lo, hi)))


def _trace_sum_grad(
    x: Tensor, y: Tensor, grad: Tensor, bins: int, lo: float, hi: float, w: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Gradient of ``sum_b grad[b] * _trace_sum[b]`` w.r.t. the flattened inputs (symmetric in x, y)."""
    xb, yb = bin_coords(x, bins, lo, hi), bin_coords(y, bins, lo, hi)
    g = grad.reshape(-1, 1) if w is None else grad.reshape(-1, 1) * w
    return _mean_slope(x, xb, yb, bins, lo, hi).mul_(g), _mean_slope(y, yb, xb, bins, lo, hi).mul_(g)


_trace_sum_k = PixelKernel(_trace_sum, reduce=True)
_trace_sum_grad_k = PixelKernel(_trace_sum_grad, reduce=False)


class _FuzzyTraceSum(torch.autograd.Function):
    """Closed-form trace with a hand-written backward: saves the inputs only, recomputes the rest."""

    @staticmethod
    def forward(
        ctx, x: Tensor, y: Tensor, bins: int, lo: float, hi: float, compile: bool, w: Tensor | None
    ) -> Tensor:
        ctx.save_for_backward(x, y, w)
        ctx.args = (bins, lo, hi, compile)
        return _trace_sum_k(x, y, bins, lo, hi, w=w, compile=compile)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, y, w = ctx.saved_tensors
        bins, lo, hi, compile = ctx.args
        grad_x, grad_y = _trace_sum_grad_k(x, y, grad.contiguous(), bins, lo, hi, w=w, compile=compile)
        return grad_x, grad_y, None, None, None, None, None


def lmi_closed_form(
    x: Tensor, y: Tensor, bins: int, lo: float, hi: float, compile: bool = False, w: Tensor | None = None
) -> Tensor:
    """``1 - trace(p_xy)`` per sample, ``(B,)``, for already validated inputs (voxel weights ``w``).

    Eagerly (the default) one fused sweep computes the value and the slopes (:mod:`._lmi_fused`);
    ``compile=True`` runs the separate forward and backward kernels above through ``torch.compile``.
    """
    x2, y2 = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    total = x2.shape[1] if w is None else w.sum(1)
    if compile and _trace_sum_k.compiled.failed is None and _trace_sum_grad_k.compiled.failed is None:
        return 1 - _FuzzyTraceSum.apply(x2, y2, bins, lo, hi, compile, w) / total
    grad_on = torch.is_grad_enabled()
    need_x, need_y = grad_on and x2.requires_grad, grad_on and y2.requires_grad
    return 1 - FusedTraceSum.apply(x2, y2, bins, lo, hi, need_x, need_y, w) / total


def _abs_of_nonpositive(d: Tensor) -> Tensor:
    """``|d|`` for a ``d`` that is never positive (up to rounding), with gradient -1 at ``d = 0``.

    ``abs`` has gradient 0 at 0, but ``d = P_ii - p_x^i <= 0`` everywhere, so there ``|d| = -d`` on
    both sides of the kink and its true slope is that of ``-d``.
    """
    return torch.where(d > 0, d, -d)


def lmi_from_pdfs(p_x: Tensor, p_y: Tensor, p_xy: Tensor) -> Tensor:
    """Eq. 13 as written, from pdfs ``(B, N)``, ``(B, N)``, ``(B, N, N)``; returns ``(B,)``."""
    diag = torch.diagonal(p_xy, dim1=-2, dim2=-1)
    off_diag = p_xy.sum((-2, -1)) - diag.sum(-1)
    terms = _abs_of_nonpositive(diag - p_x).sum(-1) + _abs_of_nonpositive(diag - p_y).sum(-1)
    return (off_diag + terms) / 3


def lmi(
    x: Tensor,
    y: Tensor,
    bins: int,
    value_range: tuple[float, float] | str = (0.0, 1.0),
    method: str = "closed_form",
    *,
    mask: Tensor | None = None,
    compile: bool = False,
) -> Tensor:
    """Per-sample L_LMI (Eq. 13) of paired inputs ``(B, ...)``, shape ``(B,)``, in ``[0, 1]``.

    ``method="closed_form"`` (default) evaluates ``1 - trace(p_xy)`` in one elementwise pass;
    ``method="histogram"`` builds the fuzzy pdfs (Eq. 14-16) and evaluates Eq. 13 term by term;
    ``method="reference"`` does the same with ``(B, P, N)`` memberships and plain autograd
    (:mod:`deepmi.losses.reference`; slow, for reading). All give the same values (float rounding
    aside) and the same gradients, with the mean of the one-sided derivatives at the kinks (bin
    centres, range ends; see :mod:`deepmi.losses.binning`). ``compile=True`` runs the closed form's
    forward and backward kernels through ``torch.compile`` (falls back to eager with a warning if
    unavailable). Values outside ``value_range`` are clamped; a warning says so when most are.

    ``value_range="auto"`` rescales each sample of each input by its own (masked) min and max (see
    :func:`deepmi.losses.mutual_information`); L_LMI then compares the two inputs' rank-free shapes,
    not their intensities. ``mask``: boolean or weights in [0, 1], broadcastable to the inputs;
    only masked voxels count (a boolean mask gives exactly L_LMI of the selected voxels).
    """
    bins = check_bins(bins)
    value_range = check_value_range(value_range)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    x, y, lo, hi, w = prepare(x, y, value_range, mask)
    with autocast_off(x):
        if method == "closed_form":
            return lmi_closed_form(x, y, bins, lo, hi, compile=compile, w=w)
        if method == "reference":
            return reference_lmi(x, y, bins, lo, hi, w)
        p_xy = fuzzy_joint_pdf(x, y, bins, lo, hi, compile=compile, w=w)
        p_x, p_y = fuzzy_marginal_pdf(x, bins, lo, hi, w), fuzzy_marginal_pdf(y, bins, lo, hi, w)
        return lmi_from_pdfs(p_x, p_y, p_xy)
