"""Deep InfoMax's encoder for MIGE's CIFAR experiment (MIGE Sec. 4.2, Table 1).

MIGE follows Hjelm et al. (2019): a DCGAN-style encoder of 3 convolutional and 2 fully
connected layers, probed by classifiers on three of its feature levels, ``conv``, ``fc(1024)``
and ``Y(64)``. The critics and the prior matching of DIM's baselines live with the objectives in
:mod:`deepmi.estimators` (``CriticInfoMaxObjective``, ``PriorMatching``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from deepmi.models.blocks import check_image_batch, check_widths


class DCGANFeatures(NamedTuple):
    """Feature levels of ``DCGANEncoder`` (shapes for 32x32 inputs and default widths).

    ``local``: second-to-last conv map (B, 128, 8, 8), DIM's local features.
    ``conv``: last conv map (B, 256, 4, 4), Table 1's "conv" probe.
    ``fc``: (B, 1024) after BN and ReLU, Table 1's "fc(1024)" probe.
    ``y``: (B, 64) linear output, the representation Y.
    """

    local: torch.Tensor
    conv: torch.Tensor
    fc: torch.Tensor
    y: torch.Tensor


def _conv_out_size(size: int, n_layers: int) -> int:
    """Spatial size after ``n_layers`` 4x4 stride-2 padding-1 convolutions."""
    for _ in range(n_layers):
        size = (size + 2 - 4) // 2 + 1
    return size


class DCGANEncoder(nn.Module):
    """DIM's DCGAN encoder (Hjelm et al. 2019, 32x32 setting).

    ``len(conv_widths)`` x [4x4 stride-2 conv (padding 1), BN, ReLU] (32 -> 16 -> 8 -> 4), then a
    fully connected layer of ``fc_dim`` units with BN and ReLU, then a linear layer to
    ``latent_dim``. Batch norm on every conv layer (including the first) follows DIM's released
    configuration for 32x32 images. ``forward`` returns a ``DCGANFeatures``.

    Args:
        in_channels: 3 for CIFAR.
        image_size: side of the square input; the fc layer's size depends on it.
        conv_widths: filters of the conv layers.
        fc_dim: units of the hidden fully connected layer.
        latent_dim: size of Y.
    """

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 32,
        conv_widths: Sequence[int] = (64, 128, 256),
        fc_dim: int = 1024,
        latent_dim: int = 64,
    ) -> None:
        super().__init__()
        conv_widths = check_widths(conv_widths, "conv_widths")
        self.in_channels = int(in_channels)
        self.image_size = int(image_size)
        self.conv_size = _conv_out_size(self.image_size, len(conv_widths))
        if self.conv_size < 1:
            raise ValueError(
                f"image_size={image_size} is too small for {len(conv_widths)} stride-2 conv layers; "
                f"use image_size >= {2 ** len(conv_widths)} or fewer conv_widths"
            )
        self.convs = nn.ModuleList()
        prev = self.in_channels
        for w in conv_widths:
            self.convs.append(
                nn.Sequential(
                    nn.Conv2d(prev, w, kernel_size=4, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(w),
                    nn.ReLU(inplace=True),
                )
            )
            prev = w
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(prev * self.conv_size**2, int(fc_dim), bias=False),
            nn.BatchNorm1d(int(fc_dim)),
            nn.ReLU(inplace=True),
        )
        self.out = nn.Linear(int(fc_dim), int(latent_dim))

    def forward(self, x: torch.Tensor) -> DCGANFeatures:
        check_image_batch(x, self.in_channels, "DCGANEncoder input")
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"DCGANEncoder was built for {self.image_size}x{self.image_size} inputs, got "
                f"{tuple(x.shape[-2:])}; resize the images or set image_size"
            )
        maps = []
        h = x
        for conv in self.convs:
            h = conv(h)
            maps.append(h)
        fc = self.fc(h)
        local = maps[-2] if len(maps) > 1 else maps[-1]
        return DCGANFeatures(local=local, conv=maps[-1], fc=fc, y=self.out(fc))
