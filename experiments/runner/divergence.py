"""Stop a run the moment anything in training is not finite, instead of training on NaN.

Whoever sees the NaN or inf first names the step: the network's output (before the loss's own
input check would raise a plain ValueError), the loss, a gradient (before the optimizer applies
it), or a parameter after an optimizer step (a learning rate of inf or 1e30 turns finite
gradients into inf weights).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import lightning as L
import torch
from torch.utils.hooks import RemovableHandle


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


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)


def _first_non_finite(named: Iterator[tuple[str, torch.Tensor]]) -> tuple[str, float] | None:
    """(name, a non-finite value) of the first tensor holding NaN or inf, or None.

    One reduction per tensor (max of |x|: inf for inf, NaN for NaN, finite otherwise) and one
    host sync for all of them.
    """
    items = [(name, t.detach()) for name, t in named if t is not None and t.is_floating_point() and t.numel()]
    if not items:
        return None
    peaks = torch.stack([t.abs().amax().float() for _, t in items])
    bad = (~torch.isfinite(peaks)).nonzero()
    if bad.numel() == 0:
        return None
    index = int(bad[0])
    return items[index][0], float(peaks[index])


class StopOnNonFiniteLoss(L.Callback):
    """Raise ``TrainingDiverged`` at the first NaN or inf in training.

    Checked: the network's output (a forward hook on ``module.model``, training steps only), the
    step's loss and any logged ``train/*`` value (manual-optimisation modules such as DIM and IB
    return no loss; Lightning exposes their logged values one step later), every gradient before an
    optimizer step, and every parameter after the step.
    """

    def __init__(self) -> None:
        self._hook: RemovableHandle | None = None

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        network = getattr(module, "model", None)
        if isinstance(network, torch.nn.Module):
            self._hook = network.register_forward_hook(self._check_output(trainer))

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._remove_hook()

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        self._remove_hook()

    def _remove_hook(self) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    @staticmethod
    def _check_output(trainer: L.Trainer) -> Any:
        def hook(network: torch.nn.Module, inputs: Any, output: Any) -> None:
            if not network.training:
                return
            found = _first_non_finite((f"network output {i}", t) for i, t in enumerate(_tensors(output)))
            if found is not None:
                raise TrainingDiverged(trainer.global_step, *found)

        return hook

    def on_before_optimizer_step(
        self, trainer: L.Trainer, module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        found = _first_non_finite((f"gradient of {n}", p.grad) for n, p in module.named_parameters())
        if found is not None:
            raise TrainingDiverged(trainer.global_step, *found)

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        value = _value(loss)
        if value is not None and not math.isfinite(value):
            raise TrainingDiverged(trainer.global_step, "train loss", value)
        self._check_logged(trainer)
        found = _first_non_finite((f"parameter {n}", p) for n, p in module.named_parameters())
        if found is not None:
            raise TrainingDiverged(trainer.global_step, f"{found[0]} (after the optimizer step)", found[1])

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._check_logged(trainer)

    @staticmethod
    def _check_logged(trainer: L.Trainer) -> None:
        for key, metric in trainer.callback_metrics.items():
            value = _value(metric)
            if key.startswith("train/") and value is not None and not math.isfinite(value):
                raise TrainingDiverged(trainer.global_step, key, value)
