"""Godard's 3x3-box SSIM loss (see :mod:`.pixel`) in one eager sweep per sample, gradient included.

With the local moments ``m_x, m_y, e_xx, e_yy, e_xy`` (3x3 box means over full windows),
``A1 = 2 m_x m_y + C1``, ``A2 = 2 (e_xy - m_x m_y) + C2``, ``B1 = m_x^2 + m_y^2 + C1`` and
``B2 = e_xx + e_yy - m_x^2 - m_y^2 + C2``, SSIM is ``S = A1 A2 / (B1 B2)`` and its partial
derivatives are (``D = B1 B2``, ``q = S (1 / B1 - 1 / B2)``, ``r = (A2 - A1) / D``):

    dS/dm_x = 2 (m_y r - m_x q),   dS/dm_y = 2 (m_x r - m_y q),
    dS/de_xx = dS/de_yy = -S / B2,   dS/de_xy = 2 A1 / D.

The box mean's adjoint is the same 3x3 sum on the zero-padded map (divided by 9), so
``dx = box'(G_mx) + 2 x box'(G_e) + y box'(G_exy)`` and likewise for y. One sample (a few hundred
thousand values) at a time, every step written into scratch buffers reused across samples: no
temporary per step, and the unit gradients come out of the forward pass (the backward pass only
scales them by the upstream gradient, in place).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _box_sum(v: Tensor, rows: Tensor, out: Tensor) -> Tensor:
    """3x3 sums over full windows of the last two dims of ``v`` into ``out``, separably."""
    r = rows[..., : v.shape[-2], : v.shape[-1] - 2]
    torch.add(v[..., :-2], v[..., 1:-1], out=r).add_(v[..., 2:])
    return torch.add(r[..., :-2, :], r[..., 1:-1, :], out=out).add_(r[..., 2:, :])


class _Scratch:
    """Per-sample buffers: maps ``(C, h, w)`` of the windows, images ``(C, H, W)``, a padded map."""

    def __init__(self, x: Tensor) -> None:
        c, h, w = x.shape[1], x.shape[2] - 2, x.shape[3] - 2
        self.maps = x.new_empty(14, c, h, w).unbind(0)
        self.images = x.new_empty(3, c, h + 2, w + 2).unbind(0)
        self.rows = x.new_empty(c, h + 4, w + 2)
        self.padded = x.new_zeros(c, h + 4, w + 4)  # the border stays 0

    def adjoint(self, g: Tensor, out: Tensor) -> Tensor:
        """``out = box_sum(zero-pad(g, 2))``: the adjoint of the 3x3 sum over full windows."""
        self.padded[:, 2:-2, 2:-2].copy_(g)
        return _box_sum(self.padded, self.rows, out)


def _sample(
    x: Tensor, y: Tensor, c1: float, c2: float, sc: _Scratch, gx: Tensor | None, gy: Tensor | None
) -> Tensor:
    """Sum over windows of the loss map ``clamp((1 - S) / 2, 0, 1)`` of one sample ``(C, H, W)``;
    writes the gradients of its mean over windows into ``gx``/``gy`` when given."""
    mx, my, exx, eyy, exy, p, b1, d, s, t, t1, t2, gmx, gmy = sc.maps
    prod = sc.images[0]
    _box_sum(x, sc.rows, mx).mul_(1 / 9)
    _box_sum(y, sc.rows, my).mul_(1 / 9)
    _box_sum(torch.mul(x, x, out=prod), sc.rows, exx).mul_(1 / 9)
    _box_sum(torch.mul(y, y, out=prod), sc.rows, eyy).mul_(1 / 9)
    _box_sum(torch.mul(x, y, out=prod), sc.rows, exy).mul_(1 / 9)
    torch.mul(mx, my, out=p)
    a2 = exy.sub_(p).mul_(2).add_(c2)
    a1 = p.mul_(2).add_(c1)
    torch.mul(mx, mx, out=b1).addcmul_(my, my)
    b2 = exx.add_(eyy).sub_(b1).add_(c2)
    b1.add_(c1)
    torch.mul(b1, b2, out=d)
    torch.mul(a1, a2, out=s).div_(d)
    torch.mul(s, -0.5, out=t).add_(0.5)  # the loss map before the clamp
    lo, hi = torch.aminmax(t)
    clamped = bool(lo < 0 or hi > 1)  # SSIM lies in [-1, 1] up to rounding: almost never
    keep = ((t >= 0) & (t <= 1)).to(t.dtype) if clamped else None  # torch.clamp's gradient mask
    total = t.clamp_(0, 1).sum() if clamped else t.sum()
    if gx is None and gy is None:
        return total
    k = -0.5 / (9 * t.numel())  # d mean(map) / dS, and the box mean's 1/9
    q = torch.reciprocal(b1, out=t1).sub_(torch.reciprocal(b2, out=t2)).mul_(s)
    r = torch.sub(a2, a1, out=t).div_(d)
    ge = torch.mul(s, t2, out=s).mul_(-k)  # dS/de_xx = dS/de_yy = -S / B2
    gxy = torch.div(a1, d, out=d).mul_(2 * k)
    torch.mul(my, r, out=gmx).sub_(torch.mul(mx, q, out=t2)).mul_(2 * k)
    torch.mul(mx, r, out=gmy).sub_(torch.mul(my, q, out=t2)).mul_(2 * k)
    if keep is not None:
        for g in (ge, gxy, gmx, gmy):
            g.mul_(keep)
    box_e, box_xy = sc.adjoint(ge, sc.images[1]), sc.adjoint(gxy, sc.images[2])
    for v, other, gm, out in ((x, y, gmx, gx), (y, x, gmy, gy)):
        if out is not None:
            sc.adjoint(gm, out).addcmul_(v, box_e, value=2).addcmul_(other, box_xy)
    return total


def ssim_sums_and_grads(
    x: Tensor, y: Tensor, c1: float, c2: float, need_x: bool, need_y: bool
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Per-sample mean loss map ``(B,)`` of images ``(B, C, H, W)`` and, if asked, its gradients."""
    sc = _Scratch(x)
    grad_x = torch.empty_like(x, memory_format=torch.contiguous_format) if need_x else None
    grad_y = torch.empty_like(y, memory_format=torch.contiguous_format) if need_y else None
    totals = [
        _sample(x[b], y[b], c1, c2, sc, *(None if g is None else g[b] for g in (grad_x, grad_y)))
        for b in range(x.shape[0])
    ]
    n = x.shape[1] * (x.shape[2] - 2) * (x.shape[3] - 2)
    return torch.stack(totals).div_(n), grad_x, grad_y


class FusedSSIM(torch.autograd.Function):
    """Per-sample SSIM loss ``(B,)``; its unit gradients are computed in the forward pass."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, c1: float, c2: float, need_x: bool, need_y: bool) -> Tensor:
        loss, grad_x, grad_y = ssim_sums_and_grads(x, y, c1, c2, need_x, need_y)
        ctx.save_for_backward(x, y)
        ctx.args = (c1, c2, need_x, need_y)
        ctx.grads = (grad_x, grad_y)
        return loss

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        c1, c2, need_x, need_y = ctx.args
        want_x, want_y = ctx.needs_input_grad[:2]
        grads, ctx.grads = ctx.grads, None
        if grads is None or (want_x and not need_x) or (want_y and not need_y):
            x, y = ctx.saved_tensors  # a second backward (retain_graph): recompute
            grads = ssim_sums_and_grads(x, y, c1, c2, want_x, want_y)[1:]
        g = grad.reshape(-1, 1, 1, 1)
        grad_x, grad_y = (
            t.mul_(g) if (t is not None and want) else None
            for t, want in zip(grads, (want_x, want_y), strict=True)
        )
        return grad_x, grad_y, None, None, None, None
