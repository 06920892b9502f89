"""Mutual information of fuzzy pdfs (DeepMI Sec. 3, Eq. 1-3), with a linear or a Gaussian kernel.

``kernel="linear"``: the paper's fuzzy histograms (Eq. 15-16), built in one pass over the pixels.
``kernel="gaussian"``: a Parzen window of width ``sigma = sigma_ratio * bin spacing`` whose weights
are normalised per value, the estimator of MONAI's ``GlobalMutualInformationLoss(kernel_type=
"gaussian")`` (Guo 2019, after DeepReg). Its weights are computed only on the few bins where they
exceed the dtype's rounding (:mod:`._parzen`); the linear kernel touches 2 bins (4 in the joint).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import autocast_off, check_bins, check_pair, check_range
from ._parzen import ParzenJointCounts
from .fuzzy import fuzzy_joint_pdf
from .reference import reference_mi

KERNELS = ("linear", "gaussian")
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


def gaussian_joint_pdf(x: Tensor, y: Tensor, bins: int, lo: float, hi: float, sigma_ratio: float) -> Tensor:
    """Parzen-window joint pdf ``(B, N, N)``: the pixel mean of outer products of the weights
    (truncated where they fall below rounding, see :mod:`._parzen`)."""
    x2, y2 = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    return ParzenJointCounts.apply(x2, y2, bins, lo, hi, sigma_ratio) / x2.shape[1]


def mutual_information(
    x: Tensor,
    y: Tensor,
    bins: int,
    value_range: tuple[float, float] = (0.0, 1.0),
    kernel: str = "linear",
    sigma_ratio: float = 0.5,
    *,
    compile: bool = False,
    method: str = "fast",
) -> Tensor:
    """Per-sample mutual information in nats, ``(B,)``, of paired inputs ``(B, ...)`` (Eq. 1-3).

    ``kernel="linear"`` uses the paper's fuzzy histograms (Eq. 14-16); ``kernel="gaussian"`` a Parzen
    window with ``sigma = sigma_ratio * bin spacing`` (matches MONAI's GlobalMutualInformationLoss up
    to its 1e-7 smoothing constants). ``method="fast"`` (default) builds the joint histogram in one
    pass with a hand-written backward; ``method="reference"`` from ``(B, P, N)`` memberships with
    plain autograd (:mod:`deepmi.losses.reference`; slow, for reading). Both give the same values
    and gradients, with the mean of the one-sided derivatives at kinks (bin centres, range ends; see
    :mod:`deepmi.losses.binning`). ``compile=True`` compiles the linear kernel's histogram and
    gradient kernels (falls back to eager with a warning if unavailable). Computed in float32 or
    float64 even under ``torch.autocast``. Values outside ``value_range`` are clamped; a warning
    says so when most are.
    """
    bins = check_bins(bins)
    lo, hi = check_range(value_range)
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of: {', '.join(KERNELS)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    if not sigma_ratio > 0:
        raise ValueError(f"sigma_ratio must be > 0, got {sigma_ratio}")
    x, y = check_pair(x, y, value_range=(lo, hi))
    with autocast_off(x):
        if method == "reference":
            return reference_mi(x, y, bins, lo, hi, kernel, float(sigma_ratio))
        if kernel == "linear":
            p_xy = fuzzy_joint_pdf(x, y, bins, lo, hi, compile=compile)
        else:
            p_xy = gaussian_joint_pdf(x, y, bins, lo, hi, float(sigma_ratio))
        return mi_from_joint(p_xy)
