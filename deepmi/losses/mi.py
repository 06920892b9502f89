"""Mutual information of fuzzy pdfs (DeepMI Sec. 3, Eq. 1-3), and Studholme's normalised MI.

``kernel="linear"``: the paper's fuzzy histograms (Eq. 15-16), built in one pass over the pixels.
``kernel="gaussian"``: a Parzen window of width ``sigma = sigma_ratio * bin spacing`` whose weights
are normalised per value, the estimator of MONAI's ``GlobalMutualInformationLoss(kernel_type=
"gaussian")`` (Guo 2019, after DeepReg). Its weights are computed only on the few bins where they
exceed the dtype's rounding (:mod:`._parzen`); the linear kernel touches 2 bins (4 in the joint).
``kernel="bspline"``: Mattes et al.'s cubic B-spline window on the first input and a box car on the
second (:mod:`._bspline`), the estimator of ITK's Mattes MI and MONAI's ``kernel_type="b-spline"``.

Every kernel and path takes a ``mask`` (voxel weights, :mod:`._masks`) and ``value_range="auto"``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._bspline import bspline_joint_pdf, check_bspline_bins
from ._checks import autocast_off, check_bins
from ._masks import check_value_range, prepare, total_weight
from ._parzen import ParzenJointCounts
from .fuzzy import fuzzy_joint_pdf
from .reference import reference_entropies

KERNELS = ("linear", "gaussian", "bspline")
METHODS = ("fast", "reference")


def plogp(p: Tensor) -> Tensor:
    """``p log p`` with ``0 log 0 = 0``, in value and in gradient (no NaN, no inf).

    The log's argument is replaced by 1 where ``p == 0`` before the log is taken, so neither the
    forward nor the backward pass ever sees ``log 0``; empty bins get zero gradient.
    """
    return p * torch.log(torch.where(p > 0, p, torch.ones_like(p)))


def mi_from_joint(p_xy: Tensor) -> Tensor:
    """I(X;Y) = H(X) + H(Y) - H(X,Y) (Eq. 1, 3) in nats from joint pdfs ``(B, N, N)``; returns ``(B,)``.

    The marginals are the joint's row and column sums, which for paired fuzzy samples are exactly
    the fuzzy marginal pdfs.
    """
    h_xy = plogp(p_xy).sum((-2, -1))
    h_x = plogp(p_xy.sum(-1)).sum(-1)
    h_y = plogp(p_xy.sum(-2)).sum(-1)
    return h_xy - h_x - h_y


def gaussian_joint_pdf(
    x: Tensor, y: Tensor, bins: int, lo: float, hi: float, sigma_ratio: float, w: Tensor | None = None
) -> Tensor:
    """Parzen-window joint pdf ``(B, N, N)``: the (mask-weighted) pixel mean of outer products of the
    weights (truncated where they fall below rounding, see :mod:`._parzen`)."""
    x2, y2 = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    return ParzenJointCounts.apply(x2, y2, bins, lo, hi, sigma_ratio, w) / total_weight(x2, w)


def entropies(p_xy: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(H(X), H(Y), H(X, Y))`` in nats, each ``(B,)``, of joint pdfs ``(B, N, N)`` (Eq. 2-3)."""
    return -plogp(p_xy.sum(-1)).sum(-1), -plogp(p_xy.sum(-2)).sum(-1), -plogp(p_xy).sum((-2, -1))


def _entropies(
    x: Tensor,
    y: Tensor,
    bins: int,
    value_range: tuple[float, float] | str,
    kernel: str,
    sigma_ratio: float,
    mask: Tensor | None,
    compile: bool,
    method: str,
) -> tuple[Tensor, Tensor, Tensor]:
    """Validate the arguments, then ``(H(X), H(Y), H(X, Y))`` per sample from the chosen kernel and path."""
    bins = check_bins(bins)
    value_range = check_value_range(value_range)
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of: {', '.join(KERNELS)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    if not sigma_ratio > 0:
        raise ValueError(f"sigma_ratio must be > 0, got {sigma_ratio}")
    if kernel == "bspline":
        check_bspline_bins(bins)
    x, y, lo, hi, w = prepare(x, y, value_range, mask)
    with autocast_off(x):
        if method == "reference":
            return reference_entropies(x, y, bins, lo, hi, kernel, float(sigma_ratio), w)
        if kernel == "linear":
            p_xy = fuzzy_joint_pdf(x, y, bins, lo, hi, compile=compile, w=w)
        elif kernel == "bspline":
            p_xy = bspline_joint_pdf(x, y, bins, lo, hi, compile=compile, w=w)
        else:
            p_xy = gaussian_joint_pdf(x, y, bins, lo, hi, float(sigma_ratio), w)
        return entropies(p_xy)


def mutual_information(
    x: Tensor,
    y: Tensor,
    bins: int,
    value_range: tuple[float, float] | str = (0.0, 1.0),
    kernel: str = "linear",
    sigma_ratio: float = 0.5,
    *,
    mask: Tensor | None = None,
    compile: bool = False,
    method: str = "fast",
) -> Tensor:
    """Per-sample mutual information in nats, ``(B,)``, of paired inputs ``(B, ...)`` (Eq. 1-3).

    ``kernel="linear"`` uses the paper's fuzzy histograms (Eq. 14-16); ``kernel="gaussian"`` a Parzen
    window with ``sigma = sigma_ratio * bin spacing`` (matches MONAI's GlobalMutualInformationLoss up
    to its 1e-7 smoothing constants); ``kernel="bspline"`` Mattes et al.'s cubic B-spline window on
    ``x`` and a box car on ``y`` (ITK's Mattes MI, MONAI's ``kernel_type="b-spline"``; ``y`` gets no
    gradient; needs ``bins >= 5``). ``method="fast"`` (default) builds the joint histogram in one
    pass with a hand-written backward; ``method="reference"`` from ``(B, P, N)`` memberships with
    plain autograd (:mod:`deepmi.losses.reference`; slow, for reading). Both give the same values
    and gradients, with the mean of the one-sided derivatives at kinks (bin centres, range ends; see
    :mod:`deepmi.losses.binning`). ``compile=True`` compiles the linear and B-spline kernels'
    elementwise parts (falls back to eager with a warning if unavailable). Computed in float32 or
    float64 even under ``torch.autocast`` (float16 / bfloat16 inputs are promoted).

    ``value_range``: ``(lo, hi)``, the same for every sample (values outside are clamped; a warning
    says so when most are), or ``"auto"``: each sample of each input rescaled by its own (masked)
    min and max, treated as constants by autograd (:func:`deepmi.losses._masks.normalise_per_sample`).
    ``mask``: boolean or weights in [0, 1], broadcastable to the inputs: the histograms count only
    the masked voxels (weighted); a boolean mask gives exactly the MI of the selected voxels. A
    sample whose mask is empty raises ``ValueError``.
    """
    h_x, h_y, h_xy = _entropies(x, y, bins, value_range, kernel, sigma_ratio, mask, compile, method)
    return h_x + h_y - h_xy


def normalized_mutual_information(
    x: Tensor,
    y: Tensor,
    bins: int,
    value_range: tuple[float, float] | str = (0.0, 1.0),
    kernel: str = "linear",
    sigma_ratio: float = 0.5,
    *,
    mask: Tensor | None = None,
    compile: bool = False,
    method: str = "fast",
) -> Tensor:
    """Studholme et al.'s (1999) normalised MI ``(H(X) + H(Y)) / H(X, Y)`` per sample, ``(B,)``, in [1, 2].

    ``1 + I / H(X, Y)``: 1 for independent inputs, 2 when each determines the other. Unlike MI it
    does not grow when the overlap of two images shrinks to a region of lower joint entropy, which
    is why registration uses it (Studholme, Hill and Hawkes, Pattern Recognition 32, 1999). Where
    ``H(X, Y) = 0`` (both inputs constant on the counted voxels) it is defined as 1, with zero
    gradient. Arguments as :func:`mutual_information` (every kernel, path, range and mask).
    """
    h_x, h_y, h_xy = _entropies(x, y, bins, value_range, kernel, sigma_ratio, mask, compile, method)
    # the joint entropy bounds each marginal one: where it is (near) 0, so is the numerator's excess
    positive = h_xy > torch.finfo(h_xy.dtype).eps
    safe = torch.where(positive, h_xy, torch.ones_like(h_xy))
    return torch.where(positive, (h_x + h_y) / safe, torch.ones_like(h_xy))
