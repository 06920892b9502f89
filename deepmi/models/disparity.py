"""Disparity network of DeepMI's Exp3 (unsupervised stereo depth, Sec. 5, Fig. 1c).

Following Godard et al. (2017), DeepMI's reference [10], the network sees the left image only
and predicts a disparity map as a fraction of the image width; the right image warped by that
disparity reconstructs the left one, and the loss compares the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepmi.models.blocks import check_positive
from deepmi.models.unet import UNet


class DisparityNet(nn.Module):
    """U-Net from the left image to ``disparity = max_disparity * sigmoid(logits)``.

    The output is (B, 1, H, W) in (0, max_disparity), in units of image width (multiply by W for
    pixels). Godard et al. bound it the same way with ``max_disparity = 0.3``; as sigmoid(0) =
    0.5, an untrained network predicts about ``max_disparity / 2`` everywhere, so the bound is
    also the starting point. The configs keep 0.3 unless a dataset publishes its range
    (``configs/model_dataset/``: Middlebury's ``ndisp``). Unlike Godard et
    al. we output one scale and the left disparity only, because DeepMI trains Exp3 with a
    single reconstruction loss (no multi-scale or left-right consistency terms).

    The backbone is ``UNet`` with the paper's 3x3 filters and five stages; odd input sizes are
    padded and cropped there.

    Args:
        in_channels: 1 for the grayscale KITTI images of Exp3, 3 for RGB.
        widths: filters per stage; the paper uses (16, 32, 64, 128, 256).
        max_disparity: upper bound of the disparity, as a fraction of the image width.
        upsample: ``"bilinear"`` or ``"transpose"`` (see ``UNet``).
        norm: ``"batch"`` or ``"none"``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        widths: Sequence[int] = (16, 32, 64, 128, 256),
        max_disparity: float = 0.3,
        upsample: str = "bilinear",
        norm: str = "batch",
    ) -> None:
        super().__init__()
        self.max_disparity = check_positive(max_disparity, "max_disparity")
        if self.max_disparity > 1.0:
            raise ValueError(
                f"max_disparity is a fraction of the image width and must be <= 1, got {max_disparity!r}"
            )
        self.unet = UNet(in_channels, 1, widths, out_activation="none", upsample=upsample, norm=norm)

    def forward(self, left: torch.Tensor) -> torch.Tensor:
        """Map the left image (B, in_channels, H, W) to its disparity (B, 1, H, W)."""
        return self.max_disparity * torch.sigmoid(self.unet(left))
