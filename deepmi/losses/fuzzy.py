"""Fuzzy (linear-membership) histograms and pdfs of DeepMI Sec. 4.3 (Eq. 14-16).

Each value spreads a unit count over its two neighbouring bins (Eq. 15); each pixel pair spreads
a unit count over the four corners of its cell in the joint histogram, weighted by products of
memberships (Eq. 16). Both are piecewise linear in the values, so gradients reach the inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_bins
from ._compile import MaybeCompiled
from ._kernels import PixelKernel, chunked_sum
from ._masks import check_value_range, prepare, total_weight
from .binning import bin_coords, bin_scale, centre_cells, in_range, split_cells

MAX_JOINT_BINS = 4096


def _cell_weights(
    x: Tensor, y: Tensor, bins: int, lo: float, hi: float, w: Tensor | None = None
) -> tuple[Tensor, ...]:
    """Cell index (int32) and the four corner weights (Eq. 16) of every pixel pair, all ``(B, P)``,
    times the pixel's mask weight ``w`` if given.

    Kept apart from the scatter so that ``torch.compile`` fuses exactly this elementwise part
    (int32, because inductor's float -> int64 conversion is slow on CPU).
    """
    x0, fx = split_cells(bin_coords(x, bins, lo, hi), bins)
    y0, fy = split_cells(bin_coords(y, bins, lo, hi), bins)
    k = (x0 * bins + y0).int()
    gx, gy = 1 - fx, 1 - fy
    if w is not None:
        gx, fx = gx * w, fx * w
    return k, gx * gy, gx * fy, fx * gy, fx * fy


_cell_weights_k = MaybeCompiled(_cell_weights)


def _joint_counts(
    x: Tensor, y: Tensor, bins: int, lo: float, hi: float, compile: bool = False, w: Tensor | None = None
) -> Tensor:
    """Unnormalised fuzzy joint histogram ``(B, N*N)`` of flattened ``(B, P)`` inputs (Eq. 16).

    One cell index per pixel; the four corners (x0, y0), (x0, y0+1), (x0+1, y0), (x0+1, y0+1) are
    the same index into the histogram shifted by 0, 1, N and N+1 (x0, y0 <= N-2 keeps them in range),
    so four scatter-adds of one index build it.
    """
    k, w00, w01, w10, w11 = _cell_weights_k(x, y, bins, lo, hi, w, compile=compile)
    k = k.long()
    h = x.new_zeros(x.shape[0], bins * bins)
    for shift, corner in ((0, w00), (1, w01), (bins, w10), (bins + 1, w11)):
        h[:, shift:].scatter_add_(1, k, corner)
    return h


def corner_tables(grad_h: Tensor, bins: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-cell slope tables ``(B, 2 N^2)`` of G = dL/dp_xy: ``(tx, txy_x)`` for x, ``(ty, txy_y)`` for y.

    A pixel in cell (a, b) with upper memberships (fx, fy) adds the bilinear weights
    (1-fx)(1-fy), (1-fx)fy, fx(1-fy), fx fy to G's corners g00, g01, g10, g11, so
    d/dfx = (g10 - g00) + fy (g11 - g10 - g01 + g00) and d/dfy = (g01 - g00) + fx (same).
    Entry ``a N + b`` holds these slopes of cell (a, b) (0 for the cells a or b = N-1 beyond the
    range); entry ``N^2 + a N + b`` their mean with the cell below along the moving input's axis,
    (a-1, b) for x and (a, b-1) for y (0 below 0): the mean convention for a value exactly on
    centre a (for y: b), see binning.py.
    """
    g = grad_h.reshape(-1, bins, bins)
    g00, g01, g10, g11 = g[:, :-1, :-1], g[:, :-1, 1:], g[:, 1:, :-1], g[:, 1:, 1:]
    dxy = g11 - g10 - g01 + g00

    def along_x(t: Tensor) -> Tensor:  # rows -1..N-1, columns 0..N-1, zero outside the cells
        t = F.pad(t, (0, 1, 1, 1))
        return torch.cat([t[:, 1:], (t[:, 1:] + t[:, :-1]) / 2], 1).reshape(-1, 2 * bins * bins)

    def along_y(t: Tensor) -> Tensor:  # rows 0..N-1, columns -1..N-1
        t = F.pad(t, (1, 1, 0, 1))
        return torch.cat([t[:, :, 1:], (t[:, :, 1:] + t[:, :, :-1]) / 2], 1).reshape(-1, 2 * bins * bins)

    return along_x(g10 - g00), along_x(dxy), along_y(g01 - g00), along_y(dxy)


def _table_index(a: Tensor, b: Tensor, on: Tensor, bins: int) -> Tensor:
    """Index ``on N^2 + a N + b`` (int64) into a :func:`corner_tables` table; overwrites ``on``.

    float32 holds integers exactly below 2^24: up to N = 2896 (2 N^2 <= 2^24) the index is formed in
    float and converted once (float -> int64 conversions are slow on CPU); beyond, the offset N^2 is
    added in int64.
    """
    if 2 * bins * bins <= 1 << 24:
        return on.mul_(bins * bins).add_(a, alpha=bins).add_(b).long()
    return (a * bins + b).long().add_(on.mul_(bins * bins).long())


def _joint_counts_grad(
    x: Tensor, y: Tensor, tx: Tensor, txy_x: Tensor, bins: int, lo: float, hi: float, w: Tensor | None = None
) -> tuple[Tensor]:
    """Gradient of ``sum(G * counts)`` w.r.t. the flattened first input, from G's :func:`corner_tables`.

    Two small gathers per pixel replace any per-pixel N-vector: x's cell (or, exactly on a centre,
    the table of means with the cell below), y's forward cell and membership. The gradient w.r.t.
    y is this kernel with the roles swapped and G transposed (counts(y, x) = counts(x, y)^T), so a
    target that needs no gradient costs nothing. The tables are built outside this kernel so that,
    compiled, it reads them as plain buffers.
    """
    xb, yb = bin_coords(x, bins, lo, hi), bin_coords(y, bins, lo, hi)
    cx, on_x = centre_cells(xb)
    y0 = yb.floor().clamp_(max=bins - 2)  # y's forward cell
    kx = _table_index(cx, y0, on_x, bins)
    fy = yb.sub_(y0)  # y's forward upper membership
    scale = bin_scale(bins, lo, hi)
    grad = tx.gather(1, kx).addcmul_(fy, txy_x.gather(1, kx)).mul_(in_range(x, lo, hi).mul_(scale))
    return (grad if w is None else grad.mul_(w),)


_joint_counts_grad_k = PixelKernel(_joint_counts_grad, reduce=False)


class _FuzzyJointCounts(torch.autograd.Function):
    """Joint fuzzy histogram with a hand-written backward: saves only the inputs, no per-pixel weights."""

    @staticmethod
    def forward(
        ctx, x: Tensor, y: Tensor, bins: int, lo: float, hi: float, compile: bool, w: Tensor | None
    ) -> Tensor:
        ctx.save_for_backward(x, y, w)
        ctx.args = (bins, lo, hi, compile)
        if compile and _cell_weights_k.failed is None:  # the compiled weights, in one pass
            h = _joint_counts(x, y, bins, lo, hi, True, w)
        else:  # eager, over cache-sized chunks
            h = chunked_sum(_joint_counts, x, y, bins, lo, hi, False, w=w)
        return h.reshape(-1, bins, bins)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor):
        x, y, w = ctx.saved_tensors
        bins, lo, hi, compile = ctx.args
        want_x, want_y = ctx.needs_input_grad[:2]
        grad_x = grad_y = None
        if want_x:
            tables = corner_tables(grad_h, bins)[:2]
            (grad_x,) = _joint_counts_grad_k(x, y, *tables, bins, lo, hi, w=w, compile=compile)
        if want_y:
            tables = corner_tables(grad_h.transpose(1, 2), bins)[:2]
            (grad_y,) = _joint_counts_grad_k(y, x, *tables, bins, lo, hi, w=w, compile=compile)
        return grad_x, grad_y, None, None, None, None, None


def fuzzy_joint_pdf(
    x: Tensor, y: Tensor, bins: int, lo: float, hi: float, compile: bool = False, w: Tensor | None = None
) -> Tensor:
    """Fuzzy joint pdf ``(B, N, N)`` of already validated ``(B, ...)`` inputs (one pass over the pixels).

    ``w``: optional voxel weights ``(B, P)`` (a mask, see :mod:`._masks`); the pdf is then the
    weighted histogram divided by each sample's total weight.
    """
    if bins > MAX_JOINT_BINS:
        # cell indices are formed in float (exact below 2^24 = 4096^2; see _table_index); an N x N
        # table beyond that would be 64 MB per sample anyway
        raise ValueError(f"the joint histogram supports bins <= {MAX_JOINT_BINS}, got {bins}")
    x2, y2 = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    return _FuzzyJointCounts.apply(x2, y2, bins, lo, hi, compile, w) / total_weight(x2, w)


class _FuzzyMarginalCounts(torch.autograd.Function):
    """Fuzzy marginal histogram ``(B, N)`` (Eq. 15) with a backward in the mean convention (binning.py)."""

    @staticmethod
    def forward(ctx, v: Tensor, bins: int, lo: float, hi: float, w: Tensor | None) -> Tensor:
        ctx.save_for_backward(v, w)
        ctx.args = (bins, lo, hi)
        v0, f = split_cells(bin_coords(v, bins, lo, hi), bins)
        k = v0.long()
        g = 1 - f
        if w is not None:
            g, f = g * w, f * w
        return v.new_zeros(v.shape[0], bins).scatter_add_(1, k, g).scatter_add_(1, k + 1, f)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor):
        v, w = ctx.saved_tensors
        bins, lo, hi = ctx.args
        # moving inside cell [c, c + 1] shifts mass from bin c to c + 1: slope G[c + 1] - G[c];
        # entries N + c: the mean with the cell below, for values exactly on centre c
        s = F.pad(grad_h.diff(dim=1), (1, 1))  # cells -1..N-1, zero beyond the range
        table = torch.cat([s[:, 1:], (s[:, 1:] + s[:, :-1]) / 2], 1)
        c, on = centre_cells(bin_coords(v, bins, lo, hi))
        grad = table.gather(1, on.mul_(bins).add_(c).long())
        grad.mul_(in_range(v, lo, hi).mul_(bin_scale(bins, lo, hi)))
        return (grad if w is None else grad.mul_(w)), None, None, None, None


def fuzzy_marginal_pdf(v: Tensor, bins: int, lo: float, hi: float, w: Tensor | None = None) -> Tensor:
    """Fuzzy marginal pdf ``(B, N)`` (Eq. 15): memberships 1 - m_1 at v_0 and m_1 at v_0 + 1, normalised
    (weighted by the voxel weights ``w`` ``(B, P)`` if given)."""
    v2 = v.reshape(v.shape[0], -1)
    return _FuzzyMarginalCounts.apply(v2, bins, lo, hi, w) / (
        v2.shape[1] if w is None else w.sum(1, keepdim=True)
    )


def fuzzy_pdfs(
    x: Tensor,
    y: Tensor,
    bins: int,
    value_range: tuple[float, float] | str = (0.0, 1.0),
    *,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample fuzzy pdfs ``(p_x, p_y, p_xy)`` of shapes ``(B, N)``, ``(B, N)``, ``(B, N, N)``.

    ``x`` and ``y`` are paired samples of shape ``(B, ...)``: the pixels of sample ``b`` are the
    observations of its pdfs. Values are clamped into ``value_range``; bin centres are evenly
    spaced with the first at ``lo`` and the last at ``hi`` (see :mod:`deepmi.losses.binning`).
    ``p_xy[b, i, j]`` is the joint mass of x-bin i and y-bin j. Differentiable w.r.t. both inputs.
    ``value_range="auto"``: each input's own per-sample min and max (:mod:`._masks`). ``mask``:
    boolean or weights in [0, 1], broadcastable to the inputs; only masked voxels are counted.
    """
    bins = check_bins(bins)
    x, y, lo, hi, w = prepare(x, y, check_value_range(value_range), mask)
    return (
        fuzzy_marginal_pdf(x, bins, lo, hi, w),
        fuzzy_marginal_pdf(y, bins, lo, hi, w),
        fuzzy_joint_pdf(x, y, bins, lo, hi, w=w),
    )
