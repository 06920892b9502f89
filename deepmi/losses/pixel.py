"""Per-pixel baselines of DeepMI's experiments: L1, L2 (MSE), SSIM and SSIM + L2.

SSIM follows Godard et al. 2017 (monodepth), which DeepMI cites for its "3x3 block filter":
local statistics from a 3x3 average pool with no padding (only full windows), C1 = 0.01^2,
C2 = 0.03^2 (so values are expected in [0, 1]), and the loss map (1 - SSIM) / 2 clipped to [0, 1].
kornia's SSIMLoss differs: its window is an 11x11 Gaussian.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_pair
from ._masks import voxel_weights
from ._ssim_fused import FusedSSIM

SSIM_C1 = 0.01**2
SSIM_C2 = 0.03**2
SSIM_L2_ALPHA = 0.85


def _per_sample_mean(t: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean over each sample's pixels, or their mask-weighted mean (see :mod:`._masks`)."""
    flat = t.reshape(t.shape[0], -1)
    if mask is None:
        return flat.mean(1)
    w = voxel_weights(mask, t)
    return (flat * w).sum(1) / w.sum(1)


def l1(x: Tensor, y: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Per-sample mean absolute error, ``(B,)`` (over the masked pixels, weighted, if ``mask`` is given)."""
    x, y = check_pair(x, y)
    return _per_sample_mean((x - y).abs(), mask)


def l2(x: Tensor, y: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Per-sample mean squared error, ``(B,)`` (over the masked pixels, weighted, if ``mask`` is given)."""
    x, y = check_pair(x, y)
    return _per_sample_mean((x - y).square(), mask)


def _as_images(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    if x.dim() == 3:  # (B, H, W): one channel
        x, y = x.unsqueeze(1), y.unsqueeze(1)
    if x.dim() != 4:
        raise ValueError(
            f"ssim expects images (B, C, H, W) or (B, H, W), got shape {tuple(x.shape)}; reshape your input"
        )
    if x.shape[-1] < 3 or x.shape[-2] < 3:
        raise ValueError(f"ssim needs images of at least 3x3 pixels (its window), got {tuple(x.shape[-2:])}")
    return x, y


def _box3_valid(v: Tensor) -> Tensor:
    """3x3 mean over full windows of the last two dims, separably: 4 adds instead of 9 loads."""
    r = v[..., :-2] + v[..., 1:-1]
    r += v[..., 2:]
    c = r[..., :-2, :] + r[..., 1:-1, :]
    c += r[..., 2:, :]
    return c.mul_(1 / 9)


class _Box3(torch.autograd.Function):
    """3x3 box mean (valid windows); its adjoint is the same filter on the zero-padded gradient.

    Replaces ``F.avg_pool2d(v, 3, 1)``, whose CPU forward and backward are ~5x slower here.
    """

    @staticmethod
    def forward(ctx, v: Tensor) -> Tensor:
        return _box3_valid(v)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> Tensor:
        return _box3_valid(F.pad(grad, (2, 2, 2, 2)))


def ssim_map(x: Tensor, y: Tensor) -> Tensor:
    """Godard's SSIM loss map (1 - SSIM) / 2 in [0, 1], ``(B, C, H - 2, W - 2)``, of validated images.

    Plain autograd: the yardstick of the fused sweep :func:`ssim` runs (:mod:`._ssim_fused`).
    """
    c = x.shape[1]
    # One pooling call for all five local moments: E[x], E[y], E[x^2], E[y^2], E[xy].
    moments = _Box3.apply(torch.cat([x, y, x * x, y * y, x * y], dim=1))
    mu_x, mu_y, e_xx, e_yy, e_xy = moments.split(c, dim=1)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov = e_xy - mu_x * mu_y
    num = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov + SSIM_C2)
    den = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (var_x + var_y + SSIM_C2)
    return ((1 - num / den) / 2).clamp(0, 1)


def _ssim_mean(x: Tensor, y: Tensor) -> Tensor:
    # one fused sweep per sample, gradients of the inputs that need them included
    grad_on = torch.is_grad_enabled()
    return FusedSSIM.apply(x, y, SSIM_C1, SSIM_C2, grad_on and x.requires_grad, grad_on and y.requires_grad)


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Per-sample SSIM *loss* (1 - SSIM) / 2 of Godard et al., mean over channels and windows, ``(B,)``."""
    x, y = check_pair(x, y)
    x, y = _as_images(x, y)
    return _ssim_mean(x, y)


def ssim_l2(x: Tensor, y: Tensor, alpha: float = SSIM_L2_ALPHA) -> Tensor:
    """``alpha * ssim + (1 - alpha) * l2`` per sample, ``(B,)``.

    The paper's "L_SSIM + L_2" row gives no weights; alpha = 0.85 is Godard et al.'s SSIM/L1
    balance, our choice here.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    x, y = check_pair(x, y)
    xi, yi = _as_images(x, y)
    return alpha * _ssim_mean(xi, yi) + (1 - alpha) * _per_sample_mean((x - y).square())
