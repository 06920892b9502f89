"""Stop a run the moment its training loss is not finite, instead of training on NaN."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch


class TrainingDiverged(RuntimeError):
    """Raised from inside ``fit``; ``experiments.runner.train`` records the run as ``diverged``."""

    def __init__(self, step: int, key: str, value: float) -> None:
        self.step, self.key, self.value = step, key, value
        super().__init__(
            f"training diverged: {key} = {value} at step {step}. No test metrics are recorded. "
            "Lower the learning rate (module.optimizer.lr=...) or check the inputs for NaN."
        )


def _value(x: Any) -> float | None:
    if isinstance(x, torch.Tensor) and x.numel() == 1:
        return float(x.detach())
    if isinstance(x, float | int):
        return float(x)
    return None


class StopOnNonFiniteLoss(L.Callback):
    """Raise ``TrainingDiverged`` when the step's loss, or any logged ``train/*`` value, is NaN or inf.

    Automatic-optimisation modules return their loss, checked at the step it is computed. Modules
    that optimise manually (DIM, IB) return nothing; their logged ``train/*`` values are checked,
    which Lightning exposes one step later.
    """

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        value = _value(loss)
        if value is not None and not math.isfinite(value):
            raise TrainingDiverged(trainer.global_step, "train loss", value)
        self._check_logged(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._check_logged(trainer)

    @staticmethod
    def _check_logged(trainer: L.Trainer) -> None:
        for key, metric in trainer.callback_metrics.items():
            value = _value(metric)
            if key.startswith("train/") and value is not None and not math.isfinite(value):
                raise TrainingDiverged(trainer.global_step, key, value)
