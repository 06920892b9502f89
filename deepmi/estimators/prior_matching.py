"""Deep InfoMax's prior matching (Hjelm et al. 2019, Sec. 3.3 / Eq. 7).

A discriminator D tells samples of a prior V (uniform on [low, high]^K, as in DIM) from encoder
outputs z; the encoder is trained to fool it. We use the non-saturating GAN losses with logits:

- discriminator side: ``mean softplus(-D(v)) + mean softplus(D(z))`` (binary cross-entropy,
  prior = real), minimised by D; at the optimal D it equals ``2 log 2 - 2 JSD(V, Q_z)``.
- encoder side: ``mean softplus(-D(z))``, minimised by the encoder.

DIM's prior is uniform on [0, 1]: squash z into that range (e.g. with a sigmoid) before calling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .critics import mlp

__all__ = ["PriorMatching", "prior_matching_losses"]


def prior_matching_losses(
    discriminator: nn.Module, z: Tensor, prior_samples: Tensor
) -> tuple[Tensor, Tensor]:
    """Return ``(encoder_loss, discriminator_loss)`` for encoder outputs z and prior samples.

    The discriminator loss sees ``z.detach()`` so that minimising it never moves the encoder; the
    encoder loss does reach D's parameters, so step D with its own optimizer after zeroing grads.
    """
    if z.shape != prior_samples.shape or z.dim() != 2:
        raise ValueError(
            f"z and prior_samples must both be (B, K), got {tuple(z.shape)} and {tuple(prior_samples.shape)}"
        )
    d_prior = discriminator(prior_samples).squeeze(-1)
    d_fake = discriminator(z.detach()).squeeze(-1)
    discriminator_loss = F.softplus(-d_prior).mean() + F.softplus(d_fake).mean()
    encoder_loss = F.softplus(-discriminator(z).squeeze(-1)).mean()
    return encoder_loss, discriminator_loss


class PriorMatching(nn.Module):
    """Uniform prior + MLP discriminator (DIM: two hidden layers of 1000 and 200 units).

    ``forward(z) -> (encoder_loss, discriminator_loss)``; prior samples are drawn fresh each call.
    """

    def __init__(
        self, dim: int, hidden_dims: tuple[int, int] = (1000, 200), low: float = 0.0, high: float = 1.0
    ):
        super().__init__()
        if not high > low:
            raise ValueError(f"prior range needs high > low, got [{low}, {high}]")
        h1, h2 = hidden_dims
        self.dim, self.low, self.high = dim, low, high
        self.discriminator = nn.Sequential(nn.Linear(dim, h1), nn.ReLU(), mlp(h1, h2, 1, n_hidden=1))

    def sample_prior(self, like: Tensor) -> Tensor:
        return torch.rand_like(like) * (self.high - self.low) + self.low

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"z must be (B, {self.dim}), got {tuple(z.shape)}")
        return prior_matching_losses(self.discriminator, z, self.sample_prior(z.detach()))
