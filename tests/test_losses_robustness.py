"""Edge inputs from MONAI #9018 and ours: constant images, one-voxel masks, 2-4 bins, float16 /
bfloat16, volumes past float32's exact integers: finite values and gradients, or a clear error."""

from __future__ import annotations

import pytest
import torch

from deepmi.losses import lmi, mutual_information, normalized_mutual_information

# (name, per-sample loss f(x, y, bins, **kw), smallest bins it takes)
LOSSES = [
    ("mi-linear", lambda x, y, n, **k: mutual_information(x, y, n, **k), 2),
    ("mi-gaussian", lambda x, y, n, **k: mutual_information(x, y, n, kernel="gaussian", **k), 2),
    ("mi-bspline", lambda x, y, n, **k: mutual_information(x, y, n, kernel="bspline", **k), 5),
    ("nmi-linear", lambda x, y, n, **k: normalized_mutual_information(x, y, n, **k), 2),
    ("nmi-bspline", lambda x, y, n, **k: normalized_mutual_information(x, y, n, kernel="bspline", **k), 5),
    ("lmi", lambda x, y, n, **k: lmi(x, y, n, **k), 2),
]
IDS = [name for name, _, _ in LOSSES]


def finite_value_and_grad(f, x, y, *args, **kw):
    x = x.clone().requires_grad_()
    value = f(x, y, *args, **kw)
    (g,) = torch.autograd.grad(value.sum(), x)
    assert torch.isfinite(value).all(), value
    assert torch.isfinite(g).all()
    return value.detach(), g


@pytest.mark.parametrize("name, f, min_bins", LOSSES, ids=IDS)
@pytest.mark.parametrize("value_range", [(0.0, 1.0), "auto"])
def test_constant_images(name, f, min_bins, value_range):
    const = torch.full((2, 1, 6, 6), 0.37)
    other = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    for x, y in ((const, const), (const, other), (other, const)):
        value, _ = finite_value_and_grad(f, x, y, 16, value_range=value_range)
        if name.startswith("mi"):
            assert torch.allclose(value, torch.zeros(2), atol=1e-6)  # a constant shares no information
        if name.startswith("nmi"):
            assert torch.allclose(value, torch.ones(2), atol=1e-6)


@pytest.mark.parametrize("name, f, min_bins", LOSSES, ids=IDS)
def test_one_voxel_mask(name, f, min_bins):
    x = torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(1))
    y = torch.rand(2, 1, 5, 5, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, 0, 2, 3] = True
    for value_range in ((0.0, 1.0), "auto"):
        value, g = finite_value_and_grad(f, x, y, 16, value_range=value_range, mask=mask)
        if name.startswith("mi"):
            assert torch.allclose(value, torch.zeros(2), atol=1e-6)
        assert not g[~mask].any()


@pytest.mark.parametrize("name, f, min_bins", LOSSES, ids=IDS)
@pytest.mark.parametrize("bins", [2, 3, 4])
def test_few_bins(name, f, min_bins, bins):
    x = torch.rand(2, 40, generator=torch.Generator().manual_seed(3))
    y = (x + 0.2 * torch.rand(2, 40, generator=torch.Generator().manual_seed(4))).clamp(0, 1)
    if bins < min_bins:
        with pytest.raises(ValueError, match=f"needs bins >= {min_bins}"):
            f(x, y, bins)
        return
    value, _ = finite_value_and_grad(f, x, y, bins)
    if name.startswith("mi"):
        assert (value > 0).all() and (value <= torch.log(torch.tensor(float(bins))) + 1e-6).all()


@pytest.mark.parametrize("name, f, min_bins", LOSSES, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(name, f, min_bins, dtype):
    """Low-precision inputs are counted in float32: the value is the float32 value of the rounded
    inputs, and the gradient comes back finite in the input's dtype."""
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 1, 16, 16, generator=g).to(dtype)
    y = (x.float() ** 2 + 0.1 * torch.rand(2, 1, 16, 16, generator=g)).clamp(0, 1).to(dtype)
    value, grad = finite_value_and_grad(f, x, y, 32)
    assert grad.dtype == dtype and value.dtype == torch.float32
    torch.testing.assert_close(value, f(x.float(), y.float(), 32), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name, f, min_bins", [LOSSES[0], LOSSES[2], LOSSES[5]], ids=[IDS[0], IDS[2], IDS[5]])
def test_volume_past_float32_integers(name, f, min_bins):
    """2^24 + voxels (a 256 x 256 x 257 volume): float32 counts stay within 1e-4 of float64."""
    g = torch.Generator().manual_seed(6)
    x = torch.rand(1, 1, 256, 256, 257, generator=g)
    y = (0.5 * x + 0.5 * torch.rand(x.shape, generator=g)).clamp_(0, 1)
    value, grad = finite_value_and_grad(f, x, y, 32)
    exact = f(x.double(), y.double(), 32)
    torch.testing.assert_close(value.double(), exact, rtol=1e-4, atol=0)
    assert grad.abs().sum() > 0


def test_a_two_dimensional_input_says_it_is_read_as_batch_by_values() -> None:
    """An (H, W) image without its batch dimension would silently be H samples of W pixels."""
    import warnings

    from deepmi.losses import MILoss

    image = torch.rand(17, 23)
    with pytest.warns(UserWarning, match=r"read as 17 samples of 23 values.*image\[None, None\]"):
        MILoss(bins=8)(image, image)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per shape; a batched image says nothing
        MILoss(bins=8)(image, image)
        MILoss(bins=8)(image[None, None], image[None, None])
