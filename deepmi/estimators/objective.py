"""The common interface of the training objectives in ``OBJECTIVES`` (see ``registry``).

An objective is an ``nn.Module`` called as ``objective(x, z, mu=None, std=None)`` that returns a dict:

- ``"loss"``: the term the encoder side minimises (its own cooperative critic included). For Deep
  InfoMax it is the whole objective (``-MI`` plus prior matching); for the Information Bottleneck it
  is ``beta * I(x; z)``, to be added to the task's cross-entropy.
- ``"adversary_loss"`` (only when ``adversary_parameters()`` is non-empty): minimised by the adversary
  alone (DIM's prior discriminator, MINE-IB's statistics network). It is computed on ``z.detach()``.
- anything else: detached scalars for logging (``"mi"``, ``"kl"``, ...).

``samples_per_input`` says how many reparameterised draws per input an IB objective wants in z
(MIGE-IB's SSGE of q(z|x) needs several); 1 for all others.

Train with two optimizers: one over the encoder and ``main_parameters()``, one over
``adversary_parameters()``; zero the adversary's grads before its step, because ``"loss"`` also
reaches them.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["MIObjective"]


class MIObjective(nn.Module):
    """Base class: subclasses set ``family`` and implement ``forward``."""

    family: str = ""
    samples_per_input: int = 1  # draws of z ~ q(z|x) per input the objective needs (z: (B, S, K))

    def adversary_parameters(self) -> list[nn.Parameter]:
        return []

    def main_parameters(self) -> list[nn.Parameter]:
        adversary = {id(p) for p in self.adversary_parameters()}
        return [p for p in self.parameters() if id(p) not in adversary]

    def forward(  # pragma: no cover - interface
        self, x: Tensor, z: Tensor, mu: Tensor | None = None, std: Tensor | None = None
    ) -> dict[str, Tensor]:
        raise NotImplementedError
