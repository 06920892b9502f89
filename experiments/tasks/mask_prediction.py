"""DeepMI Exp2 (Sec. 5.2, Fig. 1b): predict a mask M_s so that I_s * M_s matches I_t."""

from __future__ import annotations

import torch
from torchmetrics.classification import BinaryJaccardIndex

from experiments.tasks.base import TaskModule

# Table 1's IoU columns
THRESHOLDS = (0.05, 0.10, 0.20, 0.40, 0.50)


def dissimilar_region(mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """Pixels the network switched off: M_s < threshold.

    I_t is I_s with a rectangle set to zero, so the only way I_s * M_s can match I_t there is
    M_s -> 0; elsewhere M_s -> 1. The "dissimilar region" is therefore the low side of the
    threshold, and a larger threshold admits less confident pixels.
    """
    return mask < threshold


class MaskPredictionModule(TaskModule):
    """UNet on (I_s, I_t) -> sigmoid mask; trained by loss(I_s * M_s, I_t) without mask labels.

    Test metric per threshold t: IoU of {M_s < t} against the true rectangle, accumulated over
    all test pixels (torchmetrics' BinaryJaccardIndex), reported as test/iou_0.05 etc. The two
    trivial baselines go through the same metric: "mask everywhere" (every pixel called
    dissimilar) and "mask nowhere" (none), as test/baseline_everywhere_iou_0.05 etc.; a constant
    mask scores the same at every threshold.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ious = torch.nn.ModuleList(BinaryJaccardIndex() for _ in THRESHOLDS)
        self.baseline_ious = torch.nn.ModuleDict(
            {name: BinaryJaccardIndex() for name in ("everywhere", "nowhere")}
        )

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([source, target], dim=1))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        mask = self(batch["source"], batch["target"])
        loss = self.loss(batch["source"] * mask, batch["target"])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def curve_metrics(self, loader) -> dict[str, float]:
        """IoU of {M_s < t} per threshold over a loader, pooled over every pixel like the test.

        For experiments.runner.curves.TestCurve (does a budget suffice?). Plain sums of
        intersection and union, not the torchmetrics states: every DDP rank evaluates the whole
        split here, so nothing is synced. An empty union counts as IoU 0, as torchmetrics does.
        """
        intersection = torch.zeros(len(THRESHOLDS), dtype=torch.float64)
        union = torch.zeros(len(THRESHOLDS), dtype=torch.float64)
        for batch in loader:
            source, target = batch["source"].to(self.device), batch["target"].to(self.device)
            mask, truth = self(source, target), batch["mask"].to(self.device) > 0.5
            for index, threshold in enumerate(THRESHOLDS):
                called = dissimilar_region(mask, threshold)
                intersection[index] += float((called & truth).sum())
                union[index] += float((called | truth).sum())
        iou = torch.where(union > 0, intersection / union.clamp(min=1), torch.zeros_like(union))
        return {f"iou_{t:.2f}": float(value) for t, value in zip(THRESHOLDS, iou, strict=True)}

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        mask = self(batch["source"], batch["target"])
        truth = batch["mask"] > 0.5
        self.keep_examples(
            batch_idx, source=batch["source"], target=batch["target"], masked_source=batch["source"] * mask,
            predicted_mask=mask, dissimilar_true=batch["mask"],
        )  # fmt: skip
        for threshold, iou in zip(THRESHOLDS, self.ious, strict=True):
            iou(dissimilar_region(mask, threshold).long(), truth.long())
            self.log(f"test/iou_{threshold:.2f}", iou)
        for name, iou in self.baseline_ious.items():
            constant = torch.full_like(truth, name == "everywhere")
            iou(constant.long(), truth.long())
            for threshold in THRESHOLDS:
                self.log(f"test/baseline_{name}_iou_{threshold:.2f}", iou)
