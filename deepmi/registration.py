"""DeepMI's losses as the ``loss_fn`` of kornia's optimisation-based ``ImageRegistrator``.

kornia 0.9's ``ImageRegistrator`` calls ``loss_fn(warped, target, reduction="none")``, expects a
per-pixel map, keeps the pixels the warp covers (``warp(ones) > 0.9``) and averages them:
``loss.masked_select(valid).mean()``. Our losses give one value per sample (a histogram loss has no
per-pixel form), so :class:`RegistrationLoss` hands kornia a map that this masked mean turns back
into the loss:

- elementwise losses (``l1``, ``l2``): the true per-pixel map ``|a - b|`` / ``(a - b)^2``, so the
  mask applies exactly and ``l1`` registers exactly as kornia's default ``F.l1_loss``;
- every other loss (``ssim``, ``ssim_l2``, ``mi``, ``lmi``, any ``(pred, target) -> (B,)`` module):
  each sample's value repeated over its pixels. The masked mean of a constant is that constant, so
  kornia's value *and gradient* are the loss's. But the loss itself is computed on the whole frame,
  including the zero-filled area the warp does not cover, which kornia masks only afterwards.

:class:`MaskedImageRegistrator` removes that caveat for pixel-set losses (``l1 l2 mi lmi``): it hands
the loss only the covered pixels. See docs/choosing_a_loss.md for which loss to pick.

>>> import torch
>>> from kornia.geometry import ImageRegistrator
>>> src, dst = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
>>> reg = ImageRegistrator("similarity", loss_fn=RegistrationLoss("mi", bins=16), num_iterations=2)
>>> transform = reg.register(src, 1 - dst)  # (1, 3, 3)
"""

from __future__ import annotations

from typing import Any

import torch
from kornia.geometry import ImageRegistrator
from torch import Tensor, nn

from .losses import L1Loss, L2Loss, build_loss
from .losses._checks import check_pair

__all__ = ["RegistrationLoss", "MaskedImageRegistrator"]

_REDUCTIONS = ("none", "mean", "sum")
# kornia's own threshold on the warped ones image: bilinear edge pixels that blend in zero padding drop out
_COVERED = 0.9


class RegistrationLoss(nn.Module):
    """A deepmi image loss as a kornia-style ``loss_fn(a, b, reduction="none")``.

    Args:
        loss: a loss name for :func:`deepmi.losses.build_loss` (``l1 l2 ssim ssim_l2 mi lmi``) or a
            loss module. Modules with ``per_sample(pred, target) -> (B,)`` (all of deepmi's) are used
            through it, so their own ``reduction`` does not matter; any other module must return
            ``(B,)`` or a scalar.
        **kwargs: constructor arguments when ``loss`` is a name, e.g. ``bins=16``.

    ``forward(a, b, reduction="none")`` returns a tensor of ``a``'s shape whose mean over any
    non-empty set of one sample's elements is that sample's loss (for ``l1``/``l2``: the per-pixel
    error, whose mean over a set is the loss on that set). ``"mean"`` and ``"sum"`` reduce the map
    as ``torch.nn.functional.l1_loss`` would. Inputs: any ``(B, ...)`` layout the loss accepts
    (images ``(B, C, H, W)``, volumes ``(B, C, D, H, W)``, flattened pixel sets ``(B, P)``).
    """

    def __init__(self, loss: str | nn.Module, **kwargs: Any) -> None:
        super().__init__()
        if isinstance(loss, str):
            loss = build_loss(loss, **kwargs)
        elif kwargs:
            raise ValueError(f"keyword arguments {sorted(kwargs)} are only for a loss given by name")
        if not isinstance(loss, nn.Module):
            raise TypeError(f"loss must be a name or an nn.Module, got {type(loss).__name__}")
        self.loss = loss

    def per_sample(self, a: Tensor, b: Tensor) -> Tensor:
        """The wrapped loss per sample, ``(B,)``."""
        fn = getattr(self.loss, "per_sample", None)
        value = fn(a, b) if callable(fn) else self.loss(a, b)
        if value.numel() == 1:  # a batch-reduced module: its mean stands for every sample
            value = value.reshape(1).expand(a.shape[0])
        if value.shape != (a.shape[0],):
            raise ValueError(f"the loss must return one value per sample, got shape {tuple(value.shape)}")
        return value

    def loss_map(self, a: Tensor, b: Tensor) -> Tensor:
        """A tensor of ``a``'s shape whose mean over a sample's elements is the loss (see above)."""
        # kornia's masked path hands over (B, selected values): give it a channel axis, so the losses'
        # warning about 2-D inputs (an (H, W) image without its batch axis) does not fire on it
        a_in, b_in = (a[:, None], b[:, None]) if a.dim() == 2 else (a, b)
        if isinstance(self.loss, (L1Loss, L2Loss)):
            x, y = check_pair(a_in, b_in)  # the checks the loss itself would run (shapes, dtypes, NaN/inf)
            x, y = x.reshape(a.shape), y.reshape(a.shape)
            return (x - y).abs() if isinstance(self.loss, L1Loss) else (x - y).square()
        value = self.per_sample(a_in, b_in)
        return value.reshape(-1, *([1] * (a.dim() - 1))).expand(a.shape)

    def forward(self, a: Tensor, b: Tensor, reduction: str = "none") -> Tensor:
        if reduction not in _REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; choose one of: {', '.join(_REDUCTIONS)}")
        out = self.loss_map(a, b)
        if reduction == "mean":
            return out.mean()
        if reduction == "sum":
            return out.sum()
        return out

    def extra_repr(self) -> str:
        return "kornia loss_fn (a, b, reduction='none') -> map whose masked mean is the loss"


class MaskedImageRegistrator(ImageRegistrator):
    """kornia's ``ImageRegistrator`` whose loss sees only the pixels the warp covers.

    kornia computes the loss map on the whole frame and masks it afterwards, so a histogram loss
    (``mi``, ``lmi``) counts the zero-filled uncovered area as image content, an intensity class
    that grows and shrinks with the transform. This subclass selects the covered pixels first and
    calls ``loss_fn(a, b, reduction="mean")`` on them as a ``(B, P)`` pixel set; for elementwise
    losses that is exactly what kornia computes. Windowed losses (``ssim``, ``ssim_l2``) need the
    image grid and raise here: use ``ImageRegistrator`` with :class:`RegistrationLoss` for them.
    Same arguments as ``ImageRegistrator``.
    """

    def get_single_level_loss(self, img_src: Tensor, img_dst: Tensor, transform_model: Tensor) -> Tensor:
        if img_src.shape != img_dst.shape:
            raise ValueError(f"cannot register images of different shapes {img_src.shape} {img_dst.shape}")
        height, width = img_dst.shape[-2:]
        warper = self.warper(height, width)
        warped = warper(img_src, transform_model)
        # one transform for the whole batch, so every sample and channel covers the same pixels
        covered = (warper(torch.ones_like(img_src[:1, :1]), transform_model) > _COVERED).expand_as(warped)
        if not covered.any():  # the warp left the frame: NaN with zero gradient, as kornia's empty mean
            return warped.sum() * 0.0 + float("nan")
        batch = warped.shape[0]
        a = warped.masked_select(covered).reshape(batch, -1)
        b = img_dst.masked_select(covered).reshape(batch, -1)
        return self.loss_fn(a, b, reduction="mean")
