"""``nn.Module`` wrappers: ``forward(pred, target, mask=None) -> Tensor``, reduced over the batch."""

from __future__ import annotations

import warnings

from torch import Tensor, nn

from ._bspline import check_bspline_bins
from ._checks import check_bins
from ._compile import compile_supported
from ._masks import check_value_range
from .linearized_mi import METHODS, lmi
from .mi import KERNELS, mutual_information, normalized_mutual_information
from .mi import METHODS as MI_METHODS
from .pixel import SSIM_L2_ALPHA, l1, l2, ssim, ssim_l2

REDUCTIONS = ("mean", "sum", "none")


class _PairLoss(nn.Module):
    """Base: subclasses give per-sample losses ``(B,)``; ``reduction`` is "mean", "sum" or "none"."""

    # what an experiment trains with it (read by the runner's loss check): a loss between a
    # prediction and a target image; MI objectives (deepmi.estimators) say "infomax"/"bottleneck"
    family = "image"
    # whether per_sample takes mask= (voxel weights); forward refuses a mask otherwise
    takes_mask = True

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; choose one of: {', '.join(REDUCTIONS)}")
        self.reduction = reduction

    def per_sample(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """The reduced loss; ``mask`` (boolean or weights in [0, 1], broadcastable to the inputs)
        restricts it to the masked voxels."""
        if mask is None:
            loss = self.per_sample(pred, target)
        elif not self.takes_mask:
            raise ValueError(f"{type(self).__name__} takes no mask; use L1Loss, L2Loss or a histogram loss")
        else:
            loss = self.per_sample(pred, target, mask=mask)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


def _check_compile(compile: bool) -> bool:
    if compile:
        ok, why = compile_supported()
        if not ok:
            warnings.warn(f"compile=True but {why}; using eager kernels", RuntimeWarning, stacklevel=3)
            return False
    return bool(compile)


class LMILoss(_PairLoss):
    """L_LMI of DeepMI (Eq. 13) on fuzzy histograms with ``bins`` bins over ``value_range``.

    0 iff the two inputs put the same mass on the same bins pixel by pixel, at most 1. With
    linear memberships a value between two bin centres shares itself between them, so
    L_LMI(x, x) = mean over pixels of 1 - m_0^2 - m_1^2 > 0 there: minimising L_LMI also pulls
    predictions toward bin centres (see docs/losses.md).

    ``method``: "closed_form" (default; 1 - trace(p_xy), one elementwise pass), "histogram"
    (Eq. 13 term by term) or "reference" (plain autograd on ``(B, P, N)`` memberships, slow; see
    :mod:`deepmi.losses.reference`). ``compile=True`` runs the closed form's kernels through
    ``torch.compile``: ~5x faster than eager on CPU after a one-off compile of a few seconds; if
    compilation is unavailable it warns and runs eagerly.
    """

    def __init__(
        self,
        bins: int = 25,
        value_range: tuple[float, float] | str = (0.0, 1.0),
        method: str = "closed_form",
        reduction: str = "mean",
        compile: bool = False,
    ) -> None:
        super().__init__(reduction)
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
        self.bins = check_bins(bins)
        self.value_range = check_value_range(value_range)
        self.method = method
        self.compile = _check_compile(compile)

    def per_sample(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return lmi(pred, target, self.bins, self.value_range, self.method, mask=mask, compile=self.compile)

    def extra_repr(self) -> str:
        return (
            f"bins={self.bins}, value_range={self.value_range}, method={self.method!r}, "
            f"compile={self.compile}, {super().extra_repr()}"
        )


class MILoss(_PairLoss):
    """L_MI of DeepMI: the negative mutual information -I(pred; target) in nats (Eq. 1-3).

    The paper trains by maximising MI; as a loss to minimise that is -MI. MI is bounded above by
    min(H(pred), H(target)) <= log N, so -MI is bounded below by -H(target), not by 0: its optimum
    depends on the target's entropy and differs from image to image, and any invertible remapping
    of the predicted intensities (not just the identity) reaches it. :class:`NMILoss` normalises it
    (optimum -2 when each input determines the other) but still rewards any one-to-one intensity
    map, which is why the paper proposes L_LMI instead.

    ``kernel``: "linear" (the paper's fuzzy histogram), "gaussian" (a Parzen window with
    ``sigma = sigma_ratio`` bin spacings, as MONAI's GlobalMutualInformationLoss) or "bspline"
    (Mattes et al.'s cubic B-spline on ``pred``, a box car on ``target``, as ITK and MONAI's
    ``kernel_type="b-spline"``; ``target`` gets no gradient). ``value_range``: ``(lo, hi)`` or
    ``"auto"`` (each sample's own min / max). ``compile=True`` compiles the linear and B-spline
    kernels' elementwise parts. ``method``: "fast" (default) or "reference" (plain autograd on
    ``(B, P, N)`` memberships, slow; see :mod:`deepmi.losses.reference`). ``forward(pred, target,
    mask=None)``: see :func:`deepmi.losses.mutual_information`.
    """

    _value = staticmethod(mutual_information)

    def __init__(
        self,
        bins: int = 25,
        value_range: tuple[float, float] | str = (0.0, 1.0),
        kernel: str = "linear",
        sigma_ratio: float = 0.5,
        reduction: str = "mean",
        compile: bool = False,
        method: str = "fast",
    ) -> None:
        super().__init__(reduction)
        if method not in MI_METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(MI_METHODS)}")
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; choose one of: {', '.join(KERNELS)}")
        if not sigma_ratio > 0:
            raise ValueError(f"sigma_ratio must be > 0, got {sigma_ratio}")
        self.bins = check_bins(bins)
        if kernel == "bspline":
            check_bspline_bins(self.bins)
        self.value_range = check_value_range(value_range)
        self.kernel = kernel
        self.sigma_ratio = float(sigma_ratio)
        self.method = method
        self.compile = _check_compile(compile)

    def per_sample(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        value = self._value(
            pred,
            target,
            self.bins,
            self.value_range,
            self.kernel,
            self.sigma_ratio,
            mask=mask,
            compile=self.compile,
            method=self.method,
        )
        return -value

    def extra_repr(self) -> str:
        return (
            f"bins={self.bins}, value_range={self.value_range}, kernel={self.kernel!r}, "
            f"sigma_ratio={self.sigma_ratio}, method={self.method!r}, compile={self.compile}, "
            f"{super().extra_repr()}"
        )


class NMILoss(MILoss):
    """The negative normalised MI, -(H(pred) + H(target)) / H(pred, target) (Studholme 1999), in [-2, -1].

    Arguments as :class:`MILoss`; see :func:`deepmi.losses.normalized_mutual_information`.
    """

    _value = staticmethod(normalized_mutual_information)


class L1Loss(_PairLoss):
    """Mean absolute error per sample."""

    def per_sample(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return l1(pred, target, mask=mask)


class L2Loss(_PairLoss):
    """Mean squared error per sample."""

    def per_sample(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        return l2(pred, target, mask=mask)


class SSIMLoss(_PairLoss):
    """Godard et al.'s SSIM loss (1 - SSIM) / 2 with a 3x3 box window, for images in [0, 1]."""

    takes_mask = False

    def per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        return ssim(pred, target)


class SSIML2Loss(_PairLoss):
    """``alpha * SSIM loss + (1 - alpha) * L2``; alpha = 0.85 (Godard's weight; the paper gives none)."""

    takes_mask = False

    def __init__(self, alpha: float = SSIM_L2_ALPHA, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = float(alpha)

    def per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        return ssim_l2(pred, target, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, {super().extra_repr()}"
