"""Information Bottleneck compression terms (MIGE Sec. 4.3, Table 2): ``beta * I(x; z)`` estimates.

The encoder is a diagonal Gaussian ``z = mu(x) + std(x) * eps``; the task's cross-entropy (the
``H(y|z)`` of Eq. 7) is the caller's. Each objective returns ``{"loss": beta * <I(x; z) term>, ...}``.

- ``VIBObjective``: KL(q(z|x) || N(0, I)), Alemi et al. 2017 (``vib``).
- ``MINEIBObjective``: MINE's DV bound between x and z with an adversarial statistics network,
  Belghazi et al. 2018 Sec. 5.3 (``mine_ib``).
- ``MIGEIBObjective``: MIGE's circumstance III gradient, Eq. 16-17 (``mige_ib``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .bounds import MINEBound
from .critics import ConcatCritic, SeparableCritic
from .mige import mige_stochastic_mi_surrogate
from .mixture_score import gaussian_mixture_score
from .objective import MIObjective
from .vib import gaussian_kl_to_standard_normal

__all__ = ["MIGEIBObjective", "MINEIBObjective", "VIBObjective"]


def _need(name: str, t: Tensor | None) -> Tensor:
    if t is None:
        raise ValueError(f"this objective needs the encoder's {name}; call objective(x, z, mu=..., std=...)")
    return t


def _first_sample(z: Tensor) -> Tensor:
    # (B, S, K) -> one draw per input; (B, K) passes through.
    return z[:, 0] if z.dim() == 3 else z


class VIBObjective(MIObjective):
    """``loss = beta * E_x KL(N(mu, std^2) || N(0, I))`` (Alemi et al.'s upper bound on I(x; z))."""

    family = "bottleneck"

    def __init__(self, beta: float = 1e-3) -> None:
        super().__init__()
        self.beta = beta

    def forward(
        self, x: Tensor, z: Tensor, mu: Tensor | None = None, std: Tensor | None = None
    ) -> dict[str, Tensor]:
        kl = gaussian_kl_to_standard_normal(_need("mu", mu), _need("std", std))
        return {"loss": self.beta * kl, "kl": kl.detach()}


class MINEIBObjective(MIObjective):
    """``loss = beta * I_DV(x; z)``; the statistics network (the adversary) maximises the same bound.

    Uses ``MINEBound``'s moving-average gradient correction on both sides; the moving average is
    updated once per step, on the adversary's pass.
    """

    family = "bottleneck"

    def __init__(
        self,
        x_dim: int,
        z_dim: int,
        beta: float = 1e-3,
        critic: str = "separable",
        hidden_dim: int = 512,
        embed_dim: int = 64,
        ema_decay: float = 0.99,
    ) -> None:
        super().__init__()
        if critic == "separable":
            self.critic: torch.nn.Module = SeparableCritic(x_dim, z_dim, hidden_dim, embed_dim)
        elif critic == "concat":
            self.critic = ConcatCritic(x_dim, z_dim, hidden_dim)
        else:
            raise ValueError(f"unknown critic {critic!r}; valid: ['separable', 'concat']")
        self.beta = beta
        self.mine = MINEBound(ema_decay)

    def adversary_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.critic.parameters())

    def forward(
        self, x: Tensor, z: Tensor, mu: Tensor | None = None, std: Tensor | None = None
    ) -> dict[str, Tensor]:
        code = _first_sample(z)
        adversary_mi = self.mine(self.critic(x, code.detach()), update_ema=True)
        mi = self.mine(self.critic(x, code), update_ema=False)
        return {"loss": self.beta * mi, "adversary_loss": -adversary_mi, "mi": mi.detach()}


class MIGEIBObjective(MIObjective):
    """``loss = beta * mige_stochastic_mi_surrogate(z)`` (circumstance III).

    Args:
        beta: IB trade-off.
        eigen_threshold: SSGE threshold (0.94 in the paper's IB experiment).
        conditional_score: ``"ssge"`` estimates ``grad_z log q(z|x)`` from the S samples per input (the
            paper; needs z of shape (B, S, K), S >= 3); ``"analytic"`` uses the Gaussian encoder's
            ``-(z - mu) / std^2`` (any S >= 1). Unstable in many dimensions: SSGE's marginal score is
            shrunk there (~0.1 of its size at K = 256), and against an exact conditional score the
            estimate rewards growing the latent's scale (``scripts/ssge_scale_bias.py``).
        marginal_score: ``"ssge"`` estimates ``grad_z log q(z)`` from one draw per input (the paper);
            ``"mixture"`` uses the exact score of the batch's Gaussian mixture
            (``gaussian_mixture_score``), the companion of an analytic conditional score.
        samples_per_input: the S the caller should draw (exposed as ``samples_per_input``). With S = 16
            SSGE shrinks the conditional score by ~10-30% on a 2-d Gaussian (see docs/estimators.md).
    """

    family = "bottleneck"

    def __init__(
        self,
        beta: float = 1e-3,
        eigen_threshold: float = 0.94,
        n_eigen: int | None = None,
        conditional_score: str = "ssge",
        samples_per_input: int = 16,
        marginal_score: str = "ssge",
    ) -> None:
        super().__init__()
        if conditional_score not in ("ssge", "analytic"):
            raise ValueError(f"conditional_score must be 'ssge' or 'analytic', got {conditional_score!r}")
        if marginal_score not in ("ssge", "mixture"):
            raise ValueError(f"marginal_score must be 'ssge' or 'mixture', got {marginal_score!r}")
        if samples_per_input < (3 if conditional_score == "ssge" else 1):
            raise ValueError(
                f"samples_per_input={samples_per_input} is too few: SSGE of q(z|x) needs >= 3 draws per input"
            )
        self.samples_per_input = int(samples_per_input)
        self.beta, self.eigen_threshold, self.n_eigen = beta, eigen_threshold, n_eigen
        self.conditional_score, self.marginal_score = conditional_score, marginal_score

    def forward(
        self, x: Tensor, z: Tensor, mu: Tensor | None = None, std: Tensor | None = None
    ) -> dict[str, Tensor]:
        if z.dim() == 2:
            z = z.unsqueeze(1)
        cond = marginal = None
        if self.conditional_score == "analytic":
            m, s = _need("mu", mu).unsqueeze(1), _need("std", std).unsqueeze(1)
            cond = (-(z - m) / (s * s)).detach()
        if self.marginal_score == "mixture":
            b, n, k = z.shape
            flat = gaussian_mixture_score(z.reshape(b * n, k), _need("mu", mu), _need("std", std))
            marginal = flat.reshape(b, n, k)
        surrogate = mige_stochastic_mi_surrogate(
            z,
            conditional_score=cond,
            marginal_score=marginal,
            eigen_threshold=self.eigen_threshold,
            n_eigen=self.n_eigen,
        )
        return {"loss": self.beta * surrogate}
