"""cfg -> seeded fit + test -> metrics.json: check, instantiate, fit, test (run.py composes the cfg).

How the record lives and ends (folder lock, statuses, signals, the commands printed at the end) is
experiments.runner.lifecycle; whether a folder or checkpoint may be resumed, experiments.runner.resume;
``train=false`` goes to experiments.runner.evaluate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EMAWeightAveraging, Timer
from omegaconf import DictConfig

from experiments.runner.build import build_module
from experiments.runner.checkpointing import AtomicLastCheckpoint
from experiments.runner.config_checks import check_config
from experiments.runner.curves import CURVE_FILE, TestCurve
from experiments.runner.data_source import mark_data_source
from experiments.runner.divergence import StopOnNonFiniteLoss, TrainingDiverged
from experiments.runner.evaluate import evaluate
from experiments.runner.lifecycle import RunLifecycle, command_overrides, run_name
from experiments.runner.loggers import build_loggers, finish_wandb
from experiments.runner.progress import progress_callbacks
from experiments.runner.record import RUN_CONFIG_FILE, keep_record, read_record, worse_than_baseline
from experiments.runner.resume import check_resume, finished_record, resolve_ckpt_path
from experiments.runner.training_clock import TrainingClock

__all__ = ["build_module", "run"]


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one configuration; returns (and writes) the record (experiments.runner.record)."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.get("train", True):
        check_config(cfg)
        return evaluate(cfg, output_dir, {"logger": build_loggers(cfg) or False})
    with RunLifecycle(cfg, output_dir) as life:
        check_config(cfg)  # inside the lifecycle: a bad value is recorded as this job's failure
        life.set_data_source(mark_data_source(cfg))
        previous = previous_result(cfg, output_dir)
        if previous is not None:
            return previous
        ckpt_path = resolve_ckpt_path(cfg, output_dir)
        if ckpt_path is not None:
            check_resume(cfg, output_dir, ckpt_path)  # before anything in the folder is written
        if cfg.seed is not None:
            L.seed_everything(cfg.seed, workers=True)
        life.clock = TrainingClock()
        module = build_module(cfg)
        if not isinstance(module, L.LightningModule):  # a procedure, e.g. the MIGE toy
            life.claim()
            return life.end(status="finished", metrics=module.run(output_dir))
        # kept in every checkpoint: TaskModule.load_from_checkpoint(path) rebuilds the module from it
        module.save_hyperparameters({"config": life.record["config"]})
        return fit_and_test(cfg, module, output_dir, ckpt_path, life)


def previous_result(cfg: DictConfig, output_dir: Path) -> dict[str, Any] | None:
    """A finished record this run may return instead of training; refuses to replace a finished run."""
    if cfg.get("skip_if_finished"):
        previous = finished_record(cfg, output_dir)
        if previous is not None:
            if cfg.get("records_dir"):
                keep_record(cfg, output_dir, Path(cfg.records_dir), run_name(cfg))
            return previous
        # A fresh machine has no run folders, only the records committed to the repository:
        # without this, continuing a sweep there would redo every finished run (hours for MNIST).
        if cfg.get("records_dir"):
            return finished_record(cfg, Path(cfg.records_dir) / run_name(cfg))
    record = read_record(output_dir)
    if record is None or record.get("status") != "finished":
        return None
    if cfg.get("ckpt_path") == "last":
        return finished_record(cfg, output_dir, "resumed")
    raise FileExistsError(
        f"{output_dir} holds a finished run; a new run there would replace its record. Resume or skip it "
        "(ckpt_path=last or skip_if_finished=true, same config), evaluate it (python run.py "
        "evaluate=<folder>), or run in another folder."
    )


def fit_and_test(
    cfg: DictConfig, module: L.LightningModule, output_dir: Path, ckpt_path: str | None, life: RunLifecycle
) -> dict[str, Any]:
    datamodule = instantiate(cfg.dataset_module, dataset_factory=instantiate(cfg.dataset))
    ckpt_cfg = cfg.get("checkpoint") or {}
    checkpoint = AtomicLastCheckpoint(
        output_dir / "checkpoints", every_n_train_steps=ckpt_cfg.get("every_n_train_steps")
    )
    life.checkpoint = checkpoint
    loggers = build_loggers(cfg)
    extra = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    if cfg.get("ema_decay") is not None:  # before the curve, which evaluates the average it keeps
        extra.insert(0, EMAWeightAveraging(decay=float(cfg.ema_decay)))
    every = int(cfg.get("curve_every_n_epochs") or 0)
    if every and hasattr(module, "curve_metrics"):
        extra.append(TestCurve(output_dir / CURVE_FILE, every))
    # divergence first: a NaN epoch must raise before the checkpoint overwrites a good one;
    # the checkpoint last, so it holds what the other callbacks did that epoch
    callbacks = [StopOnNonFiniteLoss(), life.clock, *progress_callbacks(cfg), *extra, checkpoint]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    life.trainer = trainer
    for logger in loggers:
        logger.log_hyperparams(life.record["config"])
    if trainer.is_global_zero:
        (output_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        config = {
            "fingerprint": life.record["config_fingerprint"],
            "overrides": command_overrides(),  # what python run.py resume=<folder> replays
            "config": life.record["config"],
        }
        (output_dir / RUN_CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
    life.claim()  # status "running": replaces any older, unfinished record here
    try:
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        except TrainingDiverged as error:
            return life.end(status="diverged", diverged_at_step=error.step, stop_reason=str(error))
        reason = stop_reason(trainer, checkpoint)
        if reason is not None:
            return life.end(status="stopped", stop_reason=reason)
        metrics: dict[str, float] = {}
        if cfg.test:
            for result in trainer.test(module, datamodule=datamodule, verbose=False):
                metrics.update({k: float(v) for k, v in result.items()})
        flags = worse_than_baseline(metrics)
        return life.end(
            status="finished", metrics=metrics, **({"flag_worse_than_baseline": flags} if flags else {})
        )
    finally:
        finish_wandb(loggers)


def stop_reason(trainer: L.Trainer, checkpoint: AtomicLastCheckpoint) -> str | None:
    """Why fit ended before max_epochs / max_steps, and where it resumes; None if it ran to the end."""
    if trainer.fast_dev_run:
        return None
    max_steps = trainer.max_steps if trainer.max_steps is not None else -1
    if max_steps > 0 and trainer.global_step >= max_steps:
        return None
    max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
    if max_epochs >= 0 and trainer.current_epoch >= max_epochs and not checkpoint.skipped_partial_epoch:
        return None
    where = f"at epoch {trainer.current_epoch}, step {trainer.global_step}"
    if checkpoint.saved_step is not None:
        where += f"; last.ckpt holds step {checkpoint.saved_step}, where a resume continues"
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is not None and timer.time_remaining() is not None and timer.time_remaining() <= 0:
        return f"trainer.max_time reached {where}"
    return f"stopped by a callback (trainer.should_stop) {where}"
