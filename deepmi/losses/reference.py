"""A plain reference for L_LMI and L_MI: the fuzzy histograms with ordinary autograd ops.

``method="reference"`` of :func:`~deepmi.losses.lmi` and :func:`~deepmi.losses.mutual_information`.
Meant to be read and modified, not to be fast: it builds the memberships of every value in every
bin as a ``(B, P, N)`` tensor (P pixels per sample), so it needs B * P * N numbers per input. The
fast paths must give the same values and gradients (``tests/test_losses_reference.py``).

Gradients follow the library's subgradient convention (the mean of the right and the left
derivative at every kink, see :mod:`deepmi.losses.binning`) through the kernel's definition alone:
the linear memberships are differences of clipped ramps, and ``torch.maximum``/``torch.minimum``
pass half the gradient to each side of a tie, which is that mean at each ramp's two kinks.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _clip(t: Tensor, lo: float, hi: float) -> Tensor:
    """``clamp(t, lo, hi)`` whose gradient at ``lo`` and ``hi`` is 1/2 (``torch.clamp`` passes 1)."""
    return torch.minimum(torch.maximum(t, t.new_tensor(lo)), t.new_tensor(hi))


def memberships(
    v: Tensor, bins: int, lo: float, hi: float, kernel: str = "linear", sigma_ratio: float = 0.5
) -> Tensor:
    """Membership ``(B, P, N)`` of every value of ``v`` ``(B, ...)`` in every bin; each sums to 1 over bins.

    ``u`` is the bin coordinate (DeepMI Eq. 14, centres at 0..N-1). Linear kernel (Eq. 15): with the
    ramps ``r_k = clip(u - k, 0, 1)``, how far ``v`` has crossed the cell ``[k, k + 1]``, the
    membership of bin i is ``r_{i-1} - r_i`` (``r_{-1} = 1``, ``r_{N-1} = 0``): the hat
    ``max(0, 1 - |u - i|)`` inside the range, constant outside it (the clamp). Gaussian kernel: Parzen
    weights ``exp(-(u - i)^2 / (2 sigma^2))`` of the clipped ``u``, normalised over bins. B-spline
    (Mattes et al.): ``kernel="bspline"`` the cubic B-spline beta3 of ``u`` placed as MONAI does
    (``lo`` at 2, ``hi`` at N - 2, clamped into ``[2, N - 3]``); ``kernel="box"`` the zero-order
    box car on the same placement (the target's window).
    """
    if kernel in ("bspline", "box"):
        # MONAI's placement: lo on bin coordinate 2, hi on N - 2, clamped into [2, N - 3] (see ._bspline)
        u = _clip((v.reshape(v.shape[0], -1, 1) - lo) * ((bins - 4) / (hi - lo)) + 2, 2.0, bins - 3.0)
        d = (u - torch.arange(bins, dtype=u.dtype, device=u.device)).abs()
        if kernel == "box":  # nearest bin; half and half on a tie; piecewise constant: no gradient
            return ((d < 0.5).to(u.dtype) + 0.5 * (d == 0.5).to(u.dtype)).detach()
        return ((2 - d).clamp(min=0) ** 3 - 4 * (1 - d).clamp(min=0) ** 3) / 6  # beta3(u - i)
    u = (v.reshape(v.shape[0], -1, 1) - lo) * ((bins - 1) / (hi - lo))
    if kernel == "gaussian":
        d = _clip(u, 0.0, bins - 1.0) - torch.arange(bins, dtype=u.dtype, device=u.device)
        return torch.softmax(-d.square() / (2 * sigma_ratio**2), dim=-1)
    ramps = _clip(u - torch.arange(bins - 1, dtype=u.dtype, device=u.device), 0.0, 1.0)
    r = torch.cat([torch.ones_like(u), ramps, torch.zeros_like(u)], dim=-1)
    return r[..., :-1] - r[..., 1:]


def reference_pdfs(
    x: Tensor,
    y: Tensor,
    bins: int,
    lo: float,
    hi: float,
    kernel: str = "linear",
    sigma_ratio: float = 0.5,
    w: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Fuzzy pdfs ``p_x, p_y`` ``(B, N)`` (Eq. 15) and ``p_xy`` ``(B, N, N)`` (Eq. 16) of paired samples.

    ``w``: optional voxel weights ``(B, P)`` (a mask): each voxel counts with its weight and the
    pdfs are divided by the total weight. ``kernel="bspline"`` windows x with beta3, y with a box car.
    """
    m_x = memberships(x, bins, lo, hi, kernel, sigma_ratio)
    m_y = memberships(y, bins, lo, hi, "box" if kernel == "bspline" else kernel, sigma_ratio)
    if w is None:
        return m_x.mean(1), m_y.mean(1), torch.einsum("bpi,bpj->bij", m_x, m_y) / m_x.shape[1]
    total = w.sum(1).view(-1, 1)
    m_x = m_x * w.unsqueeze(-1)  # the weight enters the joint once
    p_xy = torch.einsum("bpi,bpj->bij", m_x, m_y) / total.unsqueeze(-1)
    return m_x.sum(1) / total, (m_y * w.unsqueeze(-1)).sum(1) / total, p_xy


def reference_lmi(x: Tensor, y: Tensor, bins: int, lo: float, hi: float, w: Tensor | None = None) -> Tensor:
    """L_LMI (Eq. 13) per sample, ``(B,)``, from the reference pdfs.

    Eq. 13's ``|P_ii - p_x^i|`` is written ``p_x^i - P_ii``: equal, since memberships are at most 1
    (``P_ii <= p_x^i``). Where both are 0 (a bin empty in x), ``abs`` would give gradient 0 and
    miss the slope of the mass that moves into that bin.
    """
    p_x, p_y, p_xy = reference_pdfs(x, y, bins, lo, hi, w=w)
    diag = torch.diagonal(p_xy, dim1=-2, dim2=-1)
    off_diag = p_xy.sum((-2, -1)) - diag.sum(-1)
    return (off_diag + (p_x - diag).sum(-1) + (p_y - diag).sum(-1)) / 3


def _entropy(p: Tensor, dims: tuple[int, ...]) -> Tensor:
    """``-sum p log p`` over ``dims`` with ``0 log 0 = 0``; empty bins get gradient 0 (log of 1 there)."""
    return -(p * torch.log(torch.where(p > 0, p, torch.ones_like(p)))).sum(dims)


def reference_entropies(
    x: Tensor,
    y: Tensor,
    bins: int,
    lo: float,
    hi: float,
    kernel: str = "linear",
    sigma_ratio: float = 0.5,
    w: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(H(X), H(Y), H(X, Y))`` in nats per sample, each ``(B,)``, from the reference pdfs."""
    p_x, p_y, p_xy = reference_pdfs(x, y, bins, lo, hi, kernel, sigma_ratio, w)
    return _entropy(p_x, (-1,)), _entropy(p_y, (-1,)), _entropy(p_xy, (-2, -1))


def reference_mi(
    x: Tensor,
    y: Tensor,
    bins: int,
    lo: float,
    hi: float,
    kernel: str = "linear",
    sigma_ratio: float = 0.5,
    w: Tensor | None = None,
) -> Tensor:
    """Mutual information ``I = H(X) + H(Y) - H(X, Y)`` (Eq. 1-3) in nats per sample, ``(B,)``."""
    h_x, h_y, h_xy = reference_entropies(x, y, bins, lo, hi, kernel, sigma_ratio, w)
    return h_x + h_y - h_xy
