"""Critic-based MI lower bounds on a (B, B) score matrix ``scores[i, j] = T(x_i, y_j)``.

The diagonal holds the positive (joint) pairs; the B(B-1) off-diagonal pairs stand in for samples of
the product of marginals. Every function returns a scalar that is higher for more MI; maximise it
(minimise its negative) to train the critic.

- ``dv_bound``: Donsker-Varadhan, ``E_P[T] - log E_Q[e^T]`` (MINE, Belghazi et al. 2018, Eq. 2).
- ``MINEBound``: the same value with MINE's moving-average correction of the gradient's
  minibatch bias (Belghazi et al. 2018, Sec. 3.2).
- ``nwj_bound``: f-divergence / NWJ, ``E_P[T] - E_Q[e^(T-1)]`` (MINE-f).
- ``jsd_bound``: Deep InfoMax's Jensen-Shannon estimator, softplus form
  ``E_P[log 2 - sp(-T)] - E_Q[sp(T) - log 2]`` (f-GAN's bound on 2 JSD; at most 2 log 2).
- ``infonce_bound``: ``log B + mean_i log_softmax_j(T)[i, i]`` (CPC); never exceeds ``log B``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BOUNDS", "MINEBound", "dv_bound", "infonce_bound", "jsd_bound", "nwj_bound"]

_LOG2 = math.log(2.0)


def _check_scores(scores: Tensor) -> int:
    if not isinstance(scores, Tensor) or scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(f"scores must be a square (B, B) critic matrix, got {shape}")
    if scores.shape[0] < 2:
        raise ValueError("scores need B >= 2: the off-diagonal pairs are the negatives")
    return scores.shape[0]


def _off_diagonal(scores: Tensor) -> Tensor:
    b = scores.shape[0]
    mask = ~torch.eye(b, dtype=torch.bool, device=scores.device)
    return scores[mask]


def _log_mean_exp_negatives(scores: Tensor) -> Tensor:
    neg = _off_diagonal(scores)
    return torch.logsumexp(neg, 0) - math.log(neg.numel())


def dv_bound(scores: Tensor) -> Tensor:
    """Donsker-Varadhan lower bound (MINE)."""
    _check_scores(scores)
    return scores.diagonal().mean() - _log_mean_exp_negatives(scores)


def nwj_bound(scores: Tensor) -> Tensor:
    """Nguyen-Wainwright-Jordan / f-divergence lower bound (MINE-f)."""
    _check_scores(scores)
    return scores.diagonal().mean() - torch.exp(_off_diagonal(scores) - 1.0).mean()


def jsd_bound(scores: Tensor) -> Tensor:
    """Deep InfoMax's Jensen-Shannon MI estimator (softplus form, Hjelm et al. 2019, Eq. 4)."""
    _check_scores(scores)
    positive = _LOG2 - F.softplus(-scores.diagonal())
    negative = F.softplus(_off_diagonal(scores)) - _LOG2
    return positive.mean() - negative.mean()


def infonce_bound(scores: Tensor) -> Tensor:
    """InfoNCE lower bound (Oord et al. 2018): ``log B + mean diag log_softmax``; at most ``log B``."""
    b = _check_scores(scores)
    return math.log(b) + torch.log_softmax(scores, dim=1).diagonal().mean()


BOUNDS = {"dv": dv_bound, "nwj": nwj_bound, "jsd": jsd_bound, "infonce": infonce_bound}


class MINEBound(nn.Module):
    """Donsker-Varadhan bound with MINE's bias-corrected gradient.

    The minibatch gradient of ``log mean(e^T)`` is ``grad mean(e^T) / mean(e^T)``, biased because the
    denominator is itself a minibatch estimate. MINE divides by a moving average ``m`` of ``mean(e^T)``
    instead. ``forward`` returns a tensor whose *value* is the plain minibatch DV bound and whose
    *gradient* uses ``m`` (kept in log space, so large critic values cannot overflow it).

    Args:
        decay: moving-average decay; MINE's ``alpha`` is ``1 - decay``.
    """

    log_ema: Tensor

    def __init__(self, decay: float = 0.99) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.register_buffer("log_ema", torch.tensor(float("nan"), dtype=torch.float64))

    def reset(self) -> None:
        self.log_ema.fill_(float("nan"))

    def forward(self, scores: Tensor, update_ema: bool = True) -> Tensor:
        """DV bound of ``scores``; the moving average is updated in training mode when ``update_ema``."""
        _check_scores(scores)
        lme = _log_mean_exp_negatives(scores)
        if self.training and update_ema:
            with torch.no_grad():
                current = lme.detach().to(self.log_ema.dtype)
                if torch.isnan(self.log_ema):
                    self.log_ema.copy_(current)
                else:
                    mixed = torch.logaddexp(
                        self.log_ema + math.log(self.decay), current + math.log1p(-self.decay)
                    )
                    self.log_ema.copy_(mixed)
        log_ema = self.log_ema.to(lme.dtype)
        if torch.isnan(log_ema):
            log_ema = lme.detach()
        # value lme, gradient exp(lme - log m) * grad lme = grad mean(e^T) / m
        ratio = torch.exp(lme - log_ema)
        corrected = lme.detach() + ratio - ratio.detach()
        return scores.diagonal().mean() - corrected
