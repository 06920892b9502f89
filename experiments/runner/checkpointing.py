"""Checkpoints that survive a kill at any moment: ``last.ckpt`` rewritten atomically every epoch.

Lightning's ``ModelCheckpoint(save_last=True, save_top_k=0)`` writes ``last.ckpt`` only when it
also saved a top-k checkpoint, i.e. never before training ends; a run killed mid-way (SIGKILL on a
cluster, a closed laptop) then leaves nothing to resume from. This callback writes the state to a
temporary file and renames it over ``last.ckpt`` (``os.replace`` is atomic on POSIX), so a kill
during the write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

LAST = "last.ckpt"


class AtomicLastCheckpoint(Checkpoint):
    """Save ``<dirpath>/last.ckpt`` at every epoch end and, optionally, every ``every_n_train_steps``.

    Epoch-end checkpoints resume bit-exactly (the data order is seeded by (seed, epoch) and the RNG
    states travel in the checkpoint). A mid-epoch checkpoint resumes at its step, but Lightning
    restarts that epoch's data iterator, so the rest of that epoch sees other batches: use it for
    epochs long enough that losing one matters more than exactness.
    """

    def __init__(self, dirpath: str | Path, every_n_train_steps: int | None = None) -> None:
        if every_n_train_steps is not None and int(every_n_train_steps) < 1:
            raise ValueError(
                f"checkpoint.every_n_train_steps must be >= 1 or null, got {every_n_train_steps}; "
                "null saves at epoch ends only"
            )
        self.dirpath = Path(dirpath)
        self.every_n_train_steps = int(every_n_train_steps) if every_n_train_steps else None

    @property
    def last_path(self) -> Path:
        return self.dirpath / LAST

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        step = trainer.global_step
        if self.every_n_train_steps and step > 0 and step % self.every_n_train_steps == 0:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking:
            return
        tmp = self.dirpath / f".{LAST}.partial"
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
        # the full state (optimizer, loops, callbacks) to resume from; every rank calls it, rank 0 writes
        trainer.save_checkpoint(tmp, weights_only=False)
        if trainer.is_global_zero:
            os.replace(tmp, self.last_path)
        trainer.strategy.barrier("atomic_last_checkpoint")
