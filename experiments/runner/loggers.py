"""The run's loggers from ``logger/`` (wandb named by the run's overrides, CSV), and their closing."""

from __future__ import annotations

from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from experiments.runner.lifecycle import run_name


def build_loggers(cfg: DictConfig) -> list[Any]:
    loggers = []
    for key, logger_cfg in (cfg.get("logger") or {}).items():
        if key == "wandb" and logger_cfg.get("name") is None:
            logger_cfg = OmegaConf.merge(logger_cfg, {"name": run_name(cfg)})
        loggers.append(instantiate(logger_cfg))
    return loggers


def finish_wandb(loggers: list[Any]) -> None:
    if any(type(logger).__name__ == "WandbLogger" for logger in loggers):
        import wandb

        wandb.finish()  # so the next multirun job starts its own wandb run
