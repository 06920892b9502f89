"""Differentiable warps: the 2-DoF rigid warp of DeepMI Exp1 (Sec. 5.1) and the stereo warp of Exp3
(Sec. 5.3, :func:`warp_right_to_left`).

Convention, shared with :mod:`deepmi.data.bar` which renders the targets analytically:

* pixel (row i, column j) has its centre at x = j, y = i (x right, y DOWN);
  the image centre is c = ((W - 1) / 2, (H - 1) / 2);
* a source point p moves to  q = R(theta) (p - c) + c + (tx, 0), with
  R(theta) = [[cos, sin], [-sin, cos]] in these y-down coordinates, i.e. positive theta turns
  the content COUNTER-CLOCKWISE as displayed (OpenCV's / kornia's ``get_rotation_matrix2d``
  sign), and positive tx moves it to the RIGHT;
* the warped image samples the source at p = R(-theta) (q - c - (tx, 0)) + c, bilinearly,
  with zeros outside the source.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _as_batch_vector(value: Tensor, batch: int, name: str, like: Tensor) -> Tensor:
    if not isinstance(value, Tensor):
        value = torch.as_tensor(value)
    if value.numel() != batch or value.dim() > 2:
        raise ValueError(
            f"{name} must hold one value per image, shape ({batch},); got {tuple(value.shape)}. "
            f"Pass e.g. params[:, 0] for a (B, 2) network output."
        )
    return value.reshape(batch).to(device=like.device, dtype=like.dtype)


def rigid_matrix(tx: Tensor, theta: Tensor, height: int, width: int) -> Tensor:
    """Forward pixel-coordinate matrices (B, 2, 3) mapping source points p to q = A p + b.

    Same matrix as ``kornia.geometry.transform.get_rotation_matrix2d(c, theta, 1)`` with tx added
    to its x offset; useful with OpenCV/kornia ``warp_affine``.
    """
    tx = torch.as_tensor(tx).reshape(-1)
    theta = torch.as_tensor(theta, dtype=tx.dtype if tx.is_floating_point() else None).reshape(-1)
    rad = theta * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    row0 = torch.stack([cos, sin, cx - cos * cx - sin * cy + tx], dim=-1)
    row1 = torch.stack([-sin, cos, cy + sin * cx - cos * cy], dim=-1)
    return torch.stack([row0, row1], dim=-2)


def rigid_warp(images: Tensor, tx: Tensor, theta: Tensor, mode: str = "bilinear") -> Tensor:
    """Rotate ``images`` by ``theta`` degrees (counter-clockwise as displayed) about the image centre,
    then shift by ``tx`` pixels to the right; differentiable w.r.t. images, tx and theta.

    Args:
        images: (B, C, H, W) float tensor.
        tx: (B,) horizontal shift in pixels.
        theta: (B,) rotation in degrees.
        mode: ``grid_sample`` interpolation ("bilinear" gives gradients w.r.t. tx and theta).

    Returns:
        (B, C, H, W) warped images, zeros where the source is out of view.
    """
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            f"images must be a float (B, C, H, W) tensor; got dtype {images.dtype} and shape "
            f"{tuple(images.shape)}. Add channel/batch dims with unsqueeze and cast with .float()."
        )
    batch, _, height, width = images.shape
    if height < 2 or width < 2:
        raise ValueError(f"images must be at least 2x2 pixels to warp; got {height}x{width}.")
    tx = _as_batch_vector(tx, batch, "tx", images)
    theta = _as_batch_vector(theta, batch, "theta", images)
    rad = theta * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # affine_grid works in normalised coordinates n = S (p - c), S = diag(2/(W-1), 2/(H-1))
    # (align_corners=True puts -1/+1 on the outer pixel centres). The inverse map
    # p - c = R(-theta) (q - c - t) becomes n_p = S R(-theta) S^-1 n_q - S R(-theta) t.
    sx, sy = 2.0 / (width - 1), 2.0 / (height - 1)
    zero = torch.zeros_like(tx)
    row0 = torch.stack([cos, -sin * sx / sy, -sx * cos * tx], dim=-1)
    row1 = torch.stack([sin * sy / sx, cos, -sy * sin * tx + zero], dim=-1)
    affine = torch.stack([row0, row1], dim=-2)
    grid = F.affine_grid(affine, list(images.shape), align_corners=True)
    return F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=True)


def warp_right_to_left(right: Tensor, disparity_px: Tensor, padding_mode: str = "zeros") -> Tensor:
    """Sample the right image at u - d: where a left pixel's scene point appears on the right.

    Rectified pair: a point at left column u is at right column u - d, d >= 0 (in pixels).
    ``right`` (B, C, H, W), ``disparity_px`` (B, 1, H, W). Bilinear and differentiable in d;
    outside the image reads zeros (``padding_mode="border"``: the nearest edge pixel).
    """
    batch, _, height, width = right.shape
    xs = torch.arange(width, device=right.device, dtype=right.dtype).view(1, 1, width)
    ys = torch.arange(height, device=right.device, dtype=right.dtype).view(1, height, 1)
    x_src = xs - disparity_px[:, 0]
    grid = torch.stack(
        [2 * x_src / (width - 1) - 1, (2 * ys / (height - 1) - 1).expand(batch, height, width)], dim=-1
    )
    return F.grid_sample(right, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)
