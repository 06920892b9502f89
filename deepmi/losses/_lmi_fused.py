"""The closed-form L_LMI (DeepMI Eq. 13 as ``1 - trace(p_xy)``) in one eager pass, gradient included.

Per pixel, with ``a``, ``b`` the clamped bin coordinates of x and y (binning.py), ``c = floor(a)``,
``f_a = a - c`` and ``s = b - c``: x has memberships ``1 - f_a`` at bin c and ``f_a`` at c + 1, so

    sum_i m_x(i) m_y(i) = (1 - f_a) hat(s) + f_a hat(s - 1) = 1 - q(s) + f_a g(s),

with ``q(t) = min(|t|, 1) = 1 - hat(t)`` and ``g(s) = q(s) - q(s - 1) = hat(s - 1) - hat(s)``, which
is also the slope in ``a`` inside the cell. So one sweep gives the value and the slope: a dozen
elementwise steps, written into a few cache-sized scratch buffers (no temporaries), over column
chunks. Only where ``a`` is an integer (a bin centre, a range end, a clamped value) does the slope
need the mean convention of binning.py; those chunks get a masked correction.

The forward pass keeps the unit slopes of the inputs that need a gradient; the backward pass only
scales them by the upstream gradient (in place: they become the returned gradient).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._kernels import column_chunks, workspace


def _coords(v: Tensor, bins: int, lo: float, scale: float, out: Tensor) -> Tensor:
    """``clamp((v - lo) * scale, 0, N - 1)``, in the reference's order (exact centres stay exact)."""
    if lo == 0:  # the common range (0, 1): one step fewer, the same numbers
        return torch.mul(v, scale, out=out).clamp_(0, bins - 1)
    return torch.sub(v, lo, out=out).mul_(scale).clamp_(0, bins - 1)


def _q(t: Tensor, out: Tensor) -> Tensor:
    """``min(|t|, 1)``, i.e. ``1 - hat(t)``."""
    return torch.abs(t, out=out).clamp_(max=1)


def _fix_centres(
    g: Tensor, frac: Tensor, c: Tensor, s: Tensor, v: Tensor, bins: int, lo: float, scale: float
) -> None:
    """Mean-convention slopes where the coordinate is an integer (``frac == 0``), in place in ``g``.

    There the slope is the mean of the cells ``[c, c + 1]`` (``g(s)``) and ``[c - 1, c]``
    (``g(s + 1)``), a cell beyond the range ends having slope 0, and 0 outside the range (the clamp).
    """
    on = torch.nonzero(frac == 0, as_tuple=True)  # indices once: cheaper than three boolean masks
    c_on, s_on = c[on], s[on]
    u = (v[on] - lo) * scale  # unclamped coordinate: outside [0, N - 1] the clamp is flat
    right = (c_on < bins - 1) * (s_on.abs().clamp(max=1) - (s_on - 1).abs().clamp(max=1))
    left = (c_on > 0) * ((s_on + 1).abs().clamp(max=1) - s_on.abs().clamp(max=1))
    g[on] = (right + left) * (((u >= 0) & (u <= bins - 1)) * 0.5)


def _slope(
    a: Tensor, b: Tensor, v: Tensor, out: Tensor, tmp: list[Tensor], bins: int, lo: float, scale: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Slope of ``sum_i m_a(i) m_b(i)`` in ``a`` (bin units) into ``out``; returns ``(out, f_a, q(s))``."""
    c, s, q0, q1, frac = tmp
    torch.floor(a, out=c)
    torch.sub(b, c, out=s)
    _q(s, q0)
    torch.sub(q0, _q(torch.sub(s, 1, out=q1), q1), out=out)
    torch.sub(a, c, out=frac)
    if frac.amin() == 0:  # some value on a centre, a range end or clamped (rare in real-valued data)
        _fix_centres(out, frac, c, s, v, bins, lo, scale)
    return out, frac, q0


def trace_sum_and_slopes(
    x: Tensor, y: Tensor, bins: int, lo: float, hi: float, need_x: bool, need_y: bool, w: Tensor | None = None
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Per-sample ``sum_p sum_i m_x(i) m_y(i)`` ``(B,)`` of flattened ``(B, P)`` inputs and, if asked,
    the unit slopes ``d/dv_b`` ``(B, P)`` of that sum for x and y (bin units, mean convention).
    With voxel weights ``w`` ``(B, P)`` each pixel's term and slopes are multiplied by its weight."""
    scale = (bins - 1) / (hi - lo)
    chunks = column_chunks(x)
    a, b, c, s, q0, q1, frac, spare = workspace(x, 8, chunks)
    grad_x = x.new_empty(x.shape) if need_x else None
    grad_y = y.new_empty(y.shape) if need_y else None
    total = x.new_zeros(x.shape[0])
    for cols in chunks:
        n = cols.stop - cols.start
        a_, b_, tmp = a[:, :n], b[:, :n], [t[:, :n] for t in (c, s, q0, q1, frac)]
        xc, yc = x[:, cols], y[:, cols]
        _coords(xc, bins, lo, scale, a_)
        _coords(yc, bins, lo, scale, b_)
        wc = None if w is None else w[:, cols]
        if need_y:  # the same in y's cells (the sum is symmetric); before tmp is reused for x
            gy, _, _ = _slope(b_, a_, yc, grad_y[:, cols], tmp, bins, lo, scale)
            if wc is not None:
                gy.mul_(wc)
        gx = grad_x[:, cols] if need_x else spare[:, :n]
        gx, fa, qs = _slope(a_, b_, xc, gx, tmp, bins, lo, scale)
        if wc is None:
            total.add_(torch.linalg.vecdot(fa, gx)).sub_(qs.sum(1))  # f_a g(s) - q(s), f_a = 0 where fixed
        else:
            gx.mul_(wc)
            total.add_(torch.linalg.vecdot(fa, gx)).sub_(torch.linalg.vecdot(qs, wc))
    return total.add_(x.shape[1] if w is None else w.sum(1)), grad_x, grad_y


class FusedTraceSum(torch.autograd.Function):
    """``sum_p sum_i m_x(i) m_y(i)`` per sample; its unit slopes are computed in the forward pass."""

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        y: Tensor,
        bins: int,
        lo: float,
        hi: float,
        need_x: bool,
        need_y: bool,
        w: Tensor | None,
    ):
        total, grad_x, grad_y = trace_sum_and_slopes(x, y, bins, lo, hi, need_x, need_y, w)
        ctx.save_for_backward(x, y, w)
        ctx.args = (bins, lo, hi, need_x, need_y)
        ctx.slopes = (grad_x, grad_y)
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        bins, lo, hi, need_x, need_y = ctx.args
        want_x, want_y = ctx.needs_input_grad[:2]
        slopes, ctx.slopes = ctx.slopes, None
        if slopes is None or (want_x and not need_x) or (want_y and not need_y):
            # a second backward (retain_graph) or an unforeseen request: recompute
            x, y, w = ctx.saved_tensors
            slopes = trace_sum_and_slopes(x, y, bins, lo, hi, want_x, want_y, w)[1:]
        g = grad.reshape(-1, 1) * ((bins - 1) / (hi - lo))
        grad_x, grad_y = (
            s.mul_(g) if (s is not None and want) else None
            for s, want in zip(slopes, (want_x, want_y), strict=True)
        )
        return grad_x, grad_y, None, None, None, None, None, None
