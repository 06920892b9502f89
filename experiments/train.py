"""cfg -> seeded fit + test -> metrics.json in the run's output folder."""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from experiments.config_checks import check_loss_fits

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


def build_loss(loss_cfg: DictConfig | None) -> torch.nn.Module | None:
    """configs/loss/*.yaml -> module: image losses from deepmi.losses, MI objectives from estimators."""
    if loss_cfg is None:
        return None
    kwargs = OmegaConf.to_container(loss_cfg, resolve=True)
    name, family = kwargs.pop("name"), kwargs.pop("family")
    if family == "image":
        from deepmi.losses import build_loss as build
    else:
        from deepmi.estimators import build_objective as build
    return build(name, **kwargs)


def run_name(cfg: DictConfig) -> str:
    """Name a run by its command-line overrides (what distinguishes it inside its group)."""
    if HydraConfig.initialized():
        overrides = HydraConfig.get().job.override_dirname
        if overrides:
            return overrides
    loss = cfg.loss.name if cfg.get("loss") is not None else "noloss"
    return f"{cfg.experiment_name}-{loss}-seed{cfg.seed}"


def build_loggers(cfg: DictConfig) -> list[Any]:
    loggers = []
    for key, logger_cfg in (cfg.get("logger") or {}).items():
        if key == "wandb" and logger_cfg.get("name") is None:
            logger_cfg = OmegaConf.merge(logger_cfg, {"name": run_name(cfg)})
        loggers.append(instantiate(logger_cfg))
    return loggers


def device_name() -> str:
    """The GPU's name, or the CPU model and core count (what a results table should state)."""
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model} ({os.cpu_count()} cores)"


def environment_info() -> dict[str, Any]:
    import deepmi

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "deepmi": deepmi.__version__,
        "git_commit": commit,
        "device": torch.cuda.get_device_name(0)
        if torch.cuda.is_available()
        else platform.processor() or "cpu",
        "cuda": torch.cuda.is_available(),
        "torch_threads": torch.get_num_threads(),
    }


def describe_run(cfg: DictConfig) -> dict[str, Any]:
    """The fields a table builder needs to place this run in a table cell."""
    loss = cfg.get("loss")
    return {
        "experiment": cfg.experiment_name,
        "loss": loss.name if loss is not None else None,
        "bins": loss.get("bins") if loss is not None else None,
        "seed": cfg.seed,
        "debug": HydraConfig.get().runtime.choices.get("debug") if HydraConfig.initialized() else None,
    }


def resolve_ckpt_path(cfg: DictConfig, output_dir: Path) -> str | None:
    """'last' -> this run folder's last checkpoint if one exists (else a fresh start)."""
    if cfg.ckpt_path != "last":
        return cfg.ckpt_path
    last = output_dir / "checkpoints" / "last.ckpt"
    if last.exists():
        log.info("resuming from %s", last)
        return str(last)
    log.info("ckpt_path=last but %s does not exist yet: starting fresh", last)
    return None


def finished_record(output_dir: Path) -> dict[str, Any] | None:
    """The metrics record of a finished run in output_dir, if there is one."""
    path = output_dir / METRICS_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("status") == "finished" else None


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one configuration; returns (and writes) the metrics record."""
    check_loss_fits(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    finished = finished_record(output_dir)
    if cfg.get("skip_if_finished") and finished is not None:
        log.info("skipping: %s already holds a finished run", output_dir)
        return finished
    if cfg.seed is not None:
        L.seed_everything(cfg.seed, workers=True)
    started = time.perf_counter()

    kwargs: dict[str, Any] = {}
    if cfg.get("model") is not None:
        kwargs["model"] = instantiate(cfg.model)
    if cfg.get("loss") is not None:
        kwargs["loss"] = build_loss(cfg.loss)
    module = instantiate(cfg.module, **kwargs)

    if isinstance(module, L.LightningModule):
        metrics, is_main = _fit_and_test(cfg, module, output_dir)
    else:  # a procedure that is not gradient training of one network, e.g. the MIGE toy
        metrics, is_main = module.run(output_dir), True

    record = {
        **describe_run(cfg),
        "status": "finished",
        "metrics": metrics,
        "wall_time_s": round(time.perf_counter() - started, 2),
        "environment": environment_info(),
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    if is_main:
        (output_dir / METRICS_FILE).write_text(json.dumps(record, indent=2, default=str))
        log.info("metrics: %s -> %s", metrics, output_dir / METRICS_FILE)
    return record


def _fit_and_test(
    cfg: DictConfig, module: L.LightningModule, output_dir: Path
) -> tuple[dict[str, float], bool]:
    datamodule = instantiate(cfg.dataset_module, dataset_factory=instantiate(cfg.dataset))
    checkpoint = ModelCheckpoint(dirpath=output_dir / "checkpoints", save_last=True, save_top_k=0)
    loggers = build_loggers(cfg)
    callbacks = [checkpoint, *(instantiate(c) for c in (cfg.get("callbacks") or {}).values())]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resolve_ckpt_path(cfg, output_dir))
        metrics: dict[str, float] = {}
        if cfg.test:
            for result in trainer.test(module, datamodule=datamodule, verbose=False):
                metrics.update({k: float(v) for k, v in result.items()})
    finally:
        if any(type(logger).__name__ == "WandbLogger" for logger in loggers):
            import wandb

            wandb.finish()  # so the next multirun job starts its own wandb run
    return metrics, trainer.is_global_zero
