"""configs/loss/*.yaml -> the loss a task trains with, and the family that says which tasks fit it.

A loss config is a Hydra ``_target_`` (the loss class) plus its constructor arguments and one more
key, ``name``: the row the run fills in a results table and the key of ``lr_by_loss``. The class
says what the loss is for with a ``family`` attribute ("image" for deepmi.losses, "infomax" or
"bottleneck" for deepmi.estimators' objectives); an experiment lists the family it trains with in
``loss_family``. A config with ``_partial_: true`` leaves sizes that only the task knows (a
critic's input size) to the task module.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from experiments import CONFIG_DIR

# keys of a loss config that are about the run, not arguments of the loss class
RUN_KEYS = ("name",)


def build_loss(loss_cfg: DictConfig | None) -> Any:
    """The loss module (or, for ``_partial_: true``, the factory a task completes); None without one.

    A bad argument is a ValueError naming the loss (not Hydra's wrapped instantiation error).
    """
    if loss_cfg is None:
        return None
    name = loss_cfg.get("name", "<unnamed>")
    arguments = {k: v for k, v in OmegaConf.to_container(loss_cfg, resolve=True).items() if k not in RUN_KEYS}
    _check_arguments(name, arguments)
    try:
        return instantiate(arguments, _convert_="all")
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, ValueError | TypeError):
            raise ValueError(f"loss '{name}': {cause}") from cause
        raise


def _check_arguments(name: str, arguments: dict[str, Any]) -> None:
    """Refuse keys the loss class does not take, listing the ones it does."""
    cls = _loss_class(name, arguments.get("_target_"))
    parameters = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    unknown = sorted(k for k in arguments if not k.startswith("_") and k not in parameters)
    if unknown:
        raise ValueError(
            f"loss '{name}' ({cls.__name__}) does not take argument(s) {', '.join(unknown)}; "
            f"valid arguments: {', '.join(parameters)}"
        )


def _loss_class(name: str, target: str | None) -> type:
    if target is None:
        raise ValueError(
            f"loss config '{name}' has no _target_; give the loss class, e.g. _target_: deepmi.losses.LMILoss"
        )
    try:
        return get_class(target)
    except Exception as error:  # Hydra raises ImportError or ValueError depending on what is missing
        raise ValueError(f"loss '{name}': _target_ {target} is not an importable class ({error})") from error


def loss_family(loss_cfg: DictConfig | dict[str, Any]) -> str:
    """The ``family`` class attribute of the loss a config builds (without building it)."""
    target = loss_cfg.get("_target_")
    cls = _loss_class(loss_cfg.get("name", "<unnamed>"), target)
    family = getattr(cls, "family", None)
    if not isinstance(family, str) or not family:
        raise ValueError(
            f"loss '{loss_cfg.get('name')}': class {target} has no family attribute; set family = 'image' "
            "(a loss between a prediction and a target image), 'infomax' or 'bottleneck' on the class"
        )
    return family


def losses_by_family(config_dir: Path = CONFIG_DIR) -> dict[str, list[str]]:
    """Map each loss family to the configs/loss/*.yaml names whose class has it."""
    families: dict[str, list[str]] = {}
    for path in sorted((config_dir / "loss").glob("*.yaml")):
        families.setdefault(loss_family(OmegaConf.load(path)), []).append(path.stem)
    return families
