"""Checkpoints that survive a kill at any moment, and that say clearly when they cannot be read.

Lightning's ``ModelCheckpoint(save_last=True, save_top_k=0)`` writes ``last.ckpt`` only when it
also saved a top-k checkpoint, i.e. never before training ends; a run killed mid-way (SIGKILL on a
cluster, a closed laptop) then leaves nothing to resume from. :class:`AtomicLastCheckpoint` writes
the state to a temporary file and renames it over ``last.ckpt`` (``os.replace`` is atomic on
POSIX), so a kill during the write leaves the previous checkpoint intact; the one it replaces is
kept as ``previous.ckpt``, to fall back on if ``last.ckpt`` is later damaged (a full disk, a
truncated copy). :func:`read_checkpoint` turns an unreadable file into an error naming it and the fix.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

LAST = "last.ckpt"
PREVIOUS = "previous.ckpt"


class UnreadableCheckpointError(ValueError):
    """A checkpoint file that torch cannot load (truncated, empty, not a checkpoint)."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load`` of a run checkpoint on the CPU, or an error naming the file and what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} does not exist; pass ckpt_path=<run folder>/checkpoints/{LAST} "
            "(quote a path holding '=' or ',': \"ckpt_path='<path>'\"), or ckpt_path=last to resume "
            "this run folder's own checkpoint"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... by damage
        size = path.stat().st_size
        previous = path.with_name(PREVIOUS)
        fallback = (
            f"resume from the checkpoint before it with \"ckpt_path='{previous}'\" (it loses at most one "
            "epoch), or "
            if previous.is_file() and previous != path
            else ""
        )
        raise UnreadableCheckpointError(
            f"checkpoint {path} cannot be read ({size} bytes; {type(error).__name__}: {error}): it is "
            f"truncated or damaged (a full disk, an interrupted copy). Fix: {fallback}delete the run "
            "folder's checkpoints/ to start the run over."
        ) from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UnreadableCheckpointError(
            f"{path} is not a Lightning checkpoint of run.py (no state_dict); pass a "
            f"<run folder>/checkpoints/{LAST}"
        )
    return checkpoint


def stored_config(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The resolved run config that ``run.py`` keeps in a checkpoint (None for other checkpoints)."""
    return (checkpoint.get("hyper_parameters") or {}).get("config")


def epoch_completed(trainer: L.Trainer) -> bool:
    """Whether the epoch now ending ran all its batches (not cut short by a stop request)."""
    expected = trainer.num_training_batches
    done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
    return not math.isfinite(expected) or done >= expected


class AtomicLastCheckpoint(Checkpoint):
    """Save ``<dirpath>/last.ckpt`` at every epoch end and, optionally, every ``every_n_train_steps``.

    Epoch-end checkpoints resume bit-exactly (the data order is seeded by (seed, epoch) and the RNG
    states travel in the checkpoint). An epoch cut short by a stop request (``trainer.max_time``, a
    callback setting ``should_stop``) is not saved as if it had ended: ``last.ckpt`` stays at the
    last full epoch, so the resumed run redoes that epoch and ends like an uninterrupted one. A
    mid-epoch checkpoint (``every_n_train_steps``) resumes at its step, but Lightning restarts that
    epoch's data iterator, so the rest of that epoch sees other batches: use it for epochs long
    enough that losing one matters more than exactness.
    """

    def __init__(self, dirpath: str | Path, every_n_train_steps: int | None = None) -> None:
        if every_n_train_steps is not None and int(every_n_train_steps) < 1:
            raise ValueError(
                f"checkpoint.every_n_train_steps must be >= 1 or null, got {every_n_train_steps}; "
                "null saves at epoch ends only"
            )
        self.dirpath = Path(dirpath)
        self.every_n_train_steps = int(every_n_train_steps) if every_n_train_steps else None
        self.saved_step: int | None = None  # global step of the last checkpoint this run wrote
        self.skipped_partial_epoch = False

    @property
    def last_path(self) -> Path:
        return self.dirpath / LAST

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.last_path.is_file():  # resumed: the step the loops were restored to
            self.saved_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        step = trainer.global_step
        if self.every_n_train_steps and step > 0 and step % self.every_n_train_steps == 0:
            self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not epoch_completed(trainer):
            self.skipped_partial_epoch = True
            return
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
            self._keep_previous()
            os.replace(tmp, self.last_path)
        self.saved_step = trainer.global_step
        trainer.strategy.barrier("atomic_last_checkpoint")

    def _keep_previous(self) -> None:
        """last.ckpt -> previous.ckpt by a hard link, so a complete last.ckpt exists at every moment."""
        if not self.last_path.is_file():
            return
        link = self.dirpath / f".{PREVIOUS}.partial"
        link.unlink(missing_ok=True)
        try:
            os.link(self.last_path, link)
        except OSError:  # a filesystem without hard links: keep no fallback rather than copy gigabytes
            return
        os.replace(link, self.dirpath / PREVIOUS)
