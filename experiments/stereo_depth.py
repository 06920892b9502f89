"""DeepMI Exp3 (Sec. 5.3, Fig. 1c; Godard et al. 2017): depth from a stereo pair, unsupervised."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import MeanAbsoluteError

from experiments.base import TaskModule


def warp_right_to_left(right: torch.Tensor, disparity_px: torch.Tensor) -> torch.Tensor:
    """Sample the right image at u - d: where a left pixel's scene point appears on the right.

    Rectified pair: a point at left column u is at right column u - d, d >= 0 (in pixels).
    Bilinear and differentiable in d; outside the image reads zeros.
    """
    batch, _, height, width = right.shape
    xs = torch.arange(width, device=right.device, dtype=right.dtype).view(1, 1, width)
    ys = torch.arange(height, device=right.device, dtype=right.dtype).view(1, height, 1)
    x_src = xs - disparity_px[:, 0]
    grid = torch.stack(
        [2 * x_src / (width - 1) - 1, (2 * ys / (height - 1) - 1).expand(batch, height, width)], dim=-1
    )
    return F.grid_sample(right, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def disparity_smoothness(disparity: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Godard et al.'s edge-aware first-order smoothness (off unless smoothness_weight > 0)."""
    d_dx = (disparity[..., :, 1:] - disparity[..., :, :-1]).abs()
    d_dy = (disparity[..., 1:, :] - disparity[..., :-1, :]).abs()
    i_dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True)
    i_dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True)
    return (d_dx * torch.exp(-i_dx)).mean() + (d_dy * torch.exp(-i_dy)).mean()


class StereoDepthModule(TaskModule):
    """Disparity from the left image; loss(warp(right, disparity), left) and nothing else.

    The paper's point is one loss alone; ``smoothness_weight`` adds Godard's smoothness term for
    comparison (0 by default). Test metric: MAE in metres between predicted depth
    focal * baseline / disparity and the ground-truth depth over valid pixels (depth > 0), with
    predictions clipped to [min_depth, max_depth] as in Godard et al.'s evaluation.
    """

    def __init__(
        self,
        *args,
        smoothness_weight: float = 0.0,
        min_depth: float = 1e-3,
        max_depth: float = 80.0,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if smoothness_weight < 0:
            raise ValueError(f"smoothness_weight must be >= 0, got {smoothness_weight}")
        self.smoothness_weight = smoothness_weight
        self.min_depth, self.max_depth = min_depth, max_depth
        self.mae = MeanAbsoluteError()

    def disparity_px(self, left: torch.Tensor) -> torch.Tensor:
        """The network predicts disparity as a fraction of the image width (Godard et al.)."""
        return self.model(left) * left.shape[-1]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        disparity = self.disparity_px(batch["left"])
        reconstructed = warp_right_to_left(batch["right"], disparity)
        loss = self.loss(reconstructed, batch["left"])
        self.log("train/photometric", loss, prog_bar=True)
        if self.smoothness_weight > 0:
            smooth = disparity_smoothness(disparity / batch["left"].shape[-1], batch["left"])
            self.log("train/smoothness", smooth)
            loss = loss + self.smoothness_weight * smooth
        return loss

    def predicted_depth(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        disparity = self.disparity_px(batch["left"]).clamp_min(1e-6)
        focal_baseline = (batch["focal"] * batch["baseline"]).view(-1, 1, 1, 1)
        return (focal_baseline / disparity).clamp(self.min_depth, self.max_depth)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        depth = self.predicted_depth(batch)
        truth = batch["depth"]
        valid = truth > 0
        self.keep_examples(
            batch_idx, left=batch["left"], right=batch["right"], predicted_depth=depth,
            true_depth=torch.where(valid, truth, torch.zeros_like(truth)),
        )  # fmt: skip
        self.mae(depth[valid], truth[valid])
        self.log("test/mae_depth_m", self.mae)
