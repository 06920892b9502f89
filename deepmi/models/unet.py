"""U-Net (Ronneberger et al. 2015), the encoder-decoder of DeepMI's Exp2 and Exp3 (Sec. 5).

DeepMI Sec. 5: "The encoder-decoders have a filter size of 3x3 and number of filters 16, 32,
64, 128, 256 for the five stages". Exp2 feeds the stacked ``(I_s, I_t)`` and predicts a sigmoid
mask ``M_s`` with ``I_s * M_s -> I_t``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepmi.models.blocks import (
    NORMS,
    DoubleConv,
    Encoder,
    check_choice,
    check_image_batch,
    check_widths,
    pad_to_multiple,
)

UPSAMPLE_MODES = ("bilinear", "transpose")
OUT_ACTIVATIONS = ("sigmoid", "tanh", "none")


class _UpStage(nn.Module):
    """Upsample x2 to the skip's width, concatenate the skip, then a ``DoubleConv``."""

    def __init__(self, in_channels: int, skip_channels: int, upsample: str, norm: str) -> None:
        super().__init__()
        if upsample == "transpose":
            # Ronneberger's "up-convolution": a learned 2x2 stride-2 deconvolution.
            self.up = nn.ConvTranspose2d(in_channels, skip_channels, kernel_size=2, stride=2)
        else:
            # Bilinear x2 then a 1x1 channel reduction: no checkerboard artefacts, which matter
            # for masks and disparities that are later compared pixel by pixel.
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, skip_channels, kernel_size=1),
            )
        self.conv = DoubleConv(2 * skip_channels, skip_channels, norm=norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNet(nn.Module):
    """U-Net with 3x3 convolutions, ``len(widths)`` stages and skip connections.

    Encoder: ``DoubleConv`` (two 3x3 conv-BN-ReLU) per stage, 2x2 max-pool between stages.
    Decoder: per stage, upsample x2 (``"bilinear"`` + 1x1 conv by default, or ``"transpose"``
    for Ronneberger's 2x2 up-convolution), concatenate the encoder's skip, ``DoubleConv``.
    Head: 1x1 conv to ``out_channels`` and ``out_activation``. Convolutions are padded, so the
    output has the input's size; inputs whose sides are not divisible by ``2**(stages-1)``
    (16 for five stages) are replicate-padded on the bottom/right and the output is cropped back.

    Args:
        in_channels: input channels (2 for Exp2's stacked ``(I_s, I_t)``).
        out_channels: output channels.
        widths: filters per stage; the paper uses (16, 32, 64, 128, 256).
        out_activation: ``"sigmoid"`` (masks in (0, 1)), ``"tanh"`` or ``"none"`` (logits).
        upsample: ``"bilinear"`` or ``"transpose"``.
        norm: ``"batch"`` or ``"none"``.
    """

    def __init__(
        self,
        in_channels: int = 2,
        out_channels: int = 1,
        widths: Sequence[int] = (16, 32, 64, 128, 256),
        out_activation: str = "sigmoid",
        upsample: str = "bilinear",
        norm: str = "batch",
    ) -> None:
        super().__init__()
        widths = check_widths(widths, min_len=2)
        check_choice(out_activation, "out_activation", OUT_ACTIVATIONS)
        check_choice(upsample, "upsample", UPSAMPLE_MODES)
        check_choice(norm, "norm", NORMS)
        self.in_channels = int(in_channels)
        self.out_activation = out_activation
        self.multiple = 2 ** (len(widths) - 1)
        self.encoder = Encoder(self.in_channels, widths, norm=norm)
        self.decoder = nn.ModuleList(
            _UpStage(widths[k + 1], widths[k], upsample, norm) for k in reversed(range(len(widths) - 1))
        )
        self.head = nn.Conv2d(widths[0], int(out_channels), kernel_size=1)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-activation output (B, out_channels, H, W)."""
        check_image_batch(x, self.in_channels, "UNet input")
        x, (h, w) = pad_to_multiple(x, self.multiple)
        feats = self.encoder(x)
        y = feats[-1]
        for up, skip in zip(self.decoder, reversed(feats[:-1]), strict=True):
            y = up(y, skip)
        return self.head(y)[..., :h, :w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, in_channels, H, W) to (B, out_channels, H, W) after ``out_activation``."""
        logits = self.forward_logits(x)
        if self.out_activation == "sigmoid":
            return torch.sigmoid(logits)
        if self.out_activation == "tanh":
            return torch.tanh(logits)
        return logits
