"""Linearised mutual information L_LMI (DeepMI Sec. 4.2, Eq. 13), two ways that agree exactly.

``histogram``: Eq. 13 as written on the fuzzy pdfs,
    L = 1/3 ( sum_{i != j} p_xy^ij + sum_i |p_xy^ii - p_x^i| + sum_i |p_xy^ii - p_y^i| ).

``closed_form``: with paired samples every pixel puts unit mass in the joint histogram, so its
row/column sums are exactly the fuzzy marginals. Then p_xy^ii <= p_x^i, p_y^i and each of the three
terms equals 1 - trace(p_xy), i.e. L = 1 - trace(p_xy). The trace is the pixel mean of
sum_i m_x(i) m_y(i), an elementwise quantity: one pass over the pixels, no histogram at all.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_bins, check_pair, check_range
from ._kernels import PixelKernel
from .binning import bin_coords, bin_scale, hat, hat_slope, in_range, split_cells
from .fuzzy import fuzzy_joint_pdf, fuzzy_marginal_pdf

METHODS = ("closed_form", "histogram")


def _overlap(x: Tensor, y: Tensor, bins: int, lo: float, hi: float) -> tuple[Tensor, Tensor]:
    """``t = x_b - y0`` and ``fy``: y has memberships 1 - fy at y0 and fy at y0 + 1, and x's
    membership of bin i is hat(x_b - i), so sum_i m_x(i) m_y(i) = (1 - fy) hat(t) + fy hat(t - 1)."""
    y0, fy = split_cells(bin_coords(y, bins, lo, hi), bins)
    return bin_coords(x, bins, lo, hi).sub_(y0), fy


def _trace_sum(x: Tensor, y: Tensor, bins: int, lo: float, hi: float) -> Tensor:
    """Per-sample sum over pixels of sum_i m_x(i) m_y(i), shape ``(B,)``."""
    t, fy = _overlap(x, y, bins, lo, hi)
    h0 = hat(t)
    return h0.lerp_(hat(t.sub_(1)), fy).sum(1)


def _trace_sum_grad(
    x: Tensor, y: Tensor, grad: Tensor, bins: int, lo: float, hi: float
) -> tuple[Tensor, Tensor]:
    """Gradient of ``sum_b grad[b] * _trace_sum[b]`` w.r.t. the flattened inputs."""
    t, fy = _overlap(x, y, bins, lo, hi)
    scale = grad.reshape(-1, 1) * bin_scale(bins, lo, hi)
    t1 = t - 1
    # y0 is piecewise constant, so y moves the sum only through fy (t holds still).
    grad_y = (hat(t1) - hat(t)).mul_(in_range(y, lo, hi).mul_(scale))
    grad_x = hat_slope(t).lerp_(hat_slope(t1), fy).mul_(in_range(x, lo, hi).mul_(scale))
    return grad_x, grad_y


_trace_sum_k = PixelKernel(_trace_sum, reduce=True)
_trace_sum_grad_k = PixelKernel(_trace_sum_grad, reduce=False)


class _FuzzyTraceSum(torch.autograd.Function):
    """Closed-form trace with a hand-written backward: saves the inputs only, recomputes the rest."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, bins: int, lo: float, hi: float, compile: bool) -> Tensor:
        ctx.save_for_backward(x, y)
        ctx.args = (bins, lo, hi, compile)
        return _trace_sum_k(x, y, bins, lo, hi, compile=compile)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, y = ctx.saved_tensors
        bins, lo, hi, compile = ctx.args
        grad_x, grad_y = _trace_sum_grad_k(x, y, grad.contiguous(), bins, lo, hi, compile=compile)
        return grad_x, grad_y, None, None, None, None


def lmi_closed_form(x: Tensor, y: Tensor, bins: int, lo: float, hi: float, compile: bool = False) -> Tensor:
    """``1 - trace(p_xy)`` per sample, ``(B,)``, for already validated inputs."""
    x2, y2 = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    return 1 - _FuzzyTraceSum.apply(x2, y2, bins, lo, hi, compile) / x2.shape[1]


def lmi_from_pdfs(p_x: Tensor, p_y: Tensor, p_xy: Tensor) -> Tensor:
    """Eq. 13 as written, from pdfs ``(B, N)``, ``(B, N)``, ``(B, N, N)``; returns ``(B,)``."""
    diag = torch.diagonal(p_xy, dim1=-2, dim2=-1)
    off_diag = p_xy.sum((-2, -1)) - diag.sum(-1)
    return (off_diag + (diag - p_x).abs().sum(-1) + (diag - p_y).abs().sum(-1)) / 3


def lmi(
    x: Tensor,
    y: Tensor,
    bins: int,
    value_range: tuple[float, float] = (0.0, 1.0),
    method: str = "closed_form",
    *,
    compile: bool = False,
) -> Tensor:
    """Per-sample L_LMI (Eq. 13) of paired inputs ``(B, ...)``, shape ``(B,)``, in ``[0, 1]``.

    ``method="closed_form"`` (default) evaluates ``1 - trace(p_xy)`` in one elementwise pass;
    ``method="histogram"`` builds the fuzzy pdfs and evaluates Eq. 13 term by term. Both give the
    same numbers (float rounding aside). ``compile=True`` runs the closed form's forward and
    backward kernels through ``torch.compile`` (falls back to eager with a warning if unavailable).
    """
    bins = check_bins(bins)
    lo, hi = check_range(value_range)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    x, y = check_pair(x, y)
    if method == "closed_form":
        return lmi_closed_form(x, y, bins, lo, hi, compile=compile)
    p_xy = fuzzy_joint_pdf(x, y, bins, lo, hi, compile=compile)
    return lmi_from_pdfs(fuzzy_marginal_pdf(x, bins, lo, hi), fuzzy_marginal_pdf(y, bins, lo, hi), p_xy)
