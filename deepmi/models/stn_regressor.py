"""Localisation network of DeepMI's Exp1 (bar alignment, Sec. 5, Fig. 1a).

The network sees the source and target images stacked as channels and regresses the two
degrees of freedom of the rigid motion between them: a horizontal shift ``tx`` (pixels) and an
in-plane rotation ``theta`` (degrees). A spatial transformer (``deepmi.models.warp``) then warps
the source with these parameters, and the loss compares the warped source with the target.

The head's three choices (pooling, last-layer init, output parameterisation) were decided by an
ablation at the paper's own optimizer (``scripts/ablate_exp1_head.py``, RESULTS.md "Exp1 head
ablation"): a head that keeps the spatial layout and starts from PyTorch's default init learns
with every loss; the earlier global-average-pooled head with a 1e-4 last layer did not learn at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepmi.models.blocks import (
    ConvNormReLU,
    check_choice,
    check_image_batch,
    check_positive,
    check_widths,
)

HEAD_INITS = ("default", "scaled", "small", "zero")
OUTPUTS = ("tanh", "linear")
# "scaled": PyTorch's default init times this factor (a near-identity start that still passes
# gradient to the features); "small": N(0, _SMALL_STD^2) weights (the head this project used first).
_SCALED_FACTOR = 0.1
_SMALL_STD = 1e-4


class STNRegressor(nn.Module):
    """Regress ``(tx, theta)`` from the concatenated ``(I_s, I_t)``.

    Architecture (3x3 filters, five stages of ``widths`` as in DeepMI Sec. 5): each stage is a
    stride-2 3x3 ``conv-BN-ReLU`` followed by a stride-1 3x3 ``conv-BN-ReLU`` (192x640 -> 6x20).
    Then adaptive average pooling to ``pool_size`` (``(3, 10)`` keeps a coarse map of where the
    bar is; ``1`` is global average pooling, which discards position and hence ``tx``), flatten,
    a hidden fully connected layer with ReLU and a linear layer to two raw outputs ``(a, b)``,
    mapped to the motion by ``output``:

    * ``"tanh"``:   ``tx = tx_range * tanh(a)``, ``theta = theta_range * tanh(b)`` (bounded to the
      data's ranges, so the warp never sees absurd parameters);
    * ``"linear"``: ``tx = tx_range * a``, ``theta = theta_range * b`` (unbounded, in units of the
      ranges, as Jaderberg et al.'s STN regresses normalised affine parameters).

    ``head_init`` sets the last layer's weights (its bias is always zero, so the mean prediction
    starts at the identity warp): ``"default"`` PyTorch's init, ``"scaled"`` that times 0.1,
    ``"small"`` N(0, 1e-4^2), ``"zero"`` zeros (the STN paper's recipe; the features then get no
    gradient on the first step).

    Args:
        in_channels: channels of the stacked input (2 for grayscale ``I_s`` and ``I_t``).
        widths: filters per stage; the paper uses (16, 32, 64, 128, 256).
        tx_range: scale (and, for ``"tanh"``, bound) of ``tx`` in pixels.
        theta_range: scale (and bound) of ``theta`` in degrees.
        hidden_dim: units of the hidden fully connected layer.
        pool_size: output grid of the adaptive average pooling (int or (rows, cols)).
        norm: ``"batch"`` or ``"none"``.
        head_init: one of ``"default"``, ``"scaled"``, ``"small"``, ``"zero"``.
        output: ``"tanh"`` or ``"linear"``.
    """

    def __init__(
        self,
        in_channels: int = 2,
        widths: Sequence[int] = (16, 32, 64, 128, 256),
        tx_range: float = 100.0,
        theta_range: float = 40.0,
        hidden_dim: int = 128,
        pool_size: int | Sequence[int] = (3, 10),
        norm: str = "batch",
        head_init: str = "default",
        output: str = "tanh",
    ) -> None:
        super().__init__()
        widths = check_widths(widths)
        self.in_channels = int(in_channels)
        self.tx_range = check_positive(tx_range, "tx_range")
        self.theta_range = check_positive(theta_range, "theta_range")
        self.head_init = check_choice(head_init, "head_init", HEAD_INITS)
        self.output = check_choice(output, "output", OUTPUTS)
        pool = _pool_grid(pool_size)

        layers: list[nn.Module] = []
        prev = self.in_channels
        for w in widths:
            layers += [ConvNormReLU(prev, w, 3, stride=2, norm=norm), ConvNormReLU(w, w, 3, norm=norm)]
            prev = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(prev * pool[0] * pool[1], int(hidden_dim)),
            nn.ReLU(inplace=True),
            nn.Linear(int(hidden_dim), 2),
        )
        _init_last_layer(self.head[-1], self.head_init)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map (B, in_channels, H, W) to ``(tx, theta)``, two (B,) tensors in px and degrees."""
        check_image_batch(x, self.in_channels, "STNRegressor input")
        raw = self.head(self.pool(self.features(x)))
        if self.output == "tanh":
            raw = torch.tanh(raw)
        return self.tx_range * raw[:, 0], self.theta_range * raw[:, 1]


def _pool_grid(pool_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(pool_size, int | float):
        pool = (int(pool_size),) * 2
    else:
        pool = tuple(int(p) for p in pool_size)
    if len(pool) != 2 or min(pool) < 1:
        raise ValueError(f"pool_size must be an int >= 1 or a pair of them, got {pool_size!r}")
    return pool


def _init_last_layer(layer: nn.Linear, how: str) -> None:
    nn.init.zeros_(layer.bias)
    if how == "scaled":
        with torch.no_grad():
            layer.weight.mul_(_SCALED_FACTOR)
    elif how == "small":
        nn.init.normal_(layer.weight, std=_SMALL_STD)
    elif how == "zero":
        nn.init.zeros_(layer.weight)
