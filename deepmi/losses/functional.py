"""Functional form of every loss: per-sample values ``(B,)`` of paired inputs ``(B, ...)``."""

from __future__ import annotations

from .fuzzy import fuzzy_pdfs
from .linearized_mi import lmi
from .mi import mutual_information, normalized_mutual_information
from .pixel import l1, l2, ssim, ssim_l2

__all__ = [
    "fuzzy_pdfs",
    "lmi",
    "mutual_information",
    "normalized_mutual_information",
    "l1",
    "l2",
    "ssim",
    "ssim_l2",
]
