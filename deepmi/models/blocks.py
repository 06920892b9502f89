"""Shared building blocks of DeepMI's encoder-decoders (Sec. 5: 3x3 filters, five stages).

A stage is two 3x3 convolutions, each followed by an optional batch norm and a ReLU, as in
U-Net (Ronneberger et al. 2015, DeepMI's reference [31]). The helpers here validate the
plain-number constructor arguments that Hydra passes in, so that every network fails early with
a message that names the bad argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "none")


def check_widths(widths: Sequence[int], name: str = "widths", min_len: int = 1) -> tuple[int, ...]:
    """Return ``widths`` as a tuple of positive ints, or raise ``ValueError`` naming the problem."""
    try:
        out = tuple(int(w) for w in widths)
        integral = all(o == w for o, w in zip(out, widths, strict=True))  # rejects 16.5, "16"
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a list of positive ints, got {widths!r}") from err
    if len(out) < min_len or not integral or any(w <= 0 for w in out):
        raise ValueError(f"{name} must be a list of at least {min_len} positive ints, got {widths!r}")
    return out


def check_positive(value: float, name: str) -> float:
    """Return ``float(value)`` if it is finite and > 0, else raise ``ValueError``."""
    value = float(value)
    if not (value > 0 and value != float("inf")):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def check_choice(value: str, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_image_batch(x: torch.Tensor, channels: int, name: str = "input") -> None:
    """Raise ``ValueError`` unless ``x`` is a (B, channels, H, W) floating-point tensor."""
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"{name} must have shape (B, {channels}, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; call .float()")


class ConvNormReLU(nn.Sequential):
    """``kernel x kernel`` convolution, optional batch norm, ReLU.

    The convolution has no bias when batch norm follows (the norm's shift makes it redundant).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, norm: str = "batch"
    ) -> None:
        check_choice(norm, "norm", NORMS)
        use_bn = norm == "batch"
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                bias=not use_bn,
            )
        ]
        if use_bn:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """One encoder-decoder stage: two 3x3 ``ConvNormReLU`` at a fixed resolution."""

    def __init__(self, in_channels: int, out_channels: int, norm: str = "batch") -> None:
        super().__init__(
            ConvNormReLU(in_channels, out_channels, 3, norm=norm),
            ConvNormReLU(out_channels, out_channels, 3, norm=norm),
        )


class Encoder(nn.Module):
    """Five-stage (by default) 3x3 conv encoder: ``DoubleConv`` per stage, 2x2 max-pool between.

    Returns the feature map of every stage, full resolution first, so a U-Net can use them as
    skip connections and a regressor can pool the last one. Stage ``k`` (0-based) has spatial
    size ``H / 2**k``; the input must therefore be divisible by ``2**(len(widths) - 1)``.
    """

    def __init__(self, in_channels: int, widths: Sequence[int], norm: str = "batch") -> None:
        super().__init__()
        widths = check_widths(widths)
        self.stages = nn.ModuleList()
        prev = int(in_channels)
        for w in widths:
            self.stages.append(DoubleConv(prev, w, norm=norm))
            prev = w

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = stage(x)
            feats.append(x)
        return feats


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad ``x`` (B, C, H, W) on the bottom/right so H and W divide ``multiple``.

    Replicate padding, because zeros would add a fake dark border that the network must learn to
    ignore. Returns the padded tensor and the original ``(H, W)`` for cropping the output back.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x, (h, w)
