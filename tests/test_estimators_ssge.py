"""SSGE against closed-form Gaussian scores and an independent numpy (M, M, d) implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from deepmi.estimators import median_bandwidth, rbf_gram, ssge_score


def _naive_ssge(x: np.ndarray, q: np.ndarray, sigma: float, n_eigen: int) -> np.ndarray:
    """Shi et al.'s estimator written term by term (broadcast (M, M, d) kernel gradients)."""
    m = x.shape[0]
    diff = x[:, None, :] - x[None, :, :]  # (M, M, d): x_k - x_m
    gram = np.exp(-(diff**2).sum(-1) / (2 * sigma**2))
    lam, u = np.linalg.eigh(gram)
    lam, u = lam[::-1][:n_eigen], u[:, ::-1][:, :n_eigen]
    grad_k = -diff / sigma**2 * gram[..., None]  # d/dx_k k(x_k, x_m)
    grad_psi = np.sqrt(m) * np.einsum("kmd,mj->kjd", grad_k, u) / lam[None, :, None]
    beta = -grad_psi.mean(0)  # (J, d), Eq. 4
    kq = np.exp(-((q[:, None, :] - x[None, :, :]) ** 2).sum(-1) / (2 * sigma**2))
    psi_q = np.sqrt(m) * kq @ u / lam
    return psi_q @ beta


def _gaussian(m: int, seed: int, dtype=torch.float64):
    chol = torch.tensor([[1.0, 0.0, 0.0], [0.5, 1.2, 0.0], [-0.3, 0.2, 0.7]], dtype=dtype)
    mu = torch.tensor([1.0, -2.0, 0.5], dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    x = mu + torch.randn(m, 3, generator=gen, dtype=dtype) @ chol.T
    q = mu + torch.randn(200, 3, generator=gen, dtype=dtype) @ chol.T
    true_score = -(q - mu) @ torch.linalg.inv(chol @ chol.T)  # -Sigma^-1 (x - mu)
    return x, q, true_score


def _relative_error(m: int, seed: int) -> float:
    x, q, true_score = _gaussian(m, seed)
    est = ssge_score(x, q)
    return float((est - true_score).norm() / true_score.norm())


def test_gaussian_score_error_small_and_shrinks_with_samples():
    small = np.mean([_relative_error(128, s) for s in range(3)])
    large = np.mean([_relative_error(1024, s) for s in range(3)])
    # measured: ~0.50 at M=128, ~0.18 at M=1024 (threshold 0.99, median bandwidth)
    assert small < 0.65
    assert large < 0.25
    assert large < 0.6 * small


def test_default_queries_are_the_samples():
    x, _, _ = _gaussian(64, 0)
    torch.testing.assert_close(ssge_score(x), ssge_score(x, x.clone()), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("n_eigen", [1, 5, 20])
def test_regrouped_formula_equals_naive_broadcast(n_eigen):
    x, q, _ = _gaussian(40, 1)
    sigma = float(median_bandwidth(x))
    want = _naive_ssge(x.numpy(), q.numpy(), sigma, n_eigen)
    got = ssge_score(x, q, n_eigen=n_eigen)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-7, atol=1e-9)
    got_self = ssge_score(x, n_eigen=n_eigen)
    np.testing.assert_allclose(got_self.numpy(), _naive_ssge(x.numpy(), x.numpy(), sigma, n_eigen), atol=1e-8)


def test_float32_matches_float64():
    x64, q64, _ = _gaussian(256, 2)
    s64 = ssge_score(x64, q64, n_eigen=30)
    s32 = ssge_score(x64.float(), q64.float(), n_eigen=30)
    assert s32.dtype == torch.float32
    assert torch.isfinite(s32).all()
    torch.testing.assert_close(s32.double(), s64, rtol=2e-3, atol=2e-3)


def test_median_bandwidth_matches_scipy_and_scores_scale_inversely():
    x, _, _ = _gaussian(50, 3)
    assert float(median_bandwidth(x)) == pytest.approx(np.median(pdist(x.numpy())), rel=1e-10)
    # median heuristic makes SSGE scale-equivariant: score of c*x is score(x) / c
    torch.testing.assert_close(ssge_score(3.0 * x), ssge_score(x) / 3.0, rtol=1e-7, atol=1e-9)


def test_explicit_bandwidth_is_used():
    x, q, _ = _gaussian(40, 4)
    want = _naive_ssge(x.numpy(), q.numpy(), 0.7, 8)
    np.testing.assert_allclose(ssge_score(x, q, bandwidth=0.7, n_eigen=8).numpy(), want, rtol=1e-7, atol=1e-9)


def test_threshold_keeps_the_eigenpairs_that_reach_the_share():
    x, q, _ = _gaussian(100, 5)
    sigma = float(median_bandwidth(x))
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1).numpy()
    lam = np.linalg.eigvalsh(np.exp(-d2 / (2 * sigma**2)))[::-1]
    for threshold in (0.5, 0.9, 0.99):
        j = int(np.searchsorted(np.cumsum(lam) / lam.sum(), threshold) + 1)
        torch.testing.assert_close(
            ssge_score(x, q, eigen_threshold=threshold), ssge_score(x, q, n_eigen=j), rtol=1e-10, atol=1e-10
        )
    assert not torch.allclose(ssge_score(x, q, n_eigen=1), ssge_score(x, q, n_eigen=10))


def test_leading_batch_dim_equals_separate_calls():
    xa, qa, _ = _gaussian(60, 6)
    xb, qb, _ = _gaussian(60, 7)
    batched = ssge_score(torch.stack([xa, xb]), torch.stack([qa, qb]), n_eigen=12)
    torch.testing.assert_close(batched[0], ssge_score(xa, qa, n_eigen=12))
    torch.testing.assert_close(batched[1], ssge_score(xb, qb, n_eigen=12))


@pytest.mark.parametrize(
    ("samples", "kwargs", "match"),
    [
        (torch.randn(5), {}, "shape"),
        (torch.randn(2, 3), {}, "at least 3"),
        (torch.tensor([[0.0, 1.0], [float("nan"), 1.0], [2.0, 2.0]]), {}, "NaN"),
        (torch.randint(0, 3, (5, 2)), {}, "float"),
        (torch.randn(5, 2), {"eigen_threshold": 1.5}, "eigen_threshold"),
        (torch.randn(5, 2), {"n_eigen": 0}, "n_eigen"),
        (torch.randn(5, 2), {"bandwidth": -1.0}, "bandwidth"),
        (torch.randn(5, 2), {"queries": torch.randn(4, 3)}, "queries"),
        (torch.ones(5, 2), {}, "identical|repeated"),
    ],
)
def test_bad_input_raises(samples, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ssge_score(samples, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    x, q, _ = _gaussian(256, 8, dtype=torch.float32)
    cpu = ssge_score(x, q, n_eigen=20)
    gpu = ssge_score(x.cuda(), q.cuda(), n_eigen=20)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("offset", [300.0, 2000.0, 5000.0])
def test_translation_invariant_in_float32(offset):
    # |a|^2 + |b|^2 - 2 a.b cancelled catastrophically far from the origin: 20 % error at 300, 100 % at
    # 2000, "repeated samples" at 5000. The float32 points x + c themselves are rounded (to ~3e-4 at
    # 5000), so compare with the exact float64 score of those same rounded points, moved back by c.
    x, q, _ = _gaussian(256, 9)
    xc, qc = (x + offset).float(), (q + offset).float()
    want = ssge_score(xc.double() - offset, qc.double() - offset, n_eigen=20)
    got = ssge_score(xc, qc, n_eigen=20)
    assert got.dtype == torch.float32
    assert float((got.double() - want).norm() / want.norm()) < 1e-3
    want_bw = ssge_score(xc.double() - offset, qc.double() - offset, bandwidth=1.5, n_eigen=20)
    got_bw = ssge_score(xc, qc, bandwidth=1.5, n_eigen=20)
    assert float((got_bw.double() - want_bw).norm() / want_bw.norm()) < 1e-3
    # and against the unshifted float32 score (what the issue measured)
    base = ssge_score(x.float(), q.float(), n_eigen=20)
    assert float((got - base).norm() / base.norm()) < 1e-2
    assert float(median_bandwidth(xc)) == pytest.approx(float(median_bandwidth(x)), rel=1e-3)


@pytest.mark.parametrize("scale", [2.0**70, 2.0**-70, 1e19, 1e-25])
def test_extreme_scales_in_float32(scale):
    # x * 1e19 overflowed the squared distances (NaN scores); tiny scales underflowed them (all
    # distances 0, "repeated samples"). Powers of two scale floats exactly.
    x, q, _ = _gaussian(128, 10, dtype=torch.float32)
    base = ssge_score(x, q, n_eigen=15)
    got = ssge_score(x * scale, q * scale, n_eigen=15)
    assert torch.isfinite(got).all()
    rtol = 1e-6 if np.log2(scale).is_integer() else 1e-3
    torch.testing.assert_close(got * scale, base, rtol=rtol, atol=rtol * float(base.abs().max()))
    assert float(median_bandwidth(x * scale)) == pytest.approx(float(median_bandwidth(x)) * scale, rel=rtol)
    sigma = median_bandwidth(x)
    gram = rbf_gram(x * scale, q * scale, sigma * scale)
    torch.testing.assert_close(gram, rbf_gram(x, q, sigma), rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_gets_a_clear_error(dtype):
    x = torch.randn(20, 2).to(dtype)
    with pytest.raises(
        ValueError, match=r"samples must be float32 or float64, got torch\.b?float16; call \.float"
    ):
        ssge_score(x)
    with pytest.raises(ValueError, match="queries must be float32 or float64"):
        ssge_score(x.float(), x)


def test_autocast_does_not_lower_the_precision():
    x, q, _ = _gaussian(128, 11, dtype=torch.float32)
    want = ssge_score(x, q, n_eigen=15)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ssge_score(x, q, n_eigen=15)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)


def test_non_finite_scores_raise_instead_of_returning_nan():
    # a bandwidth whose square underflows float32 makes the Gram matrix 0/0 on its diagonal
    x = torch.randn(50, 2)
    with pytest.raises(ValueError, match="non-finite scores.*bandwidth too small"):
        ssge_score(x, bandwidth=1e-30)
