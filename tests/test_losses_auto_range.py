"""value_range="auto": each sample's own (masked) min / max, a constant to autograd."""

from __future__ import annotations

import warnings

import pytest
import torch

from deepmi.losses import LMILoss, MILoss, lmi, mutual_information, normalized_mutual_information

KERNELS = ("linear", "gaussian", "bspline")


def sample(shape=(3, 1, 6, 7), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * 40 - 7
    y = torch.cos(x / 5) * 100 + torch.rand(shape, generator=g, dtype=torch.float64)
    return x, y


@pytest.mark.parametrize("kernel", KERNELS)
def test_auto_equals_the_sample_range(kernel):
    """Per sample, "auto" is the fixed range (min, max) of that sample, in value and gradient."""
    x, y = sample()
    xa = x.clone().requires_grad_()
    auto = mutual_information(xa, y, 9, "auto", kernel)
    auto.sum().backward()
    for b in range(3):
        # a fixed range serves both inputs only on one scale: map y onto x's range first
        xl, xh, yl, yh = x[b].min(), x[b].max(), y[b].min(), y[b].max()
        y_on_x = (y[b : b + 1] - yl) / (yh - yl) * (xh - xl) + xl
        xb = x[b : b + 1].clone().requires_grad_()
        fixed = mutual_information(xb, y_on_x, 9, (xl.item(), xh.item()), kernel)
        fixed.backward()
        torch.testing.assert_close(auto[b : b + 1], fixed, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(xa.grad[b : b + 1], xb.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("loss", ["mi", "nmi", "lmi"])
def test_auto_is_invariant_to_increasing_affine_maps_per_sample(loss):
    fn = {"mi": mutual_information, "nmi": normalized_mutual_information, "lmi": lmi}[loss]
    x, y = sample()
    scale = torch.tensor([0.01, 3.0, 250.0], dtype=torch.float64).view(3, 1, 1, 1)
    torch.testing.assert_close(
        fn(x * scale + 17, y - 40, 11, "auto"), fn(x, y, 11, "auto"), rtol=1e-9, atol=1e-12
    )


def test_auto_takes_the_range_of_the_masked_voxels():
    x, y = sample()
    mask = torch.ones_like(x, dtype=torch.bool)
    mask.view(3, -1)[:, :4] = False
    wild_x, wild_y = x.clone(), y.clone()
    wild_x.view(3, -1)[:, :4] = 1e6  # outliers outside the mask do not stretch the range
    wild_y.view(3, -1)[:, :4] = -1e6
    for kernel in KERNELS:
        torch.testing.assert_close(
            mutual_information(wild_x, wild_y, 9, "auto", kernel, mask=mask),
            mutual_information(x, y, 9, "auto", kernel, mask=mask),
        )


def test_auto_does_not_warn_about_clamping():
    x, y = sample()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mutual_information(x, y, 9, "auto")
    with pytest.warns(UserWarning, match="outside value_range"):
        mutual_information(x * 1000 + 1e5, y, 9, (0.0, 1.0))


def test_auto_constant_sample_is_finite():
    x = torch.full((2, 30), 3.0, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 30, dtype=torch.float64)
    for kernel in KERNELS:
        value = mutual_information(x, y, 8, "auto", kernel)
        assert torch.allclose(value, torch.zeros(2, dtype=torch.float64), atol=1e-12)
        (g,) = torch.autograd.grad(value.sum(), x)
        assert torch.isfinite(g).all()


def test_modules_accept_auto_and_refuse_other_strings():
    x, y = sample()
    assert torch.isfinite(MILoss(9, value_range="auto", kernel="bspline")(x, y))
    assert torch.isfinite(LMILoss(9, value_range="auto")(x, y))
    with pytest.raises(ValueError, match="'auto'"):
        MILoss(9, value_range="full")
    with pytest.raises(ValueError, match="lo < hi"):
        mutual_information(x, y, 9, (1.0, 1.0))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_of_the_auto_path(kernel, masked):
    """gradcheck of "auto" on the voxels strictly between each sample's min and max (those two are
    held fixed: the range is a constant to autograd, so moving them is not differentiated)."""
    g = torch.Generator().manual_seed(3)
    inner = (0.1 + 0.8 * torch.rand(2, 10, generator=g, dtype=torch.float64)).requires_grad_()
    ends = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64) * 5 - 2
    y = torch.rand(2, 12, generator=g, dtype=torch.float64) * 3
    mask = torch.rand(2, 12, generator=g) < 0.8 if masked else None
    if masked:
        mask[:, :2] = True

    def fn(v):
        return normalized_mutual_information(torch.cat([ends, v * 5 - 2], 1), y, 7, "auto", kernel, mask=mask)

    assert torch.autograd.gradcheck(fn, (inner,), atol=1e-6)
