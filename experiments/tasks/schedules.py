"""Learning-rate schedules named by the papers."""

from __future__ import annotations

import torch


def poly_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, power: float = 0.9
) -> torch.optim.lr_scheduler.LambdaLR:
    """Caffe's "poly" policy (DeepMI Sec. 5): lr = base_lr * (1 - step / total_steps) ** power.

    Stepped once per optimizer step; ``total_steps`` is Lightning's estimated stepping batches.
    """
    if total_steps < 1:
        raise ValueError(f"poly schedule needs total_steps >= 1, got {total_steps}")

    def factor(step: int) -> float:
        return max(0.0, 1.0 - step / total_steps) ** power

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
