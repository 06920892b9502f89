"""DeepMI's losses (Sec. 3-4): L_LMI, L_MI on fuzzy histograms, and the pixel baselines.

>>> import torch
>>> from deepmi.losses import LMILoss
>>> pred = torch.rand(2, 1, 32, 32, requires_grad=True)
>>> LMILoss(bins=25)(pred, torch.rand(2, 1, 32, 32)).backward()

Functional forms return per-sample values ``(B,)``; modules reduce over the batch. Imports only
torch: no Hydra, no Lightning.
"""

from .functional import (
    fuzzy_pdfs,
    l1,
    l2,
    lmi,
    mutual_information,
    normalized_mutual_information,
    ssim,
    ssim_l2,
)
from .modules import L1Loss, L2Loss, LMILoss, MILoss, NMILoss, SSIML2Loss, SSIMLoss
from .registry import LOSSES, build_loss

__all__ = [
    "fuzzy_pdfs",
    "lmi",
    "mutual_information",
    "normalized_mutual_information",
    "l1",
    "l2",
    "ssim",
    "ssim_l2",
    "LMILoss",
    "MILoss",
    "NMILoss",
    "L1Loss",
    "L2Loss",
    "SSIMLoss",
    "SSIML2Loss",
    "LOSSES",
    "build_loss",
]
