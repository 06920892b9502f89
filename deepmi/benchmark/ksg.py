"""Kraskov-Stögbauer-Grassberger nearest-neighbour MI estimator (Kraskov et al. 2004, Eq. 8).

For each sample i, ``eps_i`` is the max-norm distance to its k-th nearest neighbour in the joint
space ``(x, y)`` (max-norm: the larger of the two marginal max-norm distances); ``n_x(i)`` and
``n_y(i)`` count the other samples strictly closer than ``eps_i`` in x and in y alone. Then

    I_hat = psi(k) + psi(N) - mean_i [ psi(n_x(i) + 1) + psi(n_y(i) + 1) ].

Each coordinate is standardised first (as benchmark-mi's KSG does). Needs scipy (KD-trees), imported
when called; numpy only otherwise.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ksg_mutual_information"]


def ksg_mutual_information(x: np.ndarray, y: np.ndarray, k: int = 5, standardize: bool = True) -> float:
    """KSG estimate (nats) of I(X; Y) from paired samples x (N, dx), y (N, dy).

    Args:
        x, y: arrays with the same number of rows; 1-d arrays are treated as one feature.
        k: neighbours in the joint space (bias falls and variance rises as k shrinks).
        standardize: divide each coordinate by its standard deviation after centring.
    """
    try:
        from scipy.spatial import cKDTree
        from scipy.special import digamma
    except ImportError as err:  # pragma: no cover - scipy is in the dev extra
        raise ImportError("ksg_mutual_information needs scipy: pip install scipy") from err
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = y[:, None] if y.ndim == 1 else y
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must be (N, d) with the same N, got {x.shape} and {y.shape}")
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must lie in [1, N - 1] = [1, {n - 1}], got {k}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite; drop or impute NaN/Inf samples first")
    if standardize:
        x = _standardize(x)
        y = _standardize(y)
    joint = np.hstack([x, y])
    # k + 1 neighbours: the nearest is the point itself
    dist, _ = cKDTree(joint).query(joint, k=k + 1, p=np.inf)
    eps = dist[:, -1]
    # strictly closer than eps: shrink the radius to the next float below
    radius = np.nextafter(eps, 0.0)
    n_x = cKDTree(x).query_ball_point(x, radius, p=np.inf, return_length=True) - 1
    n_y = cKDTree(y).query_ball_point(y, radius, p=np.inf, return_length=True) - 1
    return float(digamma(k) + digamma(n) - np.mean(digamma(n_x + 1) + digamma(n_y + 1)))


def _standardize(v: np.ndarray) -> np.ndarray:
    std = v.std(axis=0)
    if (std == 0).any():
        raise ValueError("a coordinate is constant; KSG needs every coordinate to vary")
    return (v - v.mean(axis=0)) / std
