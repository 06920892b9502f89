"""A training run's hold on its folder, from lock to last word in ``metrics.json``.

:class:`RunLifecycle` wraps one training run: it takes the folder's lock (experiments.runner.run_lock),
turns SIGTERM and SIGINT into a recorded stop (experiments.runner.stop_signals), writes ``running``
when the run claims the folder and the final status when it ends, however it ends (see
experiments.runner.record for the statuses). A run that fails before it claimed the folder records
``failed`` only where that replaces nothing but a dead run's ``running``: a finished, diverged or
stopped record of an earlier run is left as it was. At its start the run says where it writes; at
its end, the exact commands that resume or evaluate it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from experiments.runner.checkpointing import LAST, AtomicLastCheckpoint
from experiments.runner.environment import environment_info
from experiments.runner.fingerprint import fingerprint
from experiments.runner.record import (
    KEPT_STATUSES,
    METRICS_FILE,
    describe_run,
    error_fields,
    keep_record,
    read_record,
    summarize,
    write_record,
)
from experiments.runner.run_lock import RunLock
from experiments.runner.stop_signals import RunStopped, catch_stop_signals
from experiments.runner.training_clock import TrainingClock

log = logging.getLogger(__name__)


def run_name(cfg: DictConfig) -> str:
    """Name a run by its command-line overrides (what distinguishes it inside its group)."""
    if HydraConfig.initialized():
        overrides = HydraConfig.get().job.override_dirname
        if overrides:
            return overrides
    loss = cfg.loss.name if cfg.get("loss") is not None else "noloss"
    return f"{cfg.experiment_name}-{loss}-seed{cfg.seed}"


def command_overrides() -> list[str]:
    """The run's command-line overrides (what ``resume=<folder>`` replays), if Hydra composed it."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def next_commands(output_dir: Path, status: str) -> list[str]:
    """Shell commands, quoted, that continue or evaluate this run (folder names may hold '=' and ',')."""
    folder = "'" + str(output_dir).replace("'", "'\"'\"'") + "'"  # always quoted: '=' and ',' read as text
    if status == "finished":
        return [f"evaluate:  python run.py evaluate={folder}"]
    if status in ("stopped", "failed", "running") and (output_dir / "checkpoints" / LAST).exists():
        return [f"resume:    python run.py resume={folder}"]
    return []


def _base_record(cfg: DictConfig) -> dict[str, Any]:
    try:
        config = OmegaConf.to_container(cfg, resolve=True)
        return {
            **describe_run(cfg),
            "status": "running",
            "config_fingerprint": fingerprint(cfg),
            "config": config,
        }
    except Exception:  # a config that does not even resolve: record what there is
        return {"status": "running", "config": OmegaConf.to_container(cfg, resolve=False)}


class RunLifecycle:
    """``with RunLifecycle(cfg, folder) as life: ... life.claim(); ... life.end()``.

    Only global rank 0 locks and writes (DDP ranks share its folder); signals are caught on every rank.
    """

    def __init__(self, cfg: DictConfig, output_dir: Path) -> None:
        self.cfg, self.output_dir = cfg, Path(output_dir)
        self.is_writer = rank_zero_only.rank == 0
        self.lock = RunLock(self.output_dir, enabled=self.is_writer)
        self.record = _base_record(cfg)
        self.claimed = False
        self.trainer: L.Trainer | None = None
        self.clock: TrainingClock | None = None
        self.checkpoint: AtomicLastCheckpoint | None = None
        self._signals = catch_stop_signals()

    def __enter__(self) -> RunLifecycle:
        self.lock.__enter__()
        self._signals.__enter__()
        if self.is_writer:
            log.info("run folder: %s (record: %s)", self.output_dir, self.output_dir / METRICS_FILE)
        return self

    def set_data_source(self, source: str) -> None:
        """Record which data the run reads (experiments.runner.data_source); cfg may have gained a key."""
        self.record = {**_base_record(self.cfg), "data_source": source}

    def claim(self) -> None:
        """Write ``running``: from here on the folder's record is this run's."""
        if self.is_writer:
            write_record(self.output_dir, self.record)
        self.claimed = True

    def end(self, **fields: Any) -> dict[str, Any]:
        """Write the final record (and keep a copy in records_dir if set); returns it."""
        self.record.update(fields)
        self._add_timing()
        if self.is_writer:
            self._write_and_report()
        return self.record

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if error is not None and self.record.get("status") == "running":
                self._record_abnormal_end(error)
        finally:
            self._signals.__exit__(None, None, None)
            self.lock.release()

    def _add_timing(self) -> None:
        if self.clock is not None:
            self.record["wall_time_s"] = round(self.clock.elapsed(), 2)  # summed over resumptions
            if self.clock.resumes:
                self.record["resumes"] = self.clock.resumes
        self.record["environment"] = environment_info()

    def _where(self) -> str:
        if self.trainer is None:
            return "before training started"
        where = f"at epoch {self.trainer.current_epoch}, step {self.trainer.global_step}"
        if self.checkpoint is not None and self.checkpoint.saved_step is not None:
            where += f"; {LAST} holds step {self.checkpoint.saved_step}, where a resume continues"
        return where

    def _record_abnormal_end(self, error: BaseException) -> None:
        if isinstance(error, RunStopped | KeyboardInterrupt):
            signum = error.signum if isinstance(error, RunStopped) else 2
            name = error.name if isinstance(error, RunStopped) else "SIGINT"
            fields = {
                "stop_signal": name,
                "stop_signal_number": signum,
                "stop_reason": f"received {name} {self._where()}",
            }
            status = "stopped"
        else:
            fields, status = error_fields(error), "failed"
            fields["stop_reason"] = f"{fields['error_type']} {self._where()}"
        self.record.update(status=status, **fields)
        previous = read_record(self.output_dir)
        if not self.is_writer or not (
            self.claimed or previous is None or previous.get("status") == "running"
        ):
            log.error(
                "run %s (%s); %s keeps the earlier run's record", status, fields["stop_reason"], METRICS_FILE
            )
            return
        try:
            self._add_timing()
            self._write_and_report()
        except Exception as write_error:  # never hide the run's own error behind a failed write
            log.error("could not write the %s record: %s", status, write_error)

    def _write_and_report(self) -> None:
        path = write_record(self.output_dir, self.record)
        status = self.record["status"]
        if status == "finished":
            log.info("metrics: %s -> %s", self.record["metrics"], path)
            print(summarize(self.record["metrics"]), flush=True)
        else:
            log.error("run %s: %s (%s)", status, self.record.get("stop_reason"), path)
        if self.cfg.get("records_dir") and status in KEPT_STATUSES:
            keep_record(self.cfg, self.output_dir, Path(self.cfg.records_dir), run_name(self.cfg))
        lines = [f"run {status}; record: {path}", *next_commands(self.output_dir, status)]
        print("\n".join(lines), flush=True)
