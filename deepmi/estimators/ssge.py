"""Spectral Stein Gradient Estimator (SSGE; Shi, Sun & Zhu 2018), the score estimator behind MIGE.

Given i.i.d. samples ``x^1..x^M`` of an implicit density q, SSGE estimates ``g(x) = grad_x log q(x)``
(MIGE paper, Sec. 2.1, Eq. 4) as ``g_hat(x) = sum_j beta_j psi_j(x)``, where ``psi_j`` are Nystrom
approximations of the eigenfunctions of the RBF kernel operator and
``beta_j = -(1/M) sum_m grad psi_j(x^m)`` come from Stein's identity (Eq. 3).

Written out, ``psi_j(x) = sqrt(M)/lambda_j sum_m k(x, x^m) u_mj`` with ``K u_j = lambda_j u_j`` for the
M x M Gram matrix K. The sum ``sum_k sum_m grad_1 k(x^k, x^m) u_mj`` looks like it needs an (M, M, d)
tensor, but with ``grad_1 k(a, b) = -(a - b) k(a, b) / sigma^2`` it splits into

    sum_k x^k (K u_j)_k - sum_m x^m u_mj (K 1)_m = lambda_j X^T u_j - X^T (r * u_j),   r = K 1,

so ``beta_j = (X^T u_j - X^T (r * u_j) / lambda_j) / (sqrt(M) sigma^2)`` and, for queries Q,

    g_hat(Q) = K_QX U Lambda^-1 (U^T X - Lambda^-1 U^T (r * X)) / sigma^2.

The cost is one ``eigh`` of K plus O(M^2 d) matrix products; see docs/estimators.md. All of it runs
on centred, power-of-two-scaled copies of the points (:func:`_normalise`), so the result does not
depend on where the samples sit or (beyond the exact 1/s factor) on their scale.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["median_bandwidth", "rbf_gram", "ssge_score"]

_MIN_SAMPLES = 3


def _check_points(name: str, x: Tensor) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape (..., M, d), got {tuple(x.shape)}; add a feature dim")
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(
            f"{name} must be float32 or float64, got {x.dtype}; call .float() first (SSGE's eigh and "
            "its Gram matrix need at least single precision)"
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf; SSGE needs finite samples")


def _no_autocast(x: Tensor) -> contextlib.AbstractContextManager:
    # under torch.autocast the Gram matmuls would run in bf16/fp16, which eigh cannot take
    available = getattr(torch.amp, "is_autocast_available", lambda d: d in ("cpu", "cuda"))
    if available(x.device.type):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


def _pow2_above_max(x: Tensor) -> Tensor:
    """The power of two in ``(max |x|, 2 max |x|]`` over the last two dims, (..., 1, 1); 1 if all are 0.

    A constant for autograd: the score does not depend on the scale it is computed at.
    """
    m = x.detach().abs().amax((-2, -1), keepdim=True)
    mantissa, _ = torch.frexp(m)  # m = mantissa * 2^e, mantissa in [1/2, 1): m / mantissa is exactly 2^e
    return torch.where(m > 0, m / torch.where(m > 0, mantissa, 1.0), 1.0)


class _Normalised(NamedTuple):
    samples: Tensor
    queries: Tensor | None
    scales: tuple[Tensor, Tensor]  # (..., 1, 1) each: original = normalised * scales[0] * scales[1] + mean

    def to_original_length(self, t: Tensor) -> Tensor:
        """A length (bandwidth; shape (...)) measured on the normalised points, in original units."""
        return t * self.scales[1][..., 0, 0] * self.scales[0][..., 0, 0]

    def to_normalised_length(self, t: Tensor) -> Tensor:
        return t / self.scales[0][..., 0, 0] / self.scales[1][..., 0, 0]


def _normalise(samples: Tensor, queries: Tensor | None = None) -> _Normalised:
    """Samples (and queries, shifted and scaled alike) centred on the sample mean and scaled to max |.| < 1.

    RBF kernels with a bandwidth in the same units make SSGE translation invariant and scale
    equivariant (the score of ``s u + c`` at ``s q + c`` is ``score(u at q) / s``), so nothing is
    lost. Centring removes the cancellation of ``|a|^2 + |b|^2 - 2 a.b`` for points far from the
    origin (float32 lost 20 % of the score at an offset of 300); scaling by powers of two (exact in
    floating point) keeps the squares inside the float range (x * 1e19 overflowed float32). The first
    scale comes before the mean, so the mean cannot overflow either.
    """
    s0 = _pow2_above_max(samples)
    x = samples / s0
    mean = x.mean(-2, keepdim=True)
    x = x - mean
    s1 = _pow2_above_max(x)
    q = None if queries is None else (queries / s0 - mean) / s1
    return _Normalised(x / s1, q, (s0, s1))


def _squared_distances(a: Tensor, b: Tensor) -> Tensor:
    # ||a||^2 + ||b||^2 - 2 a.b uses one matmul instead of an (M, N, d) difference tensor; callers pass
    # normalised points (_normalise), where the cancellation in it is harmless.
    sq = (a * a).sum(-1, keepdim=True) + (b * b).sum(-1).unsqueeze(-2) - 2.0 * a @ b.transpose(-1, -2)
    return sq.clamp_min(0.0)


def median_bandwidth(samples: Tensor) -> Tensor:
    """Median of the pairwise distances between distinct samples (the median heuristic; the lower
    median when the number of pairs is even).

    Args:
        samples: (..., M, d).
    Returns:
        (...,) bandwidth per leading batch index.
    """
    _check_points("samples", samples)
    m = samples.shape[-2]
    if m < 2:
        raise ValueError(f"median_bandwidth needs at least 2 samples, got {m}")
    with _no_autocast(samples):
        norm = _normalise(samples)
        return norm.to_original_length(_median_from_squared(_squared_distances(norm.samples, norm.samples)))


def _median_from_squared(sq: Tensor) -> Tensor:
    m = sq.shape[-1]
    rows, cols = torch.triu_indices(m, m, offset=1, device=sq.device)
    return sq[..., rows, cols].median(dim=-1).values.sqrt()  # sqrt is monotone: median commutes


def rbf_gram(a: Tensor, b: Tensor, bandwidth: Tensor) -> Tensor:
    """RBF kernel ``exp(-||a_i - b_j||^2 / (2 sigma^2))`` for (..., M, d) x (..., N, d) -> (..., M, N)."""
    with _no_autocast(a):
        norm = _normalise(a, b)
        sigma = norm.to_normalised_length(torch.as_tensor(bandwidth, dtype=a.dtype, device=a.device))
        return _rbf(norm.samples, norm.queries, sigma)


def _rbf(a: Tensor, b: Tensor, sigma: Tensor) -> Tensor:
    return torch.exp(-_squared_distances(a, b) / (2.0 * (sigma * sigma)[..., None, None]))


def _n_kept(eigvals_desc: Tensor, eigen_threshold: float, n_eigen: int | None) -> int:
    # One J for the whole batch, chosen from the batch-mean spectrum, so the matrices stay rectangular.
    spectrum = eigvals_desc.reshape(-1, eigvals_desc.shape[-1]).mean(0)
    tol = spectrum[0] * spectrum.numel() * torch.finfo(spectrum.dtype).eps
    n_positive = max(int((spectrum > tol).sum()), 1)
    if n_eigen is not None:
        return min(n_eigen, n_positive)
    share = torch.cumsum(spectrum.clamp_min(0.0), 0) / spectrum.clamp_min(0.0).sum()
    # Smallest J whose cumulative share reaches the threshold (Shi et al. keep the count below it).
    n_reach = int((share < eigen_threshold).sum()) + 1
    return min(n_reach, n_positive)


def ssge_score(
    samples: Tensor,
    queries: Tensor | None = None,
    eigen_threshold: float = 0.99,
    bandwidth: float | Tensor | None = None,
    n_eigen: int | None = None,
) -> Tensor:
    """Estimate ``grad log q`` at ``queries`` from ``samples`` of q with SSGE (MIGE Eq. 4).

    Args:
        samples: (..., M, d) i.i.d. samples of q; leading dims are independent batches.
        queries: (..., N, d) points to evaluate the score at (Nystrom extension); default ``samples``.
        eigen_threshold: keep the leading eigenpairs whose cumulative share of the Gram spectrum first
            reaches this value (0.99 in the MIGE toy, 0.94 in MIGE-IB). Ignored when ``n_eigen`` is set.
        bandwidth: RBF kernel width sigma (scalar or (...,)); default: median pairwise distance.
        n_eigen: keep exactly this many leading eigenpairs (capped at the numerically positive ones).
    Returns:
        (..., N, d) score estimates, same dtype and device as ``samples``.

    Autograd flows through the result, but ``eigh``'s backward is unstable for close eigenvalues;
    MIGE only needs detached scores (see ``deepmi.estimators.mige``).
    """
    _check_points("samples", samples)
    m = samples.shape[-2]
    if m < _MIN_SAMPLES:
        raise ValueError(f"SSGE needs at least {_MIN_SAMPLES} samples along dim -2, got {m}")
    if queries is not None:
        _check_points("queries", queries)
        if queries.shape[-1] != samples.shape[-1] or queries.shape[:-2] != samples.shape[:-2]:
            raise ValueError(
                f"queries {tuple(queries.shape)} must match samples {tuple(samples.shape)} in the "
                "batch dims and the last dim"
            )
        if queries.dtype != samples.dtype or queries.device != samples.device:
            raise ValueError("queries and samples must share dtype and device")
    if n_eigen is not None and (int(n_eigen) != n_eigen or n_eigen < 1):
        raise ValueError(f"n_eigen must be a positive int or None, got {n_eigen}")
    if n_eigen is None and not 0.0 < eigen_threshold <= 1.0:
        raise ValueError(f"eigen_threshold must be in (0, 1], got {eigen_threshold}")

    with _no_autocast(samples):
        norm = _normalise(samples, queries)
        score = _ssge_normalised(norm, bandwidth, eigen_threshold, None if n_eigen is None else int(n_eigen))
        score = score / norm.scales[0] / norm.scales[1]  # score(s u) = score(u) / s
    if not bool(torch.isfinite(score).all()):
        raise ValueError(
            "SSGE produced non-finite scores: queries too far from the samples or a bandwidth too small "
            "for this dtype; use float64, a larger bandwidth, or queries nearer the samples"
        )
    return score


def _ssge_normalised(
    norm: _Normalised, bandwidth: float | Tensor | None, eigen_threshold: float, n_eigen: int | None
) -> Tensor:
    """SSGE scores of the normalised points (see :func:`_normalise`); the caller rescales them."""
    samples, queries = norm.samples, norm.queries
    sq = _squared_distances(samples, samples)
    if bandwidth is None:
        sigma = _median_from_squared(sq)
        if bool((sigma <= 0).any()):
            raise ValueError("median pairwise distance is 0 (repeated samples); pass bandwidth explicitly")
    else:
        sigma = torch.as_tensor(bandwidth, dtype=samples.dtype, device=samples.device)
        if not bool((sigma > 0).all()) or not bool(torch.isfinite(sigma).all()):
            raise ValueError(f"bandwidth must be positive and finite, got {bandwidth}")
        sigma = norm.to_normalised_length(sigma.expand(samples.shape[:-2]))

    gram = torch.exp(-sq / (2.0 * (sigma * sigma)[..., None, None]))
    eigvals, eigvecs = torch.linalg.eigh(gram)
    eigvals, eigvecs = eigvals.flip(-1), eigvecs.flip(-1)  # descending
    j = _n_kept(eigvals, eigen_threshold, n_eigen)
    lam, u = eigvals[..., :j], eigvecs[..., :j]
    # Clamp only guards the division; _n_kept already dropped numerically zero eigenvalues on average.
    lam = lam.clamp_min(torch.finfo(lam.dtype).tiny ** 0.5)

    row_sums = gram.sum(-1, keepdim=True)  # r = K 1, (..., M, 1)
    ut = u.transpose(-1, -2)
    # (..., J, d): beta transposed, times sqrt(M) sigma^2 (the sqrt(M) cancels against psi's)
    beta_t = ut @ samples - (ut @ (row_sums * samples)) / lam.unsqueeze(-1)

    if queries is None:
        psi = u  # K U Lambda^-1 = U for exact eigenpairs: skip the M x M x J product
    else:
        psi = _rbf(queries, samples, sigma) @ u / lam.unsqueeze(-2)
    sigma2 = (sigma * sigma)[..., None, None]
    return psi @ beta_t / sigma2
