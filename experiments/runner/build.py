"""A run's config -> its module, and a checkpoint -> the module it was trained as.

Both ``experiments.runner.train`` and ``TaskModule.load_from_checkpoint`` (experiments/tasks/base.py)
import this module, which imports neither of them: no import cycle between runner and tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from experiments.runner.checkpointing import read_checkpoint, stored_config
from experiments.runner.legacy import upgrade_config
from experiments.runner.losses import build_loss


def build_module(cfg: DictConfig) -> Any:
    """model + loss + module from the config (a LightningModule, or a procedure such as the toy)."""
    kwargs: dict[str, Any] = {}
    if cfg.get("model") is not None:
        kwargs["model"] = instantiate(cfg.model)
    if cfg.get("loss") is not None:
        kwargs["loss"] = build_loss(cfg.loss)
    return instantiate(cfg.module, **kwargs)


def module_from_checkpoint(checkpoint_path: str | Path) -> tuple[Any, dict[str, Any]] | None:
    """(module with the checkpoint's weights, its config in today's layout), built from the config
    ``run.py`` stored in the checkpoint; None for a checkpoint without one."""
    checkpoint = read_checkpoint(checkpoint_path)
    config = stored_config(checkpoint)
    if config is None:
        return None
    config = upgrade_config(config)  # a checkpoint written before a layout change
    module = build_module(OmegaConf.create(config))
    module.save_hyperparameters({"config": config})
    module.load_state_dict(checkpoint["state_dict"])
    return module, config
