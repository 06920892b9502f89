"""Fuzzy (linear-membership) histograms and pdfs of DeepMI Sec. 4.3 (Eq. 14-16).

Each value spreads a unit count over its two neighbouring bins (Eq. 15); each pixel pair spreads
a unit count over the four corners of its cell in the joint histogram, weighted by products of
memberships (Eq. 16). Both are piecewise linear in the values, so gradients reach the inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_bins, check_pair, check_range
from ._compile import MaybeCompiled
from ._kernels import PixelKernel, chunked_sum
from .binning import bin_coords, bin_scale, in_range, split_cells

MAX_JOINT_BINS = 4096


def _cells(x: Tensor, y: Tensor, bins: int, lo: float, hi: float) -> tuple[Tensor, Tensor, Tensor]:
    """Flat index ``x0 * N + y0`` of each pixel pair's cell, and the upper memberships ``fx, fy``."""
    x0, fx = split_cells(bin_coords(x, bins, lo, hi), bins)
    y0, fy = split_cells(bin_coords(y, bins, lo, hi), bins)
    return x0.mul_(bins).add_(y0).long(), fx, fy


def _cell_weights(x: Tensor, y: Tensor, bins: int, lo: float, hi: float) -> tuple[Tensor, ...]:
    """Cell index (int32) and the four corner weights (Eq. 16) of every pixel pair, all ``(B, P)``.

    Kept apart from the scatter so that ``torch.compile`` fuses exactly this elementwise part
    (int32, because inductor's float -> int64 conversion is slow on CPU).
    """
    x0, fx = split_cells(bin_coords(x, bins, lo, hi), bins)
    y0, fy = split_cells(bin_coords(y, bins, lo, hi), bins)
    k = (x0 * bins + y0).int()
    gx, gy = 1 - fx, 1 - fy
    return k, gx * gy, gx * fy, fx * gy, fx * fy


_cell_weights_k = MaybeCompiled(_cell_weights)


def _joint_counts(x: Tensor, y: Tensor, bins: int, lo: float, hi: float, compile: bool = False) -> Tensor:
    """Unnormalised fuzzy joint histogram ``(B, N*N)`` of flattened ``(B, P)`` inputs (Eq. 16).

    One cell index per pixel; the four corners (x0, y0), (x0, y0+1), (x0+1, y0), (x0+1, y0+1) are
    the same index into the histogram shifted by 0, 1, N and N+1 (x0, y0 <= N-2 keeps them in range),
    so four scatter-adds of one index build it.
    """
    k, w00, w01, w10, w11 = _cell_weights_k(x, y, bins, lo, hi, compile=compile)
    k = k.long()
    h = x.new_zeros(x.shape[0], bins * bins)
    for shift, w in ((0, w00), (1, w01), (bins, w10), (bins + 1, w11)):
        h[:, shift:].scatter_add_(1, k, w)
    return h


def corner_tables(grad_h: Tensor, bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-cell tables ``(B, N*N)`` of G's corner differences, indexed like the forward's cells.

    A pixel in cell (a, b) with upper memberships (fx, fy) adds the bilinear weights
    (1-fx)(1-fy), (1-fx)fy, fx(1-fy), fx fy to G's corners g00, g01, g10, g11, so
    d/dfx = (g10 - g00) + fy (g11 - g10 - g01 + g00) and d/dfy = (g01 - g00) + fx (same).
    """
    g = grad_h.reshape(-1, bins, bins)
    g00, g01, g10, g11 = g[:, :-1, :-1], g[:, :-1, 1:], g[:, 1:, :-1], g[:, 1:, 1:]

    def table(t: Tensor) -> Tensor:  # cell (a, b) at flat index a * N + b (last row/column unused)
        return F.pad(t, (0, 1, 0, 1)).reshape(-1, bins * bins).contiguous()

    return table(g10 - g00), table(g01 - g00), table(g11 - g10 - g01 + g00)


def _joint_counts_grad(
    x: Tensor, y: Tensor, tx: Tensor, ty: Tensor, txy: Tensor, bins: int, lo: float, hi: float
) -> tuple[Tensor, Tensor]:
    """Gradient of ``sum(G * counts)`` w.r.t. the flattened inputs, from G's :func:`corner_tables`.

    Three small gathers per pixel replace any per-pixel N-vector. The tables are built outside
    this kernel so that, compiled, it reads them as plain buffers.
    """
    k, fx, fy = _cells(x, y, bins, lo, hi)
    cxy = txy.gather(1, k)
    scale = bin_scale(bins, lo, hi)
    grad_x = tx.gather(1, k).addcmul_(fy, cxy).mul_(in_range(x, lo, hi).mul_(scale))
    grad_y = ty.gather(1, k).addcmul_(fx, cxy).mul_(in_range(y, lo, hi).mul_(scale))
    return grad_x, grad_y


_joint_counts_grad_k = PixelKernel(_joint_counts_grad, reduce=False)


class _FuzzyJointCounts(torch.autograd.Function):
    """Joint fuzzy histogram with a hand-written backward: saves only the inputs, no per-pixel weights."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, bins: int, lo: float, hi: float, compile: bool) -> Tensor:
        ctx.save_for_backward(x, y)
        ctx.args = (bins, lo, hi, compile)
        if compile and _cell_weights_k.failed is None:  # the compiled weights, in one pass
            h = _joint_counts(x, y, bins, lo, hi, True)
        else:  # eager, over cache-sized chunks
            h = chunked_sum(_joint_counts, x, y, bins, lo, hi)
        return h.reshape(-1, bins, bins)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor):
        x, y = ctx.saved_tensors
        bins, lo, hi, compile = ctx.args
        tables = corner_tables(grad_h, bins)
        grad_x, grad_y = _joint_counts_grad_k(x, y, *tables, bins, lo, hi, compile=compile)
        return grad_x, grad_y, None, None, None, None


def fuzzy_joint_pdf(x: Tensor, y: Tensor, bins: int, lo: float, hi: float, compile: bool = False) -> Tensor:
    """Fuzzy joint pdf ``(B, N, N)`` of already validated ``(B, ...)`` inputs (one pass over the pixels)."""
    if bins > MAX_JOINT_BINS:
        # cell indices are formed in float (exact below 2^24 = 4096^2); an N x N table beyond that
        # would be 64 MB per sample anyway
        raise ValueError(f"the joint histogram supports bins <= {MAX_JOINT_BINS}, got {bins}")
    x2, y2 = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    return _FuzzyJointCounts.apply(x2, y2, bins, lo, hi, compile) / x2.shape[1]


def fuzzy_marginal_pdf(v: Tensor, bins: int, lo: float, hi: float) -> Tensor:
    """Fuzzy marginal pdf ``(B, N)`` (Eq. 15): memberships 1 - m_1 at v_0 and m_1 at v_0 + 1, normalised."""
    v0, f = split_cells(bin_coords(v, bins, lo, hi), bins)
    k = v0.long()
    h = v.new_zeros(v.shape[0], bins)
    h = h.scatter_add(1, k, 1 - f).scatter_add(1, k + 1, f)
    return h / f.shape[1]


def fuzzy_pdfs(
    x: Tensor, y: Tensor, bins: int, value_range: tuple[float, float] = (0.0, 1.0)
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample fuzzy pdfs ``(p_x, p_y, p_xy)`` of shapes ``(B, N)``, ``(B, N)``, ``(B, N, N)``.

    ``x`` and ``y`` are paired samples of shape ``(B, ...)``: the pixels of sample ``b`` are the
    observations of its pdfs. Values are clamped into ``value_range``; bin centres are evenly
    spaced with the first at ``lo`` and the last at ``hi`` (see :mod:`deepmi.losses.binning`).
    ``p_xy[b, i, j]`` is the joint mass of x-bin i and y-bin j. Differentiable w.r.t. both inputs.
    """
    bins = check_bins(bins)
    lo, hi = check_range(value_range)
    x, y = check_pair(x, y)
    return (
        fuzzy_marginal_pdf(x, bins, lo, hi),
        fuzzy_marginal_pdf(y, bins, lo, hi),
        fuzzy_joint_pdf(x, y, bins, lo, hi),
    )
