"""Pixel baselines: L1, L2, Godard's 3x3-box SSIM against scipy, and SSIM + L2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmi.losses import L1Loss, L2Loss, SSIML2Loss, SSIMLoss, l1, l2, ssim, ssim_l2

ndimage = pytest.importorskip("scipy.ndimage")


def scipy_ssim_loss(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(1 - SSIM) / 2 per sample with 3x3 box means over full windows only, clipped to [0, 1]."""
    c1, c2 = 0.01**2, 0.03**2
    out = []
    for xs, ys in zip(x, y, strict=True):
        maps = []
        for xc, yc in zip(xs, ys, strict=True):

            def box(a):
                return ndimage.uniform_filter(a, size=3, mode="constant")[1:-1, 1:-1]

            mx, my = box(xc), box(yc)
            vx, vy, cxy = box(xc * xc) - mx**2, box(yc * yc) - my**2, box(xc * yc) - mx * my
            s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
            maps.append(np.clip((1 - s) / 2, 0, 1))
        out.append(np.mean(maps))
    return np.array(out)


def test_ssim_matches_scipy():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 11, 14, generator=g, dtype=torch.float64)
    y = (0.5 * x + 0.5 * torch.rand(x.shape, generator=g, dtype=torch.float64)) ** 2
    np.testing.assert_allclose(ssim(x, y).numpy(), scipy_ssim_loss(x.numpy(), y.numpy()), atol=1e-12)


def test_ssim_limits():
    x = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    assert ssim(x, x).abs().max() < 1e-12  # SSIM(x, x) = 1
    assert (ssim(x, 1 - x) > 0.3).all()  # anti-correlated patches: SSIM < 0
    assert ssim(x[:, 0], x[:, 0]).shape == (2,)  # (B, H, W) is one channel


def test_ssim_rejects_bad_shapes():
    with pytest.raises(ValueError, match="at least 3x3"):
        ssim(torch.rand(1, 1, 2, 5), torch.rand(1, 1, 2, 5))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        ssim(torch.rand(1, 1, 1, 5, 5), torch.rand(1, 1, 1, 5, 5))


def test_l1_l2_match_numpy():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, 5, generator=g), torch.randn(4, 3, 5, generator=g)
    d = (x - y).numpy().reshape(4, -1)
    np.testing.assert_allclose(l1(x, y).numpy(), np.abs(d).mean(1), rtol=1e-6)
    np.testing.assert_allclose(l2(x, y).numpy(), (d**2).mean(1), rtol=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.85, 1.0])
def test_ssim_l2_is_weighted_sum(alpha):
    x, y = torch.rand(2, 1, 6, 7), torch.rand(2, 1, 6, 7)
    torch.testing.assert_close(ssim_l2(x, y, alpha), alpha * ssim(x, y) + (1 - alpha) * l2(x, y))
    assert SSIML2Loss().alpha == 0.85
    with pytest.raises(ValueError, match="alpha"):
        SSIML2Loss(alpha=1.5)


def test_modules_reduce_functionals():
    x, y = torch.rand(3, 1, 5, 5), torch.rand(3, 1, 5, 5)
    for module, fn in ((L1Loss, l1), (L2Loss, l2), (SSIMLoss, ssim)):
        torch.testing.assert_close(module()(x, y), fn(x, y).mean())


def test_ssim_gradcheck():
    x = torch.rand(1, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ssim, (x, y))
