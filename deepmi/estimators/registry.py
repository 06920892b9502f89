"""Objective registry for the experiment runner: ``build_objective(name, **kwargs) -> MIObjective``.

Names follow the paper's tables: Deep InfoMax (Table 1) ``jsd``, ``jsd_pm``, ``infonce``,
``infonce_pm``, ``mige``; Information Bottleneck (Table 2) ``vib``, ``mine_ib``, ``mige_ib`` (and
``mige_ib_analytic``, a variant with the exact conditional score, and ``mige_ib_mixture``, with the
exact conditional score and the exact score of the batch's Gaussian mixture).
A registry entry fixes what the name means (bound, prior matching); ``kwargs`` set the rest and may
not override those fixed choices.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .bottleneck_objectives import MIGEIBObjective, MINEIBObjective, VIBObjective
from .infomax_objectives import CriticInfoMaxObjective, MIGEInfoMaxObjective
from .objective import MIObjective

__all__ = ["OBJECTIVES", "build_objective", "objective_names"]

OBJECTIVES: dict[str, Callable[..., MIObjective]] = {
    "jsd": functools.partial(CriticInfoMaxObjective, bound="jsd", prior_matching=False),
    "jsd_pm": functools.partial(CriticInfoMaxObjective, bound="jsd", prior_matching=True),
    "infonce": functools.partial(CriticInfoMaxObjective, bound="infonce", prior_matching=False),
    "infonce_pm": functools.partial(CriticInfoMaxObjective, bound="infonce", prior_matching=True),
    "mige": MIGEInfoMaxObjective,
    "vib": VIBObjective,
    "mine_ib": MINEIBObjective,
    "mige_ib": MIGEIBObjective,
    # MIGE-IB with the encoder's exact Gaussian score for grad log q(z|x) instead of SSGE's estimate
    # (a stated variant, not the paper's method: it shows whether the estimator or the method decides)
    "mige_ib_analytic": functools.partial(MIGEIBObjective, conditional_score="analytic"),
    # both scores in closed form (the conditional Gaussian's, the batch mixture's): no estimator,
    # so both entropy terms carry the same bias, unlike mige_ib_analytic
    "mige_ib_mixture": functools.partial(
        MIGEIBObjective, conditional_score="analytic", marginal_score="mixture"
    ),
}


def build_objective(name: str, **kwargs: Any) -> MIObjective:
    """Instantiate the objective registered as ``name`` with constructor ``kwargs``."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; valid: {sorted(OBJECTIVES)}")
    factory = OBJECTIVES[name]
    fixed = set(getattr(factory, "keywords", {}) or {})
    clash = fixed & set(kwargs)
    if clash:
        raise ValueError(f"objective {name!r} fixes {sorted(clash)}; pick another name instead of overriding")
    return factory(**kwargs)


def objective_names(family: str) -> tuple[str, ...]:
    """Registered names whose objective class has ``family`` ("infomax" or "bottleneck"), in order."""
    classes = {name: getattr(factory, "func", factory) for name, factory in OBJECTIVES.items()}
    return tuple(name for name, cls in classes.items() if cls.family == family)
