"""Variational MI bounds, MINE's corrected gradient, critics, prior matching and the VIB KL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepmi.estimators import (
    ConcatCritic,
    CriticMIEstimator,
    MINEBound,
    PriorMatching,
    SeparableCritic,
    dv_bound,
    gaussian_kl_to_standard_normal,
    infonce_bound,
    jsd_bound,
    nwj_bound,
    prior_matching_losses,
)

F64 = torch.float64


def _correlated(n: int, d: int, rho: float, seed: int, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=dtype)
    y = rho * x + math.sqrt(1 - rho**2) * torch.randn(n, d, generator=gen, dtype=dtype)
    return x, y


def _pointwise_mi(x, y, rho):
    """Optimal critic log p(x, y) / (p(x) p(y)) for all (i, j) pairs, (B, B)."""
    xi, yj = x[:, None, :], y[None, :, :]
    quad = (xi**2 - 2 * rho * xi * yj + yj**2) / (2 * (1 - rho**2)) - (xi**2 + yj**2) / 2
    return (-0.5 * math.log(1 - rho**2) - quad).sum(-1)


def test_bounds_with_optimal_and_scaled_critics_stay_below_true_mi():
    d, rho, n = 2, 0.5, 2000
    true_mi = -d / 2 * math.log(1 - rho**2)
    x, y = _correlated(n, d, rho, 0)
    t_star = _pointwise_mi(x, y, rho)
    # Monte Carlo standard error of the positive term is ~0.02 here: allow 0.06 above the truth
    for scale in (0.5, 1.0, 1.5):
        t = scale * t_star
        for value in (dv_bound(t), nwj_bound(t + 1.0), infonce_bound(t)):
            assert float(value) < true_mi + 0.06
    assert float(dv_bound(t_star)) == pytest.approx(true_mi, abs=0.06)
    # NWJ's optimal critic is 1 + log ratio
    assert float(nwj_bound(t_star + 1.0)) == pytest.approx(true_mi, abs=0.06)
    assert float(dv_bound(0.5 * t_star)) < float(dv_bound(t_star))


def test_trained_critic_bounds_are_positive_and_below_true_mi():
    torch.manual_seed(0)
    d, rho = 1, 0.8
    true_mi = -d / 2 * math.log(1 - rho**2)  # 0.51
    estimators = {
        b: CriticMIEstimator(SeparableCritic(d, d, hidden_dim=32, embed_dim=8), bound=b)
        for b in ("mine", "nwj", "infonce")
    }
    for bound, est in estimators.items():
        opt = torch.optim.Adam(est.parameters(), lr=3e-3)
        for step in range(150):
            x, y = _correlated(128, d, rho, 100 + step, dtype=torch.float32)
            opt.zero_grad()
            (-est(x, y)).backward()
            opt.step()
        est.eval()
        x, y = _correlated(1000, d, rho, 7, dtype=torch.float32)
        with torch.no_grad():
            value = float(est(x, y))
        assert 0.2 < value < true_mi + 0.08, (bound, value)


def test_infonce_never_exceeds_log_batch():
    gen = torch.Generator().manual_seed(0)
    for b in (2, 8, 64):
        for scale in (0.1, 10.0, 1e3):
            scores = scale * torch.randn(b, b, generator=gen, dtype=F64)
            assert float(infonce_bound(scores)) <= math.log(b) + 1e-12
        separable = 1e3 * torch.eye(b, dtype=F64)
        assert float(infonce_bound(separable)) == pytest.approx(math.log(b), abs=1e-9)


def test_infonce_and_jsd_match_numpy_formulas():
    gen = torch.Generator().manual_seed(1)
    s = torch.randn(6, 6, generator=gen, dtype=F64)
    a = s.numpy()
    off = a[~np.eye(6, dtype=bool)]
    softplus = lambda v: np.log1p(np.exp(v))  # noqa: E731
    lse = np.log(np.exp(a).sum(1))
    assert float(infonce_bound(s)) == pytest.approx(np.log(6) + np.mean(np.diag(a) - lse), rel=1e-12)
    jsd = np.mean(np.log(2) - softplus(-np.diag(a))) - np.mean(softplus(off) - np.log(2))
    assert float(jsd_bound(s)) == pytest.approx(jsd, rel=1e-12)
    assert float(dv_bound(s)) == pytest.approx(np.diag(a).mean() - np.log(np.exp(off).mean()), rel=1e-12)
    assert float(nwj_bound(s)) == pytest.approx(np.diag(a).mean() - np.exp(off - 1).mean(), rel=1e-12)


def test_jsd_limits():
    b = 5
    assert float(jsd_bound(torch.zeros(b, b, dtype=F64))) == pytest.approx(0.0, abs=1e-12)
    separable = 50.0 * (2 * torch.eye(b, dtype=F64) - 1)
    assert float(jsd_bound(separable)) == pytest.approx(2 * math.log(2), abs=1e-9)  # 2 JSD <= 2 log 2


@pytest.mark.parametrize("fn", [dv_bound, nwj_bound, jsd_bound, infonce_bound])
def test_bounds_reject_non_square_scores(fn):
    with pytest.raises(ValueError, match="square"):
        fn(torch.randn(3, 4))
    with pytest.raises(ValueError, match="B >= 2"):
        fn(torch.randn(1, 1))


def test_mine_bound_value_is_dv_and_gradient_uses_moving_average():
    mine = MINEBound(decay=0.9)
    gen = torch.Generator().manual_seed(2)
    first = torch.randn(4, 4, generator=gen, dtype=F64, requires_grad=True)
    value = mine(first)
    assert float(value.detach()) == pytest.approx(float(dv_bound(first.detach())), rel=1e-12)
    value.backward()
    plain = torch.autograd.grad(dv_bound(first), first)[0]
    torch.testing.assert_close(first.grad, plain)  # first batch: the average is this batch

    second = (torch.randn(4, 4, generator=gen, dtype=F64) + 1.0).requires_grad_()
    mask = ~torch.eye(4, dtype=torch.bool)
    mean_exp_1 = first.detach()[mask].exp().mean()
    mean_exp_2 = second.detach()[mask].exp().mean()
    ema = 0.9 * mean_exp_1 + 0.1 * mean_exp_2
    mine(second).backward()
    want = torch.eye(4, dtype=F64) / 4 - mask * second.detach().exp() / (12 * ema)
    torch.testing.assert_close(second.grad, want)
    assert float(mine.log_ema.exp()) == pytest.approx(float(ema), rel=1e-12)


def test_critic_shapes_and_concat_pairs():
    torch.manual_seed(0)
    x, y = torch.randn(5, 3), torch.randn(5, 2, 2)
    assert SeparableCritic(3, 4, hidden_dim=8, embed_dim=4)(x, y).shape == (5, 5)
    concat = ConcatCritic(3, 4, hidden_dim=8)
    scores = concat(x, y)
    assert scores.shape == (5, 5)
    torch.testing.assert_close(scores[1, 3], concat.f(torch.cat([x[1], y[3].flatten()])).squeeze())
    with pytest.raises(ValueError, match="same B"):
        concat(x, torch.randn(4, 4))
    with pytest.raises(ValueError, match="unknown bound"):
        CriticMIEstimator(concat, bound="tuba")


class _Constant(torch.nn.Module):
    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, z):
        return torch.full((z.shape[0], 1), self.c, dtype=z.dtype)


class _LogRatio(torch.nn.Module):
    """Optimal logit for U[0, 1] (prior) against density 2z on [0, 1]: log(1 / (2 z))."""

    def forward(self, z):
        return -torch.log(2 * z)


def test_prior_matching_closed_forms():
    z = torch.rand(10, 1, dtype=F64)
    enc, disc = prior_matching_losses(_Constant(0.7), z, torch.rand(10, 1, dtype=F64))
    c = torch.tensor(0.7, dtype=F64)
    assert float(enc) == pytest.approx(float(F.softplus(-c)), rel=1e-12)
    assert float(disc) == pytest.approx(float(F.softplus(-c) + F.softplus(c)), rel=1e-12)

    # optimal discriminator: loss = 2 log 2 - 2 JSD(U[0,1], Beta(2,1))
    grid = np.linspace(1e-6, 1, 200001)
    p, q = np.ones_like(grid), 2 * grid
    m = (p + q) / 2
    jsd = 0.5 * np.trapezoid(p * np.log(p / m), grid) + 0.5 * np.trapezoid(q * np.log(q / m), grid)
    gen = torch.Generator().manual_seed(0)
    prior = torch.rand(200000, 1, generator=gen, dtype=F64)
    codes = torch.rand(200000, 1, generator=gen, dtype=F64).sqrt()  # density 2z
    _, disc = prior_matching_losses(_LogRatio(), codes, prior)
    assert float(disc) == pytest.approx(2 * math.log(2) - 2 * jsd, abs=5e-3)


def test_prior_matching_module_step_lowers_discriminator_loss_and_detaches_encoder():
    torch.manual_seed(0)
    pm = PriorMatching(3, hidden_dims=(32, 16))
    z = (0.2 * torch.rand(64, 3)).requires_grad_()  # far from U[0, 1]
    opt = torch.optim.SGD(pm.parameters(), lr=0.1)
    enc, disc = pm(z)
    disc.backward()
    assert z.grad is None  # the discriminator loss never reaches the encoder
    opt.step()
    torch.manual_seed(0)
    enc_after, disc_after = pm(z)
    assert disc_after.item() < disc.detach().item()
    enc_after.backward()
    assert z.grad is not None
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        pm(torch.rand(4, 2))


def test_vib_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(8, 5, generator=gen, dtype=F64)
    std = torch.rand(8, 5, generator=gen, dtype=F64) + 0.1
    normal = torch.distributions.Normal
    prior = normal(torch.zeros_like(mu), torch.ones_like(std))
    ref = torch.distributions.kl_divergence(normal(mu, std), prior).sum(-1)
    torch.testing.assert_close(gaussian_kl_to_standard_normal(mu, std, reduction="none"), ref)
    torch.testing.assert_close(gaussian_kl_to_standard_normal(mu, std), ref.mean())
    torch.testing.assert_close(gaussian_kl_to_standard_normal(mu, logvar=2 * std.log()), ref.mean())
    assert float(gaussian_kl_to_standard_normal(torch.zeros(2, 3), torch.ones(2, 3))) == 0.0
    with pytest.raises(ValueError, match="exactly one"):
        gaussian_kl_to_standard_normal(mu)
    with pytest.raises(ValueError, match="positive"):
        gaussian_kl_to_standard_normal(mu, -std)
