"""Exp1 bar alignment data (DeepMI Sec. 5.1): a white bar on black and its rigidly moved copy.

Source: a ``bar_height x bar_width`` (default 50 x 125, long side horizontal, read as rows x
columns like the 192 x 640 image) white bar centred in the image. Its centre is snapped to the
nearest point where the bar's edges fall on pixel boundaries (for a 125-wide bar in a 640-wide
image that is 0.5 px right of the image centre), so the raster is exactly the continuous bar.

Target: the source moved by q = R(theta)(p - c) + c + (tx, 0), the convention of
:func:`deepmi.models.warp.rigid_warp` (c the image centre, positive theta counter-clockwise as
displayed, positive tx to the right), rendered analytically: a target pixel is white iff its
centre maps back inside the bar. tx ~ U[-max_tx, max_tx] px, theta ~ U[-max_theta, max_theta] deg.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from deepmi.data.cache import cached_arrays, check_split, sample_rng

_VERSION = 1


def bar_bounds(
    height: int, width: int, bar_height: float, bar_width: float
) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) of the source bar in pixel-centre coordinates, edges on pixel boundaries."""

    def snap(centre: float, size: float) -> float:
        # Edges on half-integers need centre + size/2 to be a half-integer.
        offset = (size / 2.0 + 0.5) % 1.0
        return math.floor(centre - offset + 0.5) + offset

    cx = snap((width - 1) / 2.0, bar_width)
    cy = snap((height - 1) / 2.0, bar_height)
    return cx - bar_width / 2.0, cx + bar_width / 2.0, cy - bar_height / 2.0, cy + bar_height / 2.0


def render_bars(
    tx: np.ndarray, theta: np.ndarray, height: int, width: int, bar_height: float, bar_width: float
) -> np.ndarray:
    """Binary (B, H, W) uint8 {0, 1} images of the bar moved by (tx px, theta deg), analytically."""
    x0, x1, y0, y1 = bar_bounds(height, width, bar_height, bar_width)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    rad = np.deg2rad(np.asarray(theta, dtype=np.float64))[:, None, None]
    tx = np.asarray(tx, dtype=np.float64)[:, None, None]
    qx = np.arange(width, dtype=np.float64)[None, None, :] - cx - tx
    qy = np.arange(height, dtype=np.float64)[None, :, None] - cy
    cos, sin = np.cos(rad), np.sin(rad)
    # Inverse motion p = R(-theta)(q - c - t) + c with R(-theta) = [[cos, -sin], [sin, cos]] (y down).
    px = cos * qx - sin * qy + cx
    py = sin * qx + cos * qy + cy
    inside = (px >= x0) & (px < x1) & (py >= y0) & (py < y1)
    return inside.astype(np.uint8)


def _check_fits(
    height: int, width: int, bar_height: float, bar_width: float, max_tx: float, max_theta: float
):
    if height < 2 or width < 2 or bar_height <= 0 or bar_width <= 0:
        raise ValueError(
            f"Need a positive bar and an image of at least 2x2; got image {height}x{width}, "
            f"bar {bar_height}x{bar_width}."
        )
    if max_tx < 0 or not 0 <= max_theta <= 90:
        raise ValueError(f"Need max_tx >= 0 and 0 <= max_theta <= 90; got {max_tx}, {max_theta}.")
    angles = np.deg2rad(np.linspace(0.0, max_theta, 721))
    half_x = np.max(bar_width / 2 * np.cos(angles) + bar_height / 2 * np.sin(angles))
    half_y = np.max(bar_width / 2 * np.sin(angles) + bar_height / 2 * np.cos(angles))
    if max_tx + half_x + 1 > width / 2 or half_y + 1 > height / 2:
        raise ValueError(
            f"A {bar_height}x{bar_width} bar moved by |tx| <= {max_tx} and |theta| <= {max_theta} leaves the "
            f"{height}x{width} image; use a smaller bar, max_tx or max_theta, or a larger image."
        )


def generate_bar_pairs(
    n: int,
    *,
    height: int = 192,
    width: int = 640,
    bar_height: float = 50,
    bar_width: float = 125,
    max_tx: float = 100.0,
    max_theta: float = 40.0,
    seed: int = 0,
    split: str = "train",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Generate ``n`` bar pairs of ``split``.

    Returns ``source`` (H, W) uint8 (shared by all pairs), ``target`` (n, H, W) uint8, both
    0/255, and the ground truth ``tx`` (n,) pixels and ``theta`` (n,) degrees, float32.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}.")
    check_split(split)
    _check_fits(height, width, bar_height, bar_width, max_tx, max_theta)
    params = np.empty((n, 2), dtype=np.float32)
    for i in range(n):
        params[i] = sample_rng(seed, split, i).uniform([-max_tx, -max_theta], [max_tx, max_theta])
    target = np.empty((n, height, width), dtype=np.uint8)
    chunk = 50
    for start in tqdm(range(0, n, chunk), desc=f"bar pairs ({split})", disable=not progress, unit="x50"):
        sl = slice(start, start + chunk)
        target[sl] = render_bars(params[sl, 0], params[sl, 1], height, width, bar_height, bar_width) * 255
    source = render_bars(np.zeros(1), np.zeros(1), height, width, bar_height, bar_width)[0] * 255
    return {"source": source, "target": target, "tx": params[:, 0].copy(), "theta": params[:, 1].copy()}


class BarAlignmentDataset(Dataset):
    """Exp1 pairs: ``{"source", "target"}`` (1, H, W) float32 in {0, 1}, ``"tx"`` (px), ``"theta"`` (deg).

    The paper's setting is 1000 train / 500 test pairs at 192 x 640. Pairs are generated once and
    cached under ``root`` (``root=None``: in memory only).
    """

    def __init__(
        self,
        root: str | Path | None = "data",
        split: str = "train",
        n_train: int = 1000,
        n_test: int = 500,
        height: int = 192,
        width: int = 640,
        bar_height: float = 50,
        bar_width: float = 125,
        max_tx: float = 100.0,
        max_theta: float = 40.0,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        check_split(split)
        n = n_train if split == "train" else n_test
        config = dict(
            n=n, height=height, width=width, bar_height=bar_height, bar_width=bar_width,
            max_tx=max_tx, max_theta=max_theta, seed=seed, split=split,
        )  # fmt: skip
        _check_fits(height, width, bar_height, bar_width, max_tx, max_theta)
        params = dict(config, version=_VERSION)
        arrays = cached_arrays(root, "bar", params, lambda: generate_bar_pairs(**config, progress=progress))
        self.split = split
        self.source = torch.from_numpy(arrays["source"].astype(np.float32) / 255.0)[None]
        self.target = arrays["target"]
        self.tx = torch.from_numpy(arrays["tx"])
        self.theta = torch.from_numpy(arrays["theta"])

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        target = torch.from_numpy(self.target[index].astype(np.float32) / 255.0)[None]
        return {
            "source": self.source.clone(),
            "target": target,
            "tx": self.tx[index],
            "theta": self.theta[index],
        }
