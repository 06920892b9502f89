"""Deep InfoMax networks for MIGE's CIFAR experiment (MIGE Sec. 4.2, Table 1).

MIGE follows Hjelm et al. (2019): a DCGAN-style encoder of 3 convolutional and 2 fully
connected layers, probed by classifiers on three of its feature levels, ``conv``, ``fc(1024)``
and ``Y(64)``. The critics and the prior discriminator are DIM's baselines (JSD, InfoNCE, prior
matching) that MIGE compares against.

Score-matrix convention of the critics: ``scores[i, j]`` scores the pair (features of image
``i``, ``y`` of image ``j``); the diagonal holds the positive (joint) pairs, the off-diagonal
entries the negative (product-of-marginals) pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from deepmi.models.blocks import check_choice, check_image_batch, check_widths


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


class _Embed(nn.Module):
    """Two-layer ReLU MLP plus a linear shortcut (like DIM's MI networks).

    The shortcut gives the critic a useful linear score from the start; the nonlinear branch
    refines it. Works on vectors (B, D) or, with ``pointwise=True``, on maps (B, D, H, W) as 1x1
    convolutions.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, pointwise: bool = False) -> None:
        super().__init__()
        if pointwise:
            self.branch = nn.Sequential(
                nn.Conv2d(in_dim, hidden_dim, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden_dim, out_dim, 1)
            )
            self.shortcut = nn.Conv2d(in_dim, out_dim, 1, bias=False)
        else:
            self.branch = nn.Sequential(
                nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)
            )
            self.shortcut = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x) + self.shortcut(x)


def _check_pair(features: torch.Tensor, y: torch.Tensor, latent_dim: int) -> None:
    if y.dim() != 2 or y.shape[1] != latent_dim:
        raise ValueError(f"y must have shape (B, {latent_dim}), got {tuple(y.shape)}")
    if features.shape[0] != y.shape[0]:
        raise ValueError(
            f"features and y must have the same batch size, got {features.shape[0]} and {y.shape[0]}"
        )


class GlobalDIMCritic(nn.Module):
    """Separable global DIM critic ``T(f_i, y_j) = <phi(flatten(f_i)), psi(y_j)>``.

    ``phi`` embeds the whole feature map (B, C, S, S), ``psi`` embeds ``y``; both are MLPs with a
    linear shortcut to ``embed_dim`` units. Separable critics score all B x B pairs with one
    matrix product, as in DIM's encode-and-dot implementation. Returns the (B, B) score matrix
    (see the module docstring for its convention).

    Args:
        feature_channels, feature_size: shape (C, S, S) of the feature map (256, 4 for DCGAN conv).
        latent_dim: size of y.
        hidden_dim, embed_dim: hidden and output units of the embeddings (DIM used 2048 output
            units on GPU; 512 keeps CPU runs practical).
    """

    def __init__(
        self,
        feature_channels: int = 256,
        feature_size: int = 4,
        latent_dim: int = 64,
        hidden_dim: int = 512,
        embed_dim: int = 512,
    ) -> None:
        super().__init__()
        self.feature_shape = (int(feature_channels), int(feature_size), int(feature_size))
        self.latent_dim = int(latent_dim)
        flat = self.feature_shape[0] * self.feature_shape[1] * self.feature_shape[2]
        self.phi = _Embed(flat, int(hidden_dim), int(embed_dim))
        self.psi = _Embed(self.latent_dim, int(hidden_dim), int(embed_dim))

    def forward(self, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if tuple(features.shape[1:]) != self.feature_shape:
            raise ValueError(
                f"features must have shape (B, {', '.join(map(str, self.feature_shape))}), "
                f"got {tuple(features.shape)}"
            )
        _check_pair(features, y, self.latent_dim)
        return self.phi(features.flatten(1)) @ self.psi(y).T


class LocalDIMCritic(nn.Module):
    """Local DIM critic ``T(f_i^l, y_j) = <phi(f_i)[:, l], psi(y_j)>`` at every location ``l``.

    ``phi`` is a 1x1-conv MLP on the local feature map (B, C, H, W), ``psi`` an MLP on ``y``.
    With ``reduction="mean"`` the (B, B, H*W) scores are averaged over locations into a (B, B)
    matrix; with ``"none"`` the (B, B, H*W) tensor is returned, which DIM's local objective needs
    (the bound is applied per location, then averaged: apply it to ``scores[..., l]``).

    Args:
        feature_channels: channels C of the local map (128 for the DCGAN ``local`` features).
        latent_dim: size of y.
        hidden_dim, embed_dim: hidden and output units of the embeddings.
        reduction: ``"mean"`` or ``"none"``.
    """

    def __init__(
        self,
        feature_channels: int = 128,
        latent_dim: int = 64,
        hidden_dim: int = 512,
        embed_dim: int = 512,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        self.reduction = check_choice(reduction, "reduction", ("mean", "none"))
        self.feature_channels = int(feature_channels)
        self.latent_dim = int(latent_dim)
        self.phi = _Embed(self.feature_channels, int(hidden_dim), int(embed_dim), pointwise=True)
        self.psi = _Embed(self.latent_dim, int(hidden_dim), int(embed_dim))

    def forward(self, features: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_image_batch(features, self.feature_channels, "LocalDIMCritic features")
        _check_pair(features, y, self.latent_dim)
        local = self.phi(features).flatten(2)  # (B, E, L)
        scores = torch.einsum("iel,je->ijl", local, self.psi(y))
        return scores.mean(dim=2) if self.reduction == "mean" else scores


class PriorDiscriminator(nn.Module):
    """DIM's prior-matching discriminator: MLP ``latent_dim -> 1000 -> 200 -> 1`` with ReLUs.

    Returns logits (B,): high for samples of the prior, low for encoder outputs. The prior and
    the adversarial loss belong to the estimator (``deepmi.estimators``).
    """

    def __init__(self, latent_dim: int = 64, hidden: Sequence[int] = (1000, 200)) -> None:
        super().__init__()
        hidden = check_widths(hidden, "hidden")
        self.latent_dim = int(latent_dim)
        layers: list[nn.Module] = []
        prev = self.latent_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU(inplace=True)]
            prev = h
        layers.append(nn.Linear(prev, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 2 or y.shape[1] != self.latent_dim:
            raise ValueError(f"y must have shape (B, {self.latent_dim}), got {tuple(y.shape)}")
        return self.net(y).squeeze(1)
