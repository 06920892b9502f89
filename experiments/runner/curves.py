"""A per-epoch test curve (e.g. MNIST test error after every epoch), kept in the checkpoint and as CSV.

For plots of how a metric evolves, not for choosing a model: the reported number is still the
test after the last epoch. The evaluation runs under a forked RNG, so training draws the same
random numbers with or without the curve, and the rows travel in the checkpoint, so a resumed
run's curve.csv is the same as an uninterrupted one's.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging

CURVE_FILE = "curve.csv"


class TestCurve(L.Callback):
    """Every ``every_n_epochs`` epochs, call ``module.curve_metrics(test_loader)`` and append a row.

    Place it before the checkpoint callback so the row is in the checkpoint written that epoch.
    """

    def __init__(self, path: str | Path, every_n_epochs: int = 1) -> None:
        if every_n_epochs < 1:
            raise ValueError(
                f"curve_every_n_epochs must be >= 1 (or 0 to turn the curve off), got {every_n_epochs}"
            )
        self.path, self.every_n_epochs = Path(path), every_n_epochs
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs or trainer.sanity_checking:
            return
        datamodule = trainer.datamodule
        datamodule.setup("test")
        was_training = module.training
        module.eval()
        # with weight averaging (ema_decay), evaluate the average, as the test does: its public
        # validation hooks swap the averaged weights in and back out
        averaging = [c for c in trainer.callbacks if isinstance(c, WeightAveraging)]
        for callback in averaging:
            callback.on_validation_epoch_start(trainer, module)
        try:
            with torch.random.fork_rng(), torch.no_grad():
                # every rank evaluates the whole split (no DDP sharding), so the row is the full test metric
                metrics = module.curve_metrics(datamodule.full_test_dataloader())
        finally:
            for callback in reversed(averaging):
                callback.on_validation_epoch_end(trainer, module)
        module.train(was_training)
        self.rows = [r for r in self.rows if r["epoch"] < epoch]
        self.rows.append(
            {"epoch": epoch, "step": trainer.global_step, **{k: float(v) for k, v in metrics.items()}}
        )
        if trainer.is_global_zero:
            self._write()

    def _write(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.partial")
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(self.rows[-1]))
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.path)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))
