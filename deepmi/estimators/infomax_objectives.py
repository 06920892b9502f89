"""Deep InfoMax objectives (MIGE Sec. 4.2, Table 1): maximise I(x; z) between an input and its code.

- ``CriticInfoMaxObjective``: DIM's JSD or infoNCE bound with a trainable critic, optionally with
  prior matching (``jsd``, ``jsd_pm``, ``infonce``, ``infonce_pm`` in the registry).
- ``MIGEInfoMaxObjective``: MIGE's gradient estimate (circumstance I, or II when x depends on the
  encoder too) with an optional random projection of x (``mige``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .bounds import infonce_bound, jsd_bound
from .critics import ConcatCritic, SeparableCritic
from .mige import mige_mi_surrogate
from .objective import MIObjective
from .prior_matching import PriorMatching

__all__ = ["CriticInfoMaxObjective", "MIGEInfoMaxObjective"]

_DIM_BOUNDS = {"jsd": jsd_bound, "infonce": infonce_bound}


def _make_critic(kind: str, x_dim: int, z_dim: int, hidden_dim: int, embed_dim: int):
    if kind == "separable":
        return SeparableCritic(x_dim, z_dim, hidden_dim, embed_dim)
    if kind == "concat":
        return ConcatCritic(x_dim, z_dim, hidden_dim)
    raise ValueError(f"unknown critic {kind!r}; valid: ['separable', 'concat']")


class CriticInfoMaxObjective(MIObjective):
    """DIM with a critic-based bound: ``loss = -mi_weight * bound(T(x, z)) [+ pm_weight * PM]``.

    Args:
        bound: ``"jsd"`` or ``"infonce"``.
        x_dim, z_dim: flattened sizes of x (e.g. image or conv features) and z.
        critic: ``"separable"`` or ``"concat"`` (see ``critics``).
        prior_matching: add DIM's adversarial match of ``sigmoid(z)`` (or z, ``pm_squash=False``) to a
            uniform prior on [0, 1]^K; the discriminator is the adversary.
    """

    family = "infomax"

    def __init__(
        self,
        bound: str,
        x_dim: int,
        z_dim: int,
        critic: str = "separable",
        hidden_dim: int = 512,
        embed_dim: int = 64,
        mi_weight: float = 1.0,
        prior_matching: bool = False,
        pm_weight: float = 1.0,
        pm_squash: bool = True,
    ) -> None:
        super().__init__()
        if bound not in _DIM_BOUNDS:
            raise ValueError(f"unknown DIM bound {bound!r}; valid: {sorted(_DIM_BOUNDS)}")
        self.bound_name = bound
        self.critic = _make_critic(critic, x_dim, z_dim, hidden_dim, embed_dim)
        self.mi_weight, self.pm_weight, self.pm_squash = mi_weight, pm_weight, pm_squash
        self.prior = PriorMatching(z_dim) if prior_matching else None

    def adversary_parameters(self) -> list[torch.nn.Parameter]:
        return [] if self.prior is None else list(self.prior.parameters())

    def forward(
        self, x: Tensor, z: Tensor, mu: Tensor | None = None, std: Tensor | None = None
    ) -> dict[str, Tensor]:
        mi = _DIM_BOUNDS[self.bound_name](self.critic(x, z))
        out = {"loss": -self.mi_weight * mi, "mi": mi.detach()}
        if self.prior is not None:
            code = torch.sigmoid(z) if self.pm_squash else z
            encoder_pm, discriminator_pm = self.prior(code.flatten(1))
            out["loss"] = out["loss"] + self.pm_weight * encoder_pm
            out["adversary_loss"] = discriminator_pm
            out["pm_encoder"] = encoder_pm.detach()
        return out


class MIGEInfoMaxObjective(MIObjective):
    """DIM with MIGE: ``loss = -mi_weight * mige_mi_surrogate(x, z)``; no trainable parameters.

    The loss value is not an MI estimate (only its gradient is meaningful), so nothing is logged as
    ``"mi"``. ``project_dim`` (Eq. 18-19) keeps the joint SSGE cheap when x is an image.
    """

    family = "infomax"

    def __init__(
        self,
        project_dim: int | None = None,
        eigen_threshold: float = 0.99,
        n_eigen: int | None = None,
        project_seed: int = 0,
        mi_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.project_dim, self.project_seed = project_dim, project_seed
        self.eigen_threshold, self.n_eigen, self.mi_weight = eigen_threshold, n_eigen, mi_weight

    def forward(
        self, x: Tensor, z: Tensor, mu: Tensor | None = None, std: Tensor | None = None
    ) -> dict[str, Tensor]:
        surrogate = mige_mi_surrogate(
            x,
            z,
            eigen_threshold=self.eigen_threshold,
            n_eigen=self.n_eigen,
            project_dim=self.project_dim,
            project_seed=self.project_seed,
        )
        return {"loss": -self.mi_weight * surrogate}
