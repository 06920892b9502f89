"""Deep Variational Information Bottleneck's rate term (Alemi et al. 2017, Eq. 6-7).

For a diagonal Gaussian encoder ``q(z|x) = N(mu, diag(std^2))`` and the prior ``r(z) = N(0, I)``,
``I(x; z) <= E_x KL(q(z|x) || r(z))`` with
``KL = 0.5 * sum_k (mu_k^2 + std_k^2 - 1 - log std_k^2)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["gaussian_kl_to_standard_normal"]


def gaussian_kl_to_standard_normal(
    mu: Tensor, std: Tensor | None = None, *, logvar: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """KL(N(mu, diag std^2) || N(0, I)) summed over the last dim.

    Args:
        mu: (B, K) means.
        std: (B, K) positive standard deviations, or pass ``logvar`` (log std^2) instead.
        reduction: ``"mean"`` over the batch (VIB's rate term), ``"sum"`` or ``"none"`` (per sample).
    """
    if (std is None) == (logvar is None):
        raise ValueError("pass exactly one of std and logvar")
    if std is not None:
        if std.shape != mu.shape:
            raise ValueError(f"std {tuple(std.shape)} must match mu {tuple(mu.shape)}")
        if not bool((std > 0).all()):
            raise ValueError("std must be strictly positive (use softplus or exp on the encoder output)")
        logvar = 2.0 * torch.log(std)
    assert logvar is not None
    if logvar.shape != mu.shape:
        raise ValueError(f"logvar {tuple(logvar.shape)} must match mu {tuple(mu.shape)}")
    kl = 0.5 * (mu * mu + logvar.exp() - 1.0 - logvar).sum(-1)
    if reduction == "mean":
        return kl.mean()
    if reduction == "sum":
        return kl.sum()
    if reduction == "none":
        return kl
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
