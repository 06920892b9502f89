"""Critics ``T(x, y)`` that turn a batch of pairs into the (B, B) score matrix of ``bounds``.

- ``SeparableCritic``: ``T(x, y) = g(x) . h(y)``, all B^2 scores from one matrix product (as in the
  released MIGE toy and CPC); cheap for large B.
- ``ConcatCritic``: ``T(x, y) = f([x, y])`` evaluated on all B^2 pairs; more expressive, B^2 forwards.
- ``CriticMIEstimator``: a critic plus a bound, ``forward(x, y) -> scalar`` MI estimate.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .bounds import BOUNDS, MINEBound

__all__ = ["ConcatCritic", "CriticMIEstimator", "SeparableCritic", "mlp"]


def mlp(in_dim: int, hidden_dim: int, out_dim: int, n_hidden: int = 2) -> nn.Sequential:
    """``n_hidden`` ReLU layers of width ``hidden_dim`` followed by a linear output layer."""
    if min(in_dim, hidden_dim, out_dim) < 1 or n_hidden < 0:
        raise ValueError(f"mlp sizes must be positive, got {in_dim=}, {hidden_dim=}, {out_dim=}, {n_hidden=}")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(n_hidden):
        layers += [nn.Linear(width, hidden_dim), nn.ReLU()]
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    if x.dim() < 2 or y.dim() < 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must be (B, ...) with the same B, got {tuple(x.shape)}, {tuple(y.shape)}")
    return x.flatten(1), y.flatten(1)


class SeparableCritic(nn.Module):
    """``scores = g(x) @ h(y).T`` with two MLPs (inputs flattened after dim 0)."""

    def __init__(self, x_dim: int, y_dim: int, hidden_dim: int = 256, embed_dim: int = 32, n_hidden: int = 2):
        super().__init__()
        self.g = mlp(x_dim, hidden_dim, embed_dim, n_hidden)
        self.h = mlp(y_dim, hidden_dim, embed_dim, n_hidden)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        xf, yf = _pair(x, y)
        return self.g(xf) @ self.h(yf).T


class ConcatCritic(nn.Module):
    """``scores[i, j] = f([x_i, y_j])`` with one MLP on the concatenation (B^2 evaluations)."""

    def __init__(self, x_dim: int, y_dim: int, hidden_dim: int = 256, n_hidden: int = 2):
        super().__init__()
        self.f = mlp(x_dim + y_dim, hidden_dim, 1, n_hidden)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        xf, yf = _pair(x, y)
        b = xf.shape[0]
        pairs = torch.cat([xf.unsqueeze(1).expand(b, b, -1), yf.unsqueeze(0).expand(b, b, -1)], dim=-1)
        return self.f(pairs).squeeze(-1)


class CriticMIEstimator(nn.Module):
    """Critic + bound: ``forward(x, y)`` returns the MI lower-bound estimate (maximise it).

    Args:
        critic: module mapping (x, y) batches to a (B, B) score matrix.
        bound: ``"mine"`` (DV with moving-average gradient correction), ``"dv"``, ``"nwj"`` (MINE-f),
            ``"jsd"`` or ``"infonce"``.
        ema_decay: moving-average decay for ``"mine"``.
    """

    def __init__(self, critic: nn.Module, bound: str = "mine", ema_decay: float = 0.99):
        super().__init__()
        valid = ["mine", *BOUNDS]
        if bound not in valid:
            raise ValueError(f"unknown bound {bound!r}; valid: {valid}")
        self.critic = critic
        self.bound_name = bound
        self.mine = MINEBound(ema_decay) if bound == "mine" else None

    def forward(self, x: Tensor, y: Tensor, update_ema: bool = True) -> Tensor:
        scores = self.critic(x, y)
        if self.mine is not None:
            return self.mine(scores, update_ema=update_ema)
        return BOUNDS[self.bound_name](scores)
