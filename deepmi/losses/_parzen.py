"""The Gaussian Parzen joint histogram of L_MI (Eq. 1-3 with a Gaussian kernel) on a truncated window.

A value at bin coordinate ``u`` gives bin ``i`` the weight ``exp(-(u - i)^2 / (2 sigma^2))``,
normalised over the bins. Relative to the nearest bin (``|u - i| <= 1/2``), a bin at ``|u - i| >= R``
with ``R^2 = 1/4 + 2 sigma^2 ln(1 / eps)`` weighs at most ``eps``, the unit roundoff of the dtype: it
cannot change the normalised weights, the pdf or the gradient beyond rounding. So each value gets
``W = ceil(2 R)`` weights on a window of consecutive bins (W = 6 at sigma = 1/2 in float32, 9 in
float64) instead of N, normalised over the window; those are scattered into a zeroed ``(B, N, c)``
chunk and one ``baddbmm`` per chunk of c pixels adds the outer products. Where ``W >= N`` the
window is every bin, and this is the untruncated estimator.

Only the inputs are saved; the backward pass recomputes the window weights chunk by chunk. Every
step writes into scratch buffers allocated once per call: on CPU a fresh tensor per step and chunk
costs more (allocation, page faults, cold cache) than the arithmetic.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import autocast_off
from ._kernels import column_chunks


def window_width(bins: int, sigma_ratio: float, dtype: torch.dtype) -> tuple[int, float]:
    """``(W, R)``: bins per window and the distance beyond which a weight is below rounding."""
    radius = math.sqrt(0.25 + 2 * sigma_ratio**2 * math.log(2 / torch.finfo(dtype).eps))
    return min(bins, math.ceil(2 * radius)), radius


class _Scratch:
    """Buffers for chunks of up to ``c`` columns: window tensors ``(B, W, c)``, dense ``(B, N, c)``."""

    def __init__(self, x: Tensor, bins: int, width: int, c: int, dense: int) -> None:
        b = x.shape[0]
        self.win = x.new_empty(4, b, width, c)  # offsets d, weights w, a temporary, index (float)
        self.idx = torch.empty(b, width, c, dtype=torch.long, device=x.device)
        self.col = x.new_empty(4, b, 1, c)  # u, clamped u, window start, nearest-bin distance^2 / sums
        self.dense = x.new_empty(dense, b, bins, c)
        self.offsets = torch.arange(width, dtype=x.dtype, device=x.device).view(-1, 1)

    def views(self, n: int) -> tuple[Tensor, ...]:
        return tuple(t[..., :n] for t in (*self.win.unbind(0), self.idx, *self.col.unbind(0)))


def _window(v: Tensor, bins: int, lo: float, scale: float, width: int, radius: float, sigma: float, sc, n):
    """Offsets ``u - i``, normalised weights and bin indices ``(B, W, n)`` of a chunk ``v`` ``(B, n)``,
    and its unclamped coordinate ``u`` ``(B, 1, n)`` (for the clamp's gradient).

    The window is the outer dimension, so sums over it are adds of contiguous rows (a softmax over a
    last dimension of 6 is ~100x slower on CPU).
    """
    d, w, tmp, fidx, idx, u, ub, start, near = sc.views(n)
    v = v.unsqueeze(1)
    if lo == 0:
        torch.mul(v, scale, out=u)
    else:
        torch.sub(v, lo, out=u).mul_(scale)  # the reference's order: exact centres stay exact
    torch.clamp(u, 0, bins - 1, out=ub)
    # first bin strictly within R of u, moved inward where the window would leave 0..N-1
    torch.sub(ub, radius, out=start).floor_().add_(1).clamp_(0, bins - width)
    torch.sub(ub, sc.offsets, out=d).sub_(start)  # (B, W, n): u - i for the window's bins i
    torch.add(start, sc.offsets, out=fidx)
    idx.copy_(fidx)
    # exp(-(d^2 - d_min^2) / (2 sigma^2)): the nearest bin gets exp(0) = 1, so nothing under- or
    # overflows for any sigma (as softmax's max subtraction)
    torch.round(ub, out=near)
    torch.sub(ub, near, out=near).square_()
    torch.mul(d, d, out=w).sub_(near).mul_(-0.5 / sigma**2).exp_()
    w.div_(torch.sum(w, 1, keepdim=True, out=near))
    return d, w, idx, u, tmp


def _dense(w: Tensor, idx: Tensor, full: bool, buf: Tensor) -> Tensor:
    """The window weights as a ``(B, N, n)`` membership matrix (zeros off the window), in ``buf``."""
    if full:
        return w
    return buf[..., : w.shape[2]].zero_().scatter_(1, idx, w)


def _per_column(bins: int, width: int) -> int:
    # a chunk holds two (B, N, c) dense matrices and a few (B, W, c) window tensors
    return max(1, (bins + 2 * width) // 12)


def _counts(x: Tensor, y: Tensor, bins: int, lo: float, hi: float, sigma: float, wt: Tensor | None) -> Tensor:
    scale = (bins - 1) / (hi - lo)
    width, radius = window_width(bins, sigma, x.dtype)
    full = width == bins
    h = x.new_zeros(x.shape[0], bins, bins)
    chunks = column_chunks(x, per_column=_per_column(bins, width))
    sc = _Scratch(x, bins, width, chunks[0].stop, 2)
    for cols in chunks:
        n = cols.stop - cols.start
        dense = []
        for v, buf in zip((x[:, cols], y[:, cols]), sc.dense, strict=True):
            _, w, idx, _, _ = _window(v, bins, lo, scale, width, radius, sigma, sc, n)
            # copy: in the full window w is a scratch view the next _window call overwrites
            dense.append(_dense(w, idx, full, buf) if not full else buf[..., :n].copy_(w))
        if wt is not None:  # the mask weights each voxel's outer product
            dense[0].mul_(wt[:, None, cols])
        h.baddbmm_(dense[0], dense[1].transpose(1, 2))
    return h


def _slope(v: Tensor, dense_other: Tensor, g: Tensor, out: Tensor, args: tuple, sc, n: int, buf) -> None:
    """d/dv of ``sum(G * counts)`` for one input's chunk into ``out``, from the other input's weights.

    dL/dw = ``g @ dense_other`` on the window; through the normalisation dz = w (dw - sum(w dw));
    with z = -d^2 / (2 sigma^2), d/du = sum dz (-d / sigma^2); times the clamp's mean slope and
    the scale.
    """
    bins, lo, scale, width, radius, sigma = args
    d, w, idx, u, dw = _window(v, bins, lo, scale, width, radius, sigma, sc, n)
    full = buf[..., :n]
    torch.bmm(g, dense_other, out=full)
    if width < bins:
        torch.gather(full, 1, idx, out=dw)
    else:
        dw.copy_(full)
    s = torch.linalg.vecdot(dw, w, dim=1).unsqueeze(1)
    du = torch.linalg.vecdot(dw.sub_(s).mul_(w), d, dim=1).mul_(-scale / sigma**2)
    # the clamp's mean slope: 1 inside, 1/2 exactly at either end, 0 outside
    u = u.squeeze(1)
    gate = (u >= 0).to(u.dtype).add_((u <= bins - 1).to(u.dtype)).sub_(1)
    gate.sub_((u == 0).to(u.dtype).add_((u == bins - 1).to(u.dtype)), alpha=0.5)
    torch.mul(du, gate, out=out)


class ParzenJointCounts(torch.autograd.Function):
    """Sum over pixels of outer products of the truncated Parzen weights, ``(B, N, N)``, each pixel's
    weighted by its mask weight ``wt`` ``(B, P)`` if given."""

    @staticmethod
    def forward(
        ctx, x: Tensor, y: Tensor, bins: int, lo: float, hi: float, sigma_ratio: float, wt: Tensor | None
    ) -> Tensor:
        ctx.save_for_backward(x, y, wt)
        ctx.args = (bins, lo, hi, sigma_ratio)
        return _counts(x, y, bins, lo, hi, sigma_ratio, wt)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: Tensor):
        x, y, wt = ctx.saved_tensors
        bins, lo, hi, sigma = ctx.args
        want_x, want_y = ctx.needs_input_grad[:2]
        scale = (bins - 1) / (hi - lo)
        width, radius = window_width(bins, sigma, x.dtype)
        full = width == bins
        g = grad_h.to(x.dtype)
        grad_x = x.new_empty(x.shape) if want_x else None
        grad_y = y.new_empty(y.shape) if want_y else None
        args = (bins, lo, scale, width, radius, sigma)
        chunks = column_chunks(x, per_column=_per_column(bins, width))
        sc = _Scratch(x, bins, width, chunks[0].stop, 2)
        with autocast_off(x):  # backward() may be called inside an autocast region
            for cols in chunks:
                n = cols.stop - cols.start
                xc, yc = x[:, cols], y[:, cols]
                for v, other, out, gg in ((xc, yc, grad_x, g), (yc, xc, grad_y, g.transpose(1, 2))):
                    if out is None:
                        continue
                    _, w, idx, _, _ = _window(other, bins, lo, scale, width, radius, sigma, sc, n)
                    dense = _dense(w, idx, full, sc.dense[0]) if not full else sc.dense[0][..., :n].copy_(w)
                    _slope(v, dense, gg, out[:, cols], args, sc, n, sc.dense[1])
                    if wt is not None:
                        out[:, cols].mul_(wt[:, cols])
        return grad_x, grad_y, None, None, None, None, None
