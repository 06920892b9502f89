"""DeepMI Exp1 (Sec. 5.1, Fig. 1a): regress a rigid motion, warp the source, compare to target."""

from __future__ import annotations

import torch
from torchmetrics import MeanAbsoluteError

from deepmi.models.warp import rigid_warp
from experiments.tasks.base import TaskModule


class BarAlignmentModule(TaskModule):
    """The network sees (I_s, I_t) and predicts (tx, theta); no pose supervision is used.

    Training signal: loss(warp(I_s; tx, theta), I_t). Test metrics: MAE of tx (px) and of theta
    (deg) against the stored ground truth (Table 1, Exp1 columns), and the same metrics for the
    trivial baseline that predicts the identity warp (0, 0) (``test/baseline_mae_tx`` etc.).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mae_tx = MeanAbsoluteError()
        self.mae_theta = MeanAbsoluteError()
        self.baseline_mae_tx = MeanAbsoluteError()
        self.baseline_mae_theta = MeanAbsoluteError()

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(torch.cat([source, target], dim=1))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        tx, theta = self(batch["source"], batch["target"])
        warped = rigid_warp(batch["source"], tx, theta)
        loss = self.loss(warped, batch["target"])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        tx, theta = self(batch["source"], batch["target"])
        self.mae_tx(tx, batch["tx"])
        self.mae_theta(theta, batch["theta"])
        warped = rigid_warp(batch["source"], tx, theta)
        self.keep_examples(batch_idx, source=batch["source"], target=batch["target"], warped_source=warped)
        self.log("test/mae_tx", self.mae_tx)
        self.log("test/mae_theta", self.mae_theta)
        self.baseline_mae_tx(torch.zeros_like(tx), batch["tx"])
        self.baseline_mae_theta(torch.zeros_like(theta), batch["theta"])
        self.log("test/baseline_mae_tx", self.baseline_mae_tx)
        self.log("test/baseline_mae_theta", self.baseline_mae_theta)
