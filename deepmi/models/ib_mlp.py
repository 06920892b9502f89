"""Networks of MIGE's Information Bottleneck experiment (MIGE Sec. 4.3, Table 2).

MIGE keeps the model of Alemi et al.'s Deep Variational Information Bottleneck (2017) on
permutation-invariant MNIST: an MLP 784-1024-1024-2K (K = 256) whose output parameterises a
diagonal Gaussian encoder ``q(z|x)``, and a single linear softmax layer as decoder ``q(y|z)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deepmi.models.blocks import check_widths


class GaussianMLPEncoder(nn.Module):
    """Stochastic encoder ``z = mu(x) + sigma(x) * eps``, ``eps ~ N(0, I)`` (reparameterisation).

    ReLU MLP ``in_dim -> hidden -> 2 * latent_dim``; the first half is ``mu``, the second half
    ``r`` gives ``sigma = softplus(r - std_shift)``. The shift of 5 follows Alemi et al.'s
    released code: every ``sigma`` starts near ``softplus(-5) ~ 0.007``, so the untrained encoder
    is almost deterministic and the classifier can learn before the bottleneck tightens.
    ``std_shift=0`` gives the plain softplus.

    ``forward`` always samples (also in eval mode); use the returned ``mu`` for a deterministic
    code. Inputs may be (B, in_dim) or images (B, 1, 28, 28); they are flattened. The input
    scaling (Alemi et al. feed ``2 * x - 1`` for x in [0, 1]) is the data pipeline's job.

    Returns:
        ``(z, mu, sigma)``, each (B, latent_dim).
    """

    def __init__(
        self,
        in_dim: int = 784,
        hidden: Sequence[int] = (1024, 1024),
        latent_dim: int = 256,
        std_shift: float = 5.0,
    ) -> None:
        super().__init__()
        hidden = check_widths(hidden, "hidden", min_len=0)
        self.in_dim = int(in_dim)
        self.latent_dim = int(latent_dim)
        self.std_shift = float(std_shift)
        layers: list[nn.Module] = []
        prev = self.in_dim
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU(inplace=True)]
            prev = h
        layers.append(nn.Linear(prev, 2 * self.latent_dim))
        self.net = nn.Sequential(*layers)

    def gaussian_params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, sigma)`` of ``q(z|x)``, each (B, latent_dim); sigma > 0."""
        if x.dim() < 2 or x[0].numel() != self.in_dim:
            raise ValueError(
                f"GaussianMLPEncoder expects (B, {self.in_dim}) or (B, ...) with {self.in_dim} values "
                f"per sample, got {tuple(x.shape)}"
            )
        mu, r = self.net(x.flatten(1)).chunk(2, dim=1)
        return mu, F.softplus(r - self.std_shift)

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``z = mu + sigma * eps`` with ``eps ~ N(0, I)``; differentiable in mu and sigma."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + sigma * eps

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, sigma = self.gaussian_params(x)
        return self.reparameterize(mu, sigma), mu, sigma


class SoftmaxDecoder(nn.Module):
    """Decoder ``q(y|z)``: one linear layer to class logits, as in Alemi et al. (2017).

    Returns logits (B, n_classes); the softmax lives in the cross-entropy loss.
    """

    def __init__(self, latent_dim: int = 256, n_classes: int = 10) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.linear = nn.Linear(self.latent_dim, int(n_classes))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have last dimension {self.latent_dim}, got shape {tuple(z.shape)}")
        return self.linear(z)
