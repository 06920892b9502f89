"""L_LMI (DeepMI Eq. 13): the histogram and closed-form paths, hard bins, the bin-centre property."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch

from deepmi.losses import LMILoss, fuzzy_pdfs, lmi
from deepmi.losses import linearized_mi as lmi_mod
from deepmi.losses._kernels import PixelKernel


def off_centre(shape, bins, seed, dtype=torch.float64):
    """Values in the middle part of random cells: gradcheck's finite differences stay off the kinks."""
    g = torch.Generator().manual_seed(seed)
    cell = torch.randint(0, bins - 1, shape, generator=g)
    return ((cell + 0.15 + 0.7 * torch.rand(shape, generator=g)) / (bins - 1)).to(dtype)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-6), (torch.float64, 1e-12)])
@pytest.mark.parametrize("bins", [2, 3, 8, 25, 64])
def test_two_paths_agree(dtype, tol, bins):
    g = torch.Generator().manual_seed(bins)
    x = torch.rand(3, 2, 17, 19, generator=g).to(dtype)
    y = (0.6 * x + 0.4 * torch.rand(3, 2, 17, 19, generator=g)).to(dtype)
    a = lmi(x, y, bins, method="closed_form")
    b = lmi(x, y, bins, method="histogram")
    assert a.shape == (3,) and a.dtype == dtype
    torch.testing.assert_close(a, b, atol=tol, rtol=0)


def test_two_paths_agree_on_other_range_and_out_of_range_values():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 50, generator=g, dtype=torch.float64) * 100 + 128
    y = x + torch.randn(2, 50, generator=g, dtype=torch.float64) * 20
    a = lmi(x, y, 9, value_range=(0, 255))
    torch.testing.assert_close(a, lmi(x, y, 9, value_range=(0, 255), method="histogram"))


def test_eq13_written_out_from_pdfs():
    g = torch.Generator().manual_seed(3)
    x, y = (
        torch.rand(2, 40, generator=g, dtype=torch.float64),
        torch.rand(2, 40, generator=g, dtype=torch.float64),
    )
    px, py, pxy = (t.numpy() for t in fuzzy_pdfs(x, y, 6))
    for s in range(2):
        d = np.diag(pxy[s])
        expected = (pxy[s].sum() - d.sum() + np.abs(d - px[s]).sum() + np.abs(d - py[s]).sum()) / 3
        assert lmi(x, y, 6, method="histogram")[s].item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("bins", [2, 5, 25])
def test_hard_bins_fraction_of_differing_pixels(bins):
    g = torch.Generator().manual_seed(bins)
    a = torch.randint(0, bins, (4, 1, 12, 12), generator=g)
    b = torch.where(torch.rand(a.shape, generator=g) < 0.7, a, torch.randint(0, bins, a.shape, generator=g))
    x, y = a.double() / (bins - 1), b.double() / (bins - 1)
    expected = (a != b).double().flatten(1).mean(1)
    for method in ("closed_form", "histogram"):
        torch.testing.assert_close(lmi(x, y, bins, method=method), expected, atol=1e-12, rtol=0)


def test_identical_on_centres_is_zero():
    x = torch.randint(0, 7, (2, 3, 8, 8)).double() / 6
    assert lmi(x, x, 7).abs().max().item() < 1e-12
    assert lmi(x, x, 7, method="histogram").abs().max().item() < 1e-12


def test_identical_between_centres_is_one_minus_sum_of_squared_memberships():
    # The docs' bin-centre property: L_LMI(x, x) = mean over pixels of 1 - m0^2 - m1^2.
    bins = 11
    g = torch.Generator().manual_seed(5)
    x = torch.rand(3, 1, 10, 10, generator=g, dtype=torch.float64)
    f = x * (bins - 1) - torch.floor(x * (bins - 1))
    expected = (1 - (1 - f) ** 2 - f**2).flatten(1).mean(1)
    torch.testing.assert_close(lmi(x, x, bins), expected, atol=1e-12, rtol=0)
    assert (lmi(x, x, bins) > 0.1).all()  # far from 0: the loss is not minimised by x == y alone
    # half way between centres is the worst case, 1/2
    mid = torch.full((1, 4), 0.5 / (bins - 1), dtype=torch.float64)
    assert lmi(mid, mid, bins).item() == pytest.approx(0.5)


def test_moving_toward_bin_centres_lowers_lmi_of_identical_images():
    bins = 6
    x = off_centre((2, 30), bins, seed=1)
    centres = torch.round(x * (bins - 1)) / (bins - 1)
    values = [lmi(v, v, bins).mean().item() for v in (x, 0.5 * (x + centres), 0.9 * centres + 0.1 * x)]
    assert values[0] > values[1] > values[2] > 0
    # and gradient descent on L(x, x), moving both copies together, heads for the nearest centre
    x1 = x.clone().requires_grad_()
    x2 = x.clone().requires_grad_()
    lmi(x1, x2, bins).sum().backward()
    step = -(x1.grad + x2.grad)
    assert (torch.sign(step) == torch.sign(centres - x)).all()


def test_best_prediction_is_the_targets_nearest_bin_centre():
    # For a target between centres, snapping the prediction to the target's nearest centre beats
    # predicting the target itself: per pixel min(f, 1 - f) <= 2 f (1 - f).
    bins = 9
    target = off_centre((3, 200), bins, seed=8)
    nearest = torch.round(target * (bins - 1)) / (bins - 1)
    f = target * (bins - 1) - torch.floor(target * (bins - 1))
    torch.testing.assert_close(lmi(nearest, target, bins), torch.minimum(f, 1 - f).mean(1))
    assert (lmi(nearest, target, bins) < lmi(target, target, bins)).all()
    # and no other prediction does better: a dense sweep of one pixel's prediction
    t = torch.tensor([[0.3 / (bins - 1)]], dtype=torch.float64)  # 0.3 of a bin above centre 0
    sweep = torch.linspace(0, 1, 2001, dtype=torch.float64).reshape(-1, 1)
    values = lmi(sweep, t.expand_as(sweep), bins)
    assert sweep[values.argmin()].item() == 0.0 and values.min().item() == pytest.approx(0.3)


def test_independent_images_near_one_minus_overlap():
    g = torch.Generator().manual_seed(7)
    x, y = torch.rand(2, 1, 128, 128, generator=g), torch.rand(2, 1, 128, 128, generator=g)
    for bins in (5, 25):
        px, py, _ = fuzzy_pdfs(x, y, bins)
        expected = 1 - (px * py).sum(-1)  # E[trace p_xy] for independent pixels
        got = lmi(x, y, bins)
        torch.testing.assert_close(got, expected, atol=5e-3, rtol=0)
        # uniform values: interior bins get 1/(N-1), end bins half of it
        assert got.mean().item() == pytest.approx(1 - (bins - 1.5) / (bins - 1) ** 2, abs=5e-3)


@pytest.mark.parametrize("method", ["closed_form", "histogram"])
def test_gradcheck(method):
    bins = 5
    x = off_centre((2, 3, 4), bins, seed=11).requires_grad_()
    y = off_centre((2, 3, 4), bins, seed=12).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: lmi(a, b, bins, method=method), (x, y))


def test_gradcheck_wide_range_and_clamped_values():
    # value_range scales the gradient; values out of range get zero gradient (clamped)
    x = (off_centre((2, 8), 4, seed=3) * 6 - 3).requires_grad_()
    y = (off_centre((2, 8), 4, seed=4) * 6 - 3).requires_grad_()
    with torch.no_grad():
        x[0, 0] = -7.3
    assert torch.autograd.gradcheck(lambda a, b: lmi(a, b, 4, value_range=(-3, 3)), (x, y))
    lmi(x, y, 4, value_range=(-3, 3)).sum().backward()
    assert x.grad[0, 0].item() == 0.0


def test_paths_give_same_gradient_off_kinks():
    bins = 7
    x = off_centre((2, 50), bins, seed=21).requires_grad_()
    y = off_centre((2, 50), bins, seed=22).requires_grad_()
    ga = torch.autograd.grad(lmi(x, y, bins).sum(), (x, y))
    gb = torch.autograd.grad(lmi(x, y, bins, method="histogram").sum(), (x, y))
    for a, b in zip(ga, gb, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_compile_falls_back_with_warning(monkeypatch):
    # Simulate a platform where torch.compile cannot run: same numbers, one clear warning.
    def broken_compile(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr(lmi_mod, "_trace_sum_k", PixelKernel(lmi_mod._trace_sum, reduce=True))
    monkeypatch.setattr(lmi_mod, "_trace_sum_grad_k", PixelKernel(lmi_mod._trace_sum_grad, reduce=False))
    x = off_centre((2, 1, 6, 6), 9, seed=0).float().requires_grad_()
    y = off_centre((2, 1, 6, 6), 9, seed=1).float()
    with pytest.warns(RuntimeWarning, match="no C.. compiler found.*falling back to eager"):
        out = LMILoss(9, compile=True)(x, y)
        out.backward()
    torch.testing.assert_close(out, LMILoss(9)(x, y))


def test_compile_unsupported_platform_warns_at_construction(monkeypatch):
    monkeypatch.setattr("deepmi.losses.modules.compile_supported", lambda: (False, "dynamo unsupported here"))
    with pytest.warns(RuntimeWarning, match="dynamo unsupported here"):
        loss = LMILoss(5, compile=True)
    assert loss.compile is False


@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
    reason="torch.compile on CPU needs a C++ compiler",
)
def test_compiled_matches_eager():
    # ~5 s cold (inductor compiles two C++ kernels); the fast path users are told to turn on.
    # same bins and shapes as the docs example, so the two share one compilation
    bins = 25
    x = torch.rand(4, 1, 64, 64, requires_grad=True)
    y = torch.rand(4, 1, 64, 64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out_c = LMILoss(bins, compile=True, reduction="none")(x, y)
        (gc,) = torch.autograd.grad(out_c.sum(), x)
    # a fallback to eager would make this test meaningless
    assert not [w for w in caught if "falling back to eager" in str(w.message)]
    assert lmi_mod._trace_sum_k.compiled.failed is None and lmi_mod._trace_sum_grad_k.compiled.failed is None
    out_e = LMILoss(bins, reduction="none")(x, y)
    (ge,) = torch.autograd.grad(out_e.sum(), x)
    torch.testing.assert_close(out_c, out_e, atol=1e-6, rtol=0)
    torch.testing.assert_close(gc, ge, atol=1e-7, rtol=1e-5)
