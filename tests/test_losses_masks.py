"""Masks on every histogram loss, kernel and path: a masked loss is the loss of the selected voxels."""

from __future__ import annotations

import pytest
import torch

from deepmi.losses import (
    L1Loss,
    L2Loss,
    LMILoss,
    MILoss,
    NMILoss,
    SSIMLoss,
    l1,
    l2,
    lmi,
    mutual_information,
    normalized_mutual_information,
)

BINS = 7

# name -> a per-sample loss f(x, y, mask=...) on one kernel and path
PATHS = {
    "mi-linear": lambda x, y, **k: mutual_information(x, y, BINS, **k),
    "mi-linear-reference": lambda x, y, **k: mutual_information(x, y, BINS, method="reference", **k),
    "mi-gaussian": lambda x, y, **k: mutual_information(x, y, BINS, kernel="gaussian", **k),
    "mi-gaussian-reference": lambda x, y, **k: mutual_information(
        x, y, BINS, kernel="gaussian", method="reference", **k
    ),
    "mi-bspline": lambda x, y, **k: mutual_information(x, y, BINS, kernel="bspline", **k),
    "mi-bspline-reference": lambda x, y, **k: mutual_information(
        x, y, BINS, kernel="bspline", method="reference", **k
    ),
    "nmi-linear": lambda x, y, **k: normalized_mutual_information(x, y, BINS, **k),
    "nmi-gaussian": lambda x, y, **k: normalized_mutual_information(x, y, BINS, kernel="gaussian", **k),
    "nmi-bspline": lambda x, y, **k: normalized_mutual_information(x, y, BINS, kernel="bspline", **k),
    "lmi-closed-form": lambda x, y, **k: lmi(x, y, BINS, **k),
    "lmi-histogram": lambda x, y, **k: lmi(x, y, BINS, method="histogram", **k),
    "lmi-reference": lambda x, y, **k: lmi(x, y, BINS, method="reference", **k),
    "l1": lambda x, y, **k: l1(x, y, **k),
    "l2": lambda x, y, **k: l2(x, y, **k),
}
COMPILED = {
    "mi-linear": lambda x, y, **k: mutual_information(x, y, BINS, compile=True, **k),
    "mi-bspline": lambda x, y, **k: mutual_information(x, y, BINS, kernel="bspline", compile=True, **k),
    "lmi-closed-form": lambda x, y, **k: lmi(x, y, BINS, compile=True, **k),
}


def pair(shape=(3, 1, 5, 6), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    y = (0.6 * x + 0.4 * torch.rand(shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x, y


def bool_mask(shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(shape, generator=g) < 0.6
    m.view(shape[0], -1)[:, :2] = True  # at least two voxels per sample
    return m


def grads(f, x, y, **k):
    x, y = x.clone().requires_grad_(), y.clone().requires_grad_()
    value = f(x, y, **k)
    gx, gy = torch.autograd.grad(value.sum(), (x, y), allow_unused=True)
    return value.detach(), gx, (torch.zeros_like(y) if gy is None else gy)


def check_equals_selected(f, x, y, mask):
    """Per sample: the masked value and gradient equal those of the selected voxels alone."""
    value, gx, gy = grads(f, x, y, mask=mask)
    mask = mask.expand(x.shape)
    for b in range(x.shape[0]):
        sel = mask[b].expand_as(x[b])
        v_b, gx_b, gy_b = grads(f, x[b][sel].view(1, -1), y[b][sel].view(1, -1))
        torch.testing.assert_close(value[b : b + 1], v_b, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gx[b][sel], gx_b.flatten(), rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(gy[b][sel], gy_b.flatten(), rtol=1e-9, atol=1e-12)
        assert not gx[b][~sel].any() and not gy[b][~sel].any()  # unselected voxels get no gradient


@pytest.mark.parametrize("path", list(PATHS))
def test_boolean_mask_equals_loss_of_selected_voxels(path):
    x, y = pair()
    check_equals_selected(PATHS[path], x, y, bool_mask(x.shape))


@pytest.mark.parametrize(
    "path", ["mi-linear", "mi-gaussian", "mi-bspline", "nmi-linear", "lmi-closed-form", "l2"]
)
def test_broadcast_mask_is_shared_by_the_batch(path):
    x, y = pair()
    mask = bool_mask((1, 1, 5, 6), seed=3)
    check_equals_selected(PATHS[path], x, y, mask)


@pytest.mark.parametrize("path", list(PATHS))
def test_weights_count_like_repeated_voxels(path):
    """Weights 1/2 and 1 weigh like one and two copies of a voxel (the histograms are weighted counts)."""
    x, y = pair((2, 12), seed=4)
    g = torch.Generator().manual_seed(5)
    copies = torch.randint(0, 3, x.shape, generator=g)
    copies[:, 0] = 2
    value = PATHS[path](x, y, mask=copies.double() / 2)
    for b in range(2):
        xr = x[b].repeat_interleave(copies[b]).view(1, -1)
        yr = y[b].repeat_interleave(copies[b]).view(1, -1)
        torch.testing.assert_close(value[b : b + 1], PATHS[path](xr, yr), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("path", [p for p in PATHS if not p.startswith("l") or p.startswith("lmi")])
def test_gradcheck_with_weights(path):
    x, y = pair((2, 9), seed=6)
    w = torch.rand(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 0.9 + 0.05
    x = (x * 0.8 + 0.1).requires_grad_()  # inside the range: the clamp's kinks stay away
    y = (y * 0.8 + 0.1).requires_grad_("bspline" not in path)  # the box car has no gradient
    assert torch.autograd.gradcheck(lambda a, b: PATHS[path](a, b, mask=w), (x, y), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("path", list(COMPILED))
def test_compiled_masked_matches_eager(path):
    x, y = pair((2, 1, 8, 8), seed=8)
    mask = bool_mask(x.shape)
    for got, want in zip(
        grads(COMPILED[path], x, y, mask=mask), grads(PATHS[path], x, y, mask=mask), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("path", ["mi-linear", "mi-gaussian", "mi-bspline", "lmi-closed-form", "l1"])
def test_float32_eager_chunks_with_mask(path, monkeypatch):
    """Masks sliced with the pixel chunks of the eager kernels give the single-pass numbers."""
    import deepmi.losses._kernels as kernels

    x, y = pair((2, 1, 20, 30), seed=9)
    x, y = x.float(), y.float()
    mask = bool_mask(x.shape)
    whole = grads(PATHS[path], x, y, mask=mask)
    monkeypatch.setattr(kernels, "CHUNK_ELEMENTS", 256)
    for got, want in zip(grads(PATHS[path], x, y, mask=mask), whole, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_empty_mask_names_the_sample():
    x, y = pair()
    mask = bool_mask(x.shape)
    mask[1] = False
    with pytest.raises(ValueError, match=r"selects no voxel.*\[1\]"):
        mutual_information(x, y, BINS, mask=mask)
    with pytest.raises(ValueError, match="selects no voxel"):
        lmi(x, y, BINS, mask=mask)


@pytest.mark.parametrize(
    "mask, message",
    [
        (torch.full((3, 1, 5, 6), 1.5), r"in \[0, 1\]"),
        (torch.full((3, 1, 5, 6), float("nan")), r"in \[0, 1\]"),
        (torch.ones(3, 1, 5, 6, dtype=torch.long), "boolean or floating"),
        (torch.ones(2, 1, 5, 6, dtype=torch.bool), "does not broadcast"),
        ([[1.0]], "torch.Tensor"),
    ],
)
def test_bad_masks_are_refused(mask, message):
    x, y = pair()
    with pytest.raises(ValueError, match=message):
        mutual_information(x, y, BINS, mask=mask)


def test_mask_gets_no_gradient():
    x, y = pair()
    w = torch.full(x.shape, 0.5, dtype=torch.float64, requires_grad=True)
    mutual_information(x.requires_grad_(), y, BINS, mask=w).sum().backward()
    assert w.grad is None and x.grad is not None


@pytest.mark.parametrize(
    "module", [MILoss(BINS), NMILoss(BINS, kernel="bspline"), LMILoss(BINS), L1Loss(), L2Loss()]
)
def test_modules_take_a_mask(module):
    x, y = pair()
    mask = bool_mask(x.shape)
    per_sample = module.per_sample(x, y, mask=mask)
    torch.testing.assert_close(module(x, y, mask=mask), per_sample.mean())
    assert not torch.allclose(module(x, y), module(x, y, mask=mask))


def test_ssim_refuses_a_mask():
    x, y = pair((2, 1, 8, 8))
    with pytest.raises(ValueError, match="takes no mask"):
        SSIMLoss()(x, y, mask=torch.ones_like(x, dtype=torch.bool))
