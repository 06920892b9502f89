"""cfg -> seeded fit + test -> metrics.json in the run's output folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EMAWeightAveraging, Timer
from omegaconf import DictConfig, OmegaConf

from experiments.runner.checkpointing import LAST, AtomicLastCheckpoint
from experiments.runner.config_checks import check_config
from experiments.runner.curves import CURVE_FILE, TestCurve
from experiments.runner.divergence import StopOnNonFiniteLoss, TrainingDiverged
from experiments.runner.environment import environment_info
from experiments.runner.fingerprint import differences, fingerprint, result_config
from experiments.runner.losses import build_loss
from experiments.runner.training_clock import TrainingClock

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


def build_module(cfg: DictConfig) -> Any:
    """model + loss + module from the config (a LightningModule, or a procedure such as the toy)."""
    kwargs: dict[str, Any] = {}
    if cfg.get("model") is not None:
        kwargs["model"] = instantiate(cfg.model)
    if cfg.get("loss") is not None:
        kwargs["loss"] = build_loss(cfg.loss)
    return instantiate(cfg.module, **kwargs)


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
    last = output_dir / "checkpoints" / LAST
    if last.exists():
        log.info("resuming from %s", last)
        return str(last)
    log.info("ckpt_path=last but %s does not exist yet: starting fresh", last)
    return None


def summarize(metrics: dict[str, float]) -> str:
    """One line per test metric, with the trivial baseline's value beside it where the module logs one."""
    lines = ["test metrics (trivial baseline in brackets):"]
    for key, value in metrics.items():
        if key.startswith("test/baseline_") or not key.startswith("test/"):
            continue
        name = key.removeprefix("test/")
        baselines = []
        for other, v in metrics.items():
            rest = other.removeprefix("test/baseline_")
            if other.startswith("test/baseline_") and (rest == name or rest.endswith(f"_{name}")):
                label = "baseline" if rest == name else rest.removesuffix(f"_{name}")
                baselines.append(f"{label} {v:.4g}")
        lines.append(f"  {name:<16} {value:.4g}" + (f"  [{', '.join(baselines)}]" if baselines else ""))
    return "\n".join(lines)


def read_record(output_dir: Path) -> dict[str, Any] | None:
    """The metrics record in output_dir (any status), if there is a readable one."""
    try:
        return json.loads((output_dir / METRICS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def check_same_run(cfg: DictConfig, old_config: dict[str, Any] | None, output_dir: Path, action: str) -> None:
    """Refuse to resume or skip a folder whose run had another result-relevant config."""
    if old_config is None:
        return
    old, new = result_config(old_config), result_config(cfg)
    changed = differences(old, new)
    if changed:
        raise ValueError(
            f"{output_dir} holds a run with another config, so it cannot be {action}:\n  "
            + "\n  ".join(changed)
            + "\nRun in a new folder (drop hydra.run.dir / hydra.sweep.dir, or pick another), or delete "
            "that folder to start over there."
        )


def _write_record(output_dir: Path, record: dict[str, Any]) -> None:
    path = output_dir / METRICS_FILE
    tmp = path.with_name(f".{METRICS_FILE}.partial")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    tmp.replace(path)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Train and test one configuration; returns (and writes) the metrics record.

    ``status`` in the record says what happened: ``running`` (written at the start, so an
    interrupted run never leaves an older result behind), ``finished``, ``diverged`` (non-finite
    loss; ``diverged_at_step``) or ``stopped`` (``trainer.max_time``, an interrupt or a callback;
    ``stop_reason``). Only ``finished`` records carry test metrics.
    """
    check_config(cfg)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if cfg.get("skip_if_finished"):
        previous = _finished_record(cfg, output_dir)
        if previous is not None:
            if cfg.get("records_dir"):
                keep_record(cfg, output_dir, Path(cfg.records_dir))
            return previous
        # A fresh machine has no run folders, only the records committed to the repository:
        # without this, continuing a sweep there would redo every finished run (hours for MNIST).
        if cfg.get("records_dir"):
            kept = _finished_record(cfg, Path(cfg.records_dir) / run_name(cfg))
            if kept is not None:
                return kept
    if cfg.get("ckpt_path") == "last" and (output_dir / "checkpoints" / LAST).exists():
        check_same_run(cfg, _run_config(output_dir), output_dir, "resumed")
    if cfg.seed is not None:
        L.seed_everything(cfg.seed, workers=True)
    clock = TrainingClock()

    module = build_module(cfg)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    if isinstance(module, L.LightningModule):
        # kept in every checkpoint: TaskModule.load_from_checkpoint(path) rebuilds the module from it
        module.save_hyperparameters({"config": resolved})
    record: dict[str, Any] = {
        **describe_run(cfg),
        "status": "running",
        "config_fingerprint": fingerprint(cfg),
        "config": resolved,
    }
    if isinstance(module, L.LightningModule):
        is_main = _fit_and_test(cfg, module, output_dir, record, clock)
    else:  # a procedure that is not gradient training of one network, e.g. the MIGE toy
        record.update(status="finished", metrics=module.run(output_dir))
        is_main = True

    record["wall_time_s"] = round(clock.elapsed(), 2)  # summed over resumptions
    if clock.resumes:
        record["resumes"] = clock.resumes
    record["environment"] = environment_info()
    if is_main:
        _write_record(output_dir, record)
        if record["status"] in ("finished", "evaluated"):
            log.info("metrics: %s -> %s", record["metrics"], output_dir / METRICS_FILE)
            print(summarize(record["metrics"]), flush=True)
        else:
            where = output_dir / METRICS_FILE
            log.error("run %s: %s (%s)", record["status"], record.get("stop_reason"), where)
        if cfg.get("records_dir") and record["status"] in KEPT_STATUSES:
            keep_record(cfg, output_dir, Path(cfg.records_dir))
    return record


RUN_CONFIG_FILE = "checkpoints/run_config.json"
# A divergence is an outcome of the method (the tables count it as a failed seed), so its record is
# kept like a finished one; a stopped run was interrupted and resumes, so it is not.
KEPT_STATUSES = ("finished", "diverged")
# small per-run outputs kept with the record (curves, toy tables); never checkpoints or images
KEPT_SUFFIXES = (".csv",)
KEPT_MAX_BYTES = 256_000


def keep_record(cfg: DictConfig, output_dir: Path, records_dir: Path) -> Path:
    """Copy a finished or diverged run's metrics.json (and its small CSV curves) to
    records_dir/<run name>/.

    records_dir is meant to be tracked by git (results/runs/<scale>/<experiment>), so the copy has
    the repository's absolute root replaced by "." and a data folder outside it by
    "$DEEPMI_DATA", and nothing machine-specific beyond the environment block that says which
    device produced it.
    """
    target = records_dir / run_name(cfg)
    target.mkdir(parents=True, exist_ok=True)
    text = redact_paths((output_dir / METRICS_FILE).read_text(), cfg)
    (target / METRICS_FILE).write_text(text)
    for path in output_dir.iterdir():
        if path.suffix in KEPT_SUFFIXES and path.stat().st_size <= KEPT_MAX_BYTES:
            (target / path.name).write_bytes(path.read_bytes())
    log.info("record kept in %s", target)
    return target


DATA_PLACEHOLDER = "$DEEPMI_DATA"  # what a committed record says for a data root outside the repo


def redact_paths(text: str, cfg: DictConfig) -> str:
    """This machine's absolute folders in a record's text, replaced by names any machine can read."""
    root = str(Path(cfg.paths.root_dir).resolve())
    data = str(Path(cfg.paths.data_dir).resolve())
    if not Path(data).is_relative_to(root):  # DEEPMI_DATA elsewhere (under the root, "./data" is right)
        text = text.replace(data, DATA_PLACEHOLDER)
    return text.replace(root, ".")


def _finished_record(cfg: DictConfig, folder: Path) -> dict[str, Any] | None:
    """The finished record in folder (a run folder or a kept record's), if any.

    One of another result-relevant config is refused, never taken for this run.
    """
    record = read_record(folder)
    if record is None or record.get("status") != "finished":
        return None
    check_same_run(cfg, record.get("config"), folder, "skipped as finished")
    log.info("skipping: %s already holds this run's finished record", folder)
    return record


def _run_config(output_dir: Path) -> dict[str, Any] | None:
    """The config the checkpoint in output_dir was trained with (saved beside it)."""
    try:
        return json.loads((output_dir / RUN_CONFIG_FILE).read_text())["config"]
    except (OSError, json.JSONDecodeError, KeyError):
        record = read_record(output_dir)
        return record.get("config") if record else None


def _stop_reason(trainer: L.Trainer) -> str | None:
    """Why fit ended before max_epochs / max_steps, or None if it ran to the end."""
    if trainer.fast_dev_run:
        return None
    max_steps = trainer.max_steps if trainer.max_steps is not None else -1
    if max_steps > 0 and trainer.global_step >= max_steps:
        return None
    max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
    if max_epochs >= 0 and trainer.current_epoch >= max_epochs:
        return None
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if timer is not None and timer.time_remaining() is not None and timer.time_remaining() <= 0:
        return f"trainer.max_time reached at epoch {trainer.current_epoch}, step {trainer.global_step}"
    return f"stopped at epoch {trainer.current_epoch}, step {trainer.global_step} (a callback or signal)"


def _evaluate(
    cfg: DictConfig,
    trainer: L.Trainer,
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    ckpt_path: str | None,
    record: dict[str, Any],
    loggers: list[Any],
) -> bool:
    """train=false: test a checkpoint's weights (status "evaluated", never counted as a training run)."""
    if ckpt_path is None or not Path(ckpt_path).is_file():
        raise ValueError(
            f"train=false evaluates a checkpoint, but ckpt_path={cfg.get('ckpt_path')!r} is not a file; "
            "pass ckpt_path=<run folder>/checkpoints/last.ckpt"
        )
    try:
        metrics: dict[str, float] = {}
        for result in trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False):
            metrics.update({k: float(v) for k, v in result.items()})
    finally:
        _finish_wandb(loggers)
    record.update(status="evaluated", evaluated_checkpoint=str(ckpt_path), metrics=metrics)
    return trainer.is_global_zero


def _fit_and_test(
    cfg: DictConfig,
    module: L.LightningModule,
    output_dir: Path,
    record: dict[str, Any],
    clock: TrainingClock,
) -> bool:
    """Fit (and test if the fit ran to the end); fills record's status and metrics. True on rank 0."""
    datamodule = instantiate(cfg.dataset_module, dataset_factory=instantiate(cfg.dataset))
    ckpt_cfg = cfg.get("checkpoint") or {}
    checkpoint = AtomicLastCheckpoint(
        output_dir / "checkpoints", every_n_train_steps=ckpt_cfg.get("every_n_train_steps")
    )
    loggers = build_loggers(cfg)
    extra = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    if cfg.get("ema_decay") is not None:  # before the curve, which evaluates the average it keeps
        extra.insert(0, EMAWeightAveraging(decay=float(cfg.ema_decay)))
    every = int(cfg.get("curve_every_n_epochs") or 0)
    if every and hasattr(module, "curve_metrics"):
        extra.append(TestCurve(output_dir / CURVE_FILE, every))
    # divergence first: a NaN epoch must raise before the checkpoint overwrites a good one;
    # the checkpoint last, so it holds what the other callbacks did that epoch
    callbacks = [StopOnNonFiniteLoss(), clock, *extra, checkpoint]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(record["config"])
    ckpt_path = resolve_ckpt_path(cfg, output_dir)
    if trainer.is_global_zero:
        (output_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        config = {"fingerprint": record["config_fingerprint"], "config": record["config"]}
        (output_dir / RUN_CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
        _write_record(output_dir, record)  # status "running": replaces any older result here
    if not cfg.get("train", True):
        return _evaluate(cfg, trainer, module, datamodule, ckpt_path, record, loggers)
    try:
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        except TrainingDiverged as error:
            log.error("%s", error)
            record.update(status="diverged", diverged_at_step=error.step, stop_reason=str(error))
            return trainer.is_global_zero
        except (KeyboardInterrupt, SystemExit):
            record.update(status="stopped", stop_reason="interrupted (SIGINT)")
            if trainer.is_global_zero:
                _write_record(output_dir, record)
            raise
        reason = _stop_reason(trainer)
        if reason is not None:
            record.update(status="stopped", stop_reason=reason)
            return trainer.is_global_zero
        metrics: dict[str, float] = {}
        if cfg.test:
            for result in trainer.test(module, datamodule=datamodule, verbose=False):
                metrics.update({k: float(v) for k, v in result.items()})
        record.update(status="finished", metrics=metrics)
    finally:
        _finish_wandb(loggers)
    return trainer.is_global_zero


def _finish_wandb(loggers: list[Any]) -> None:
    if any(type(logger).__name__ == "WandbLogger" for logger in loggers):
        import wandb

        wandb.finish()  # so the next multirun job starts its own wandb run
