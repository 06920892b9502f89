"""The exact score of a minibatch's Gaussian mixture, the marginal of a Gaussian encoder.

For a stochastic encoder q(z|x) = N(mu(x), diag std(x)^2), the marginal over a batch of B inputs
is the mixture ``q(z) ~ (1/B) sum_j N(z; mu_j, std_j^2)``, whose score is known in closed form:

    grad_z log q(z) = sum_j w_j(z) * (-(z - mu_j) / std_j^2),   w(z) = softmax_j log N(z; mu_j, std_j^2)

It replaces SSGE's marginal score in MIGE-IB (Eq. 16-17) when the conditional score is exact too
(``loss=mige_ib_mixture``), so both entropy terms carry the same bias: SSGE's marginal score alone
is shrunk to ~0.1 of its size at K = 256 (``scripts/ssge_scale_bias.py``), which breaks the balance.
The batch mixture is exact for the batch, not for q(z) over the data: it bounds the MI estimate by
log B, and where the posteriors barely overlap each draw's own component takes nearly all the
weight, so the two scores coincide and the MI gradient nearly vanishes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["gaussian_mixture_score"]


def gaussian_mixture_score(z: Tensor, mu: Tensor, std: Tensor) -> Tensor:
    """``grad_z log (1/B) sum_j N(z; mu_j, diag std_j^2)`` at each row of ``z``.

    Args:
        z: (N, K) points.
        mu, std: (B, K) the components' means and standard deviations (std > 0).
    Returns:
        (N, K) scores, detached, in ``z``'s dtype.

    Computed in float64 through matrix products (no (N, B, K) tensor): the quadratic form is
    expanded as ``z^2 . (1/std^2) - 2 z . (mu/std^2) + mu^2 . (1/std^2)``, whose terms can be large
    and nearly cancel when std is small, which float32 would not survive.
    """
    if z.dim() != 2 or mu.dim() != 2 or mu.shape != std.shape or z.shape[1] != mu.shape[1]:
        raise ValueError(
            f"need z (N, K) and mu, std (B, K) with the same K; got {tuple(z.shape)}, "
            f"{tuple(mu.shape)}, {tuple(std.shape)}"
        )
    if not bool((std > 0).all()):
        raise ValueError("std must be > 0 everywhere (a zero std has no density)")
    z64, mu64 = z.detach().double(), mu.detach().double()
    precision = std.detach().double().pow(-2)  # (B, K)
    scaled_mu = mu64 * precision
    quadratic = z64.pow(2) @ precision.T - 2 * z64 @ scaled_mu.T + (mu64 * scaled_mu).sum(1)  # (N, B)
    log_norm = -precision.log().sum(1) / 2  # log prod_k std_jk, per component
    log_density = -0.5 * quadratic - log_norm - 0.5 * z.shape[1] * math.log(2 * math.pi)
    weights = torch.softmax(log_density, dim=1)  # (N, B)
    score = weights @ scaled_mu - z64 * (weights @ precision)
    return score.to(z.dtype)
