"""The exact score of a batch's Gaussian mixture (deepmi/estimators/mixture_score.py), and MIGE-IB
with both scores in closed form (loss=mige_ib_mixture)."""

from __future__ import annotations

import math

import pytest
import torch

from deepmi.estimators import build_objective, gaussian_mixture_score
from deepmi.estimators.mige import mige_stochastic_mi_surrogate
from scripts.ssge_scale_bias import recovered


def _mixture(b: int, k: int, seed: int, std_scale: float = 0.5):
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(b, k, generator=gen, dtype=torch.float64)
    std = std_scale * (0.5 + torch.rand(b, k, generator=gen, dtype=torch.float64))
    return mu, std, gen


def _log_mixture(z: torch.Tensor, mu: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    # the density itself, written the plain way: (N, B, K) broadcast, autograd for the score
    log_n = torch.distributions.Normal(mu[None], std[None]).log_prob(z[:, None]).sum(-1)
    return torch.logsumexp(log_n, dim=1) - math.log(mu.shape[0])


def test_matches_autograd_of_the_mixture_density() -> None:
    mu, std, gen = _mixture(7, 5, 0)
    z = (2 * torch.randn(40, 5, generator=gen, dtype=torch.float64)).requires_grad_()
    (reference,) = torch.autograd.grad(_log_mixture(z, mu, std).sum(), z)
    assert torch.allclose(gaussian_mixture_score(z, mu, std), reference, rtol=1e-9, atol=1e-9)


def test_small_stds_stay_finite_and_exact() -> None:
    # std 1e-4: quadratic forms ~1e8 that nearly cancel; float32 inputs are computed in float64
    mu, std, gen = _mixture(5, 3, 1, std_scale=1e-4)
    z = mu[torch.tensor([0, 3])] + 2e-4 * torch.randn(2, 3, generator=gen, dtype=torch.float64)
    leaf = z.clone().requires_grad_()
    (reference,) = torch.autograd.grad(_log_mixture(leaf, mu, std).sum(), leaf)
    score = gaussian_mixture_score(z.float(), mu.float(), std.float())
    assert score.dtype == torch.float32 and torch.isfinite(score).all()
    assert torch.allclose(score.double(), reference, rtol=1e-3)


def test_steins_identity_holds_in_256_dimensions() -> None:
    # where SSGE recovers ~0.1 of the marginal score (tests/test_ssge_scale_bias.py)
    mu, std, gen = _mixture(100, 256, 2, std_scale=0.3)
    pick = torch.randint(0, 100, (1600,), generator=gen)
    z = mu[pick] + std[pick] * torch.randn(1600, 256, generator=gen, dtype=torch.float64)
    assert recovered(gaussian_mixture_score(z, mu, std), z) == pytest.approx(1.0, abs=0.03)


def test_bad_shapes_and_zero_std_are_refused() -> None:
    mu, std, _ = _mixture(4, 3, 3)
    with pytest.raises(ValueError, match="same K"):
        gaussian_mixture_score(torch.zeros(2, 4, dtype=torch.float64), mu, std)
    with pytest.raises(ValueError, match="std must be > 0"):
        gaussian_mixture_score(torch.zeros(2, 3, dtype=torch.float64), mu, std * 0)
    with pytest.raises(ValueError, match="marginal_score"):
        mige_stochastic_mi_surrogate(torch.zeros(4, 2, 3), marginal_score=torch.zeros(4, 3))


def test_exact_scores_leave_the_estimated_mi_unchanged_by_a_rescaling() -> None:
    # I(x; c z) = I(x; z): with both scores in closed form dI/dc ~ 0; with SSGE's marginal beside the exact
    # conditional (mige_ib_analytic) it is strongly negative at K = 256, the divergence's cause
    mu, std, gen = _mixture(100, 256, 4, std_scale=0.3)
    eps = torch.randn(100, 4, 256, generator=gen, dtype=torch.float64)
    slopes = {}
    for name in ("mige_ib_mixture", "mige_ib_analytic"):
        c = torch.ones((), dtype=torch.float64, requires_grad=True)
        z = c * (mu[:, None] + std[:, None] * eps)
        loss = build_objective(name, beta=1.0, samples_per_input=4)(None, z, mu=c * mu, std=c * std)["loss"]
        (slopes[name],) = torch.autograd.grad(loss, c)
    assert abs(float(slopes["mige_ib_mixture"])) < 0.05 * 256
    assert float(slopes["mige_ib_analytic"]) < -0.5 * 256
