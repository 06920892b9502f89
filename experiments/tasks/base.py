"""The Lightning module every experiment builds on: optimizer, schedule, resumable RNG."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
LossFactory = Callable[..., nn.Module]


class TaskModule(L.LightningModule):
    """A network trained under a loss, with the optimizer and schedule given as Hydra partials.

    ``optimizer(params)`` builds the optimizer; ``scheduler(optimizer, total_steps=...)`` builds a
    per-step schedule. The loss's own parameters (e.g. a MINE critic) are optimised too. ``loss``
    may be a factory (a ``_partial_: true`` loss config) that the task completes with sizes only
    it knows, in :meth:`size_loss`.
    Checkpoints carry the RNG states so that a resumed run draws the same random numbers
    (dropout, sampling, random projections) as one that went straight through.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module | LossFactory,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        adversary_optimizer: OptimizerFactory | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.loss = loss if isinstance(loss, nn.Module) else self.size_loss(loss)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # for objectives with their own adversary (a MINE statistics network, a DIM critic)
        self.adversary_optimizer_factory = adversary_optimizer or optimizer
        self.optimizer_names: tuple[str, ...] = ()

    def size_loss(self, factory: LossFactory) -> nn.Module:
        """Build a loss whose config left sizes to the task (``_partial_: true``); see InfoMaxModule."""
        raise ValueError(
            f"{type(self).__name__} takes a complete loss, but the loss config has _partial_: true; "
            "drop _partial_ and give every constructor argument in the loss YAML"
        )

    def name_optimizers(self, **optimizers: torch.optim.Optimizer | None) -> list[torch.optim.Optimizer]:
        """The optimizers in the order given (None skipped), remembered by name for :meth:`optimizer`.

        The order is what checkpoints store optimizer states by: keep it when adding one.
        """
        kept = {name: optimizer for name, optimizer in optimizers.items() if optimizer is not None}
        self.optimizer_names = tuple(kept)
        return list(kept.values())

    def optimizer(self, name: str) -> Any:
        """The (Lightning-wrapped) optimizer named in configure_optimizers, or None if there is none."""
        if name not in self.optimizer_names:
            return None
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        return optimizers[self.optimizer_names.index(name)]

    def adversary_optimizer(self) -> torch.optim.Optimizer | None:
        """An optimizer for the loss's adversary parameters, if the loss has any (manual optimization)."""
        parameters = (
            list(self.loss.adversary_parameters()) if hasattr(self.loss, "adversary_parameters") else []
        )
        return self.adversary_optimizer_factory(parameters) if parameters else None

    def adversary_step(self, out: dict[str, torch.Tensor]) -> None:
        """One step of the adversary on its own loss, after the main step (no-op without one)."""
        optimizer = self.optimizer("adversary")
        if optimizer is None:
            return
        optimizer.zero_grad()  # the main loss reached the adversary too; only its own loss counts
        self.manual_backward(out["adversary_loss"])
        optimizer.step()

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        total_steps = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler_factory(optimizer, total_steps=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    examples: dict[str, torch.Tensor] | None = None

    def keep_examples(self, batch_idx: int, **images: torch.Tensor) -> None:
        """Remember the first test batch's images for the examples panel."""
        if batch_idx == 0:
            self.examples = {name: image.detach().cpu() for name, image in images.items()}

    def on_test_end(self) -> None:
        if self.examples and self.trainer.is_global_zero and not self.trainer.fast_dev_run:
            from deepmi.data.preview import save_grid

            path = Path(self.trainer.default_root_dir) / "examples.png"
            save_grid(path, self.examples, title=f"{type(self).__name__}: first test examples")

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: str | Path, map_location: Any = "cpu", **kwargs: Any):
        """Rebuild the module a checkpoint of ``run.py`` was trained as, with its weights (notebooks).

        ``experiments.runner.train`` stores the run's resolved config in the checkpoint's hyper-parameters;
        ``experiments.runner.build`` instantiates model, loss and module from it (on the CPU), so no
        constructor arguments are needed. An unreadable file is an error naming it and the fix.
        """
        from experiments.runner.build import module_from_checkpoint

        built = module_from_checkpoint(checkpoint_path)
        if built is None:  # not written by run.py: Lightning's own loader, with the caller's arguments
            return super().load_from_checkpoint(checkpoint_path, map_location=map_location, **kwargs)
        module, _ = built
        if not isinstance(module, cls):
            raise TypeError(
                f"{checkpoint_path} holds a {type(module).__name__}, not a {cls.__name__}; "
                f"load it with {type(module).__name__}.load_from_checkpoint"
            )
        return module.eval()

    def on_test_start(self) -> None:
        # Under DDP without SyncBatchNorm each rank ends training with its own batch-norm running
        # statistics; rank 0's are the ones saved in the checkpoint. Give every rank rank 0's
        # buffers, so the test (each item seen once, metrics synced) equals a single-process test
        # of the checkpoint.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for buffer in self.buffers():
                torch.distributed.broadcast(buffer.data, src=0)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # plain types and tensors only: checkpoints load with torch.load(weights_only=True)
        kind, keys, position, has_gauss, cached_gauss = np.random.get_state()  # noqa: NPY002 (the global state is what we restore)
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gauss],
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_states")
        if states is None:
            return
        torch.set_rng_state(states["torch"])
        kind, keys, position, has_gauss, cached_gauss = states["numpy"]
        numpy_state = (kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gauss)
        np.random.set_state(numpy_state)  # noqa: NPY002
        random.setstate(states["python"])
        if states["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
