"""Losses by name, for configs: ``build_loss("lmi", bins=25)``."""

from __future__ import annotations

import inspect

from torch import nn

from .modules import L1Loss, L2Loss, LMILoss, MILoss, SSIML2Loss, SSIMLoss

LOSSES: dict[str, type[nn.Module]] = {
    "l1": L1Loss,
    "l2": L2Loss,
    "ssim": SSIMLoss,
    "ssim_l2": SSIML2Loss,
    "mi": MILoss,
    "lmi": LMILoss,
}


def loss_arguments(name: str) -> list[str]:
    """Constructor arguments that loss ``name`` accepts."""
    params = inspect.signature(LOSSES[name].__init__).parameters
    return [p for p in params if p != "self"]


def build_loss(name: str, **kwargs) -> nn.Module:
    """Instantiate the loss registered as ``name`` with keyword arguments ``kwargs``."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of: {', '.join(LOSSES)}")
    valid = loss_arguments(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(
            f"loss {name!r} does not take argument(s) {', '.join(unknown)}; "
            f"valid arguments: {', '.join(valid)}"
        )
    return LOSSES[name](**kwargs)
