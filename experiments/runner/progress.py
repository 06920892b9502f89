"""A training progress bar that says "Epoch 3/50" and how long the whole run has left.

Lightning's bar shows "Epoch 3" (no total) and the ETA of the current epoch only; on a run of many
epochs the question is when the run ends. The overall ETA is this segment's time per optimizer
step times the steps left to ``trainer.estimated_stepping_batches`` (so a resumed run estimates
from its own pace, not from time spent before the resume).
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from omegaconf import DictConfig


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class RunProgressBar(TQDMProgressBar):
    """TQDM bar with the epoch total in its description and ``run_eta`` (whole run) in its postfix."""

    def __init__(self) -> None:
        super().__init__()
        self._started: float | None = None
        self._start_step = 0

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        super().on_train_start(trainer, module)
        self._started, self._start_step = time.perf_counter(), trainer.global_step

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        total = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs >= 0 else "?"
        self.train_progress_bar.set_description(f"Epoch {trainer.current_epoch + 1}/{total}")

    def get_metrics(self, trainer: L.Trainer, module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, module)
        items.pop("v_num", None)
        done = trainer.global_step - self._start_step
        total = trainer.estimated_stepping_batches
        if self._started is not None and done > 0 and math.isfinite(total):
            per_step = (time.perf_counter() - self._started) / done
            items["run_eta"] = format_seconds(per_step * max(0.0, total - trainer.global_step))
        return items


def progress_callbacks(cfg: DictConfig) -> list[L.Callback]:
    """The progress bar, where the trainer shows one."""
    return [RunProgressBar()] if (cfg.get("trainer") or {}).get("enable_progress_bar", True) else []
