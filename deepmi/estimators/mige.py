"""MIGE surrogates (MIGE Sec. 3): scalars whose gradient is the MIGE estimate of an MI gradient.

Every piece rests on the entropy gradient of a reparameterised sample ``z = f_psi(noise)``
(Appendix A, Eq. 21-23): ``grad_psi H(z) = -E[ grad_z log q(z) . dz/dpsi ]``. With the score
``s = grad_z log q(z)`` estimated by SSGE and *detached*, the surrogate ``-mean(s . z)`` has exactly that
gradient. Its value means nothing; only backpropagate it. (Shi et al.'s TensorFlow
``entropy_surrogate`` returns ``+mean(s . z)``, whose gradient is ``-grad H``: the opposite sign.)

- ``mige_entropy_surrogate``: grad H(z), Eq. 9 / 23.
- ``mige_mi_surrogate(x, z)``: grad I(x; z) = grad H(x) + grad H(z) - grad H(x, z), Eq. 8-12
  (circumstance I, x data: grad H(x) = 0) and Eq. 13-14 (circumstance II, x = h a hidden layer
  that also depends on psi: the H(h) term is added when x requires grad).
- ``mige_conditional_entropy_surrogate``: grad H(z | x) for a stochastic encoder, Eq. 15 / 25.
- ``mige_stochastic_mi_surrogate``: grad I(x; z) = grad H(z) - grad H(z | x), Eq. 16-17
  (circumstance III).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .projection import random_projection
from .ssge import ssge_score

__all__ = [
    "mige_conditional_entropy_surrogate",
    "mige_entropy_surrogate",
    "mige_mi_surrogate",
    "mige_stochastic_mi_surrogate",
]


def _flat(name: str, t: Tensor) -> Tensor:
    if t.dim() < 2:
        raise ValueError(f"{name} must have shape (B, ...), got {tuple(t.shape)}")
    if not t.is_floating_point():  # SSGE's kernel widths and eigenvectors need real values
        raise TypeError(
            f"{name} is a {t.dtype} tensor; the score estimator needs floating point: convert it, e.g. "
            f"{name}.float() / 255 for 8-bit images"
        )
    return t.flatten(1)


def _path_term(samples: Tensor, score: Tensor) -> Tensor:
    # mean over samples of s . z with s held fixed: its gradient is E[s . dz/dpsi].
    return (score.detach() * samples).sum(-1).mean()


def mige_entropy_surrogate(
    z: Tensor,
    *,
    eigen_threshold: float = 0.99,
    n_eigen: int | None = None,
    bandwidth: float | None = None,
) -> Tensor:
    """Scalar whose gradient is the MIGE/SSGE estimate of ``grad H(z)`` (Eq. 23).

    Args:
        z: (B, ...) reparameterised samples of q(z) (flattened after dim 0).
    """
    zf = _flat("z", z)
    score = ssge_score(zf.detach(), eigen_threshold=eigen_threshold, bandwidth=bandwidth, n_eigen=n_eigen)
    return -_path_term(zf, score)


def mige_mi_surrogate(
    x: Tensor,
    z: Tensor,
    *,
    eigen_threshold: float = 0.99,
    n_eigen: int | None = None,
    project_dim: int | None = None,
    project_seed: int = 0,
) -> Tensor:
    """Scalar whose gradient is the MIGE estimate of ``grad I(x; z)`` (circumstances I and II).

    ``I = H(x) + H(z) - H(x, z)`` (Eq. 8, 13). The joint score is estimated on ``(x, z)`` pairs; its
    z-part gives Eq. 12's second term, and when ``x`` itself requires grad (circumstance II, x = h) its
    x-part and an extra ``grad H(x)`` term give Eq. 14.

    Args:
        x: (B, ...) inputs (data, or a hidden layer h for circumstance II); flattened after dim 0.
        z: (B, ...) representations; flattened after dim 0.
        eigen_threshold, n_eigen: SSGE truncation, see ``ssge_score``.
        project_dim: if set and x has more features, replace x by ``R x`` with a fixed seeded random
            projection R (Eq. 18-19) so the joint SSGE stays cheap for images.
        project_seed: seed of R (keep it fixed during training: R defines the subspace).
    """
    xf = _flat("x", x)
    zf = _flat("z", z)
    if xf.shape[0] != zf.shape[0]:
        raise ValueError(f"x and z need the same batch size, got {xf.shape[0]} and {zf.shape[0]}")
    if project_dim is not None:
        xf = random_projection(xf, project_dim, seed=project_seed)
    if xf.dtype != zf.dtype:
        xf = xf.to(zf.dtype)
    kw = {"eigen_threshold": eigen_threshold, "n_eigen": n_eigen}
    joint = torch.cat([xf, zf], dim=1)
    s_joint = ssge_score(joint.detach(), **kw)
    s_z = ssge_score(zf.detach(), **kw)
    # grad I = grad H(z) - grad H(x, z) = -E[s_z . dz] + E[s_xz . d(x, z)]
    surrogate = _path_term(joint, s_joint) - _path_term(zf, s_z)
    if xf.requires_grad:
        s_x = ssge_score(xf.detach(), **kw)
        surrogate = surrogate - _path_term(xf, s_x)  # + grad H(h), circumstance II (Eq. 14)
    return surrogate


def _check_grouped(z: Tensor) -> None:
    if z.dim() != 3 or z.shape[1] < 3:
        raise ValueError(
            f"z must have shape (B, S, K) with S >= 3 encoder samples per input, got {tuple(z.shape)}"
        )


def mige_conditional_entropy_surrogate(
    z: Tensor,
    *,
    conditional_score: Tensor | None = None,
    eigen_threshold: float = 0.99,
    n_eigen: int | None = None,
) -> Tensor:
    """Scalar whose gradient is the MIGE estimate of ``grad H(z | x)`` (Eq. 15, Appendix Eq. 25).

    Args:
        z: (B, S, K): S reparameterised samples ``E_psi(x_b, eps)`` for each of B inputs.
        conditional_score: optional (B, S, K) known ``grad_z log q(z | x)`` (e.g. ``-(z - mu) / std^2``
            for a Gaussian encoder). By default SSGE estimates it from the S samples of each input.
    """
    if conditional_score is None:
        _check_grouped(z)
        conditional_score = ssge_score(z.detach(), eigen_threshold=eigen_threshold, n_eigen=n_eigen)
    elif conditional_score.shape != z.shape:
        raise ValueError(f"conditional_score {tuple(conditional_score.shape)} must match z {tuple(z.shape)}")
    return -_path_term(z, conditional_score)


def mige_stochastic_mi_surrogate(
    z: Tensor,
    *,
    conditional_score: Tensor | None = None,
    marginal_score: Tensor | None = None,
    eigen_threshold: float = 0.99,
    n_eigen: int | None = None,
) -> Tensor:
    """Scalar whose gradient is the MIGE estimate of ``grad I(x; z)`` for a stochastic encoder
    (circumstance III, Eq. 16-17): ``grad H(z) - grad H(z | x)``.

    Args:
        z: (B, S, K) samples, S per input (S >= 3 unless ``conditional_score`` is given, S >= 1 then).
        conditional_score: optional known conditional score, see ``mige_conditional_entropy_surrogate``.
        marginal_score: optional known (B, S, K) ``grad_z log q(z)`` at every sample (e.g.
            ``gaussian_mixture_score`` of the batch's encoder outputs).

    By default the marginal score is estimated from ``z[:, 0]`` (B i.i.d. draws of q(z), one per
    input) and Nystrom-extended to all B * S samples, so the cost is one B x B eigh, not (B S) x (B S).
    """
    if z.dim() != 3:
        raise ValueError(f"z must have shape (B, S, K), got {tuple(z.shape)}")
    b, s, k = z.shape
    flat = z.reshape(b * s, k)
    kw = {"eigen_threshold": eigen_threshold, "n_eigen": n_eigen}
    if marginal_score is None:
        s_marginal = ssge_score(z[:, 0].detach(), flat.detach(), **kw)
    elif marginal_score.shape != z.shape:
        raise ValueError(f"marginal_score {tuple(marginal_score.shape)} must match z {tuple(z.shape)}")
    else:
        s_marginal = marginal_score.reshape(b * s, k)
    h_z = -_path_term(flat, s_marginal)
    return h_z - mige_conditional_entropy_surrogate(z, conditional_score=conditional_score, **kw)
