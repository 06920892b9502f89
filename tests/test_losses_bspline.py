"""The cubic B-spline (Mattes) kernel: MONAI's b-spline loss, the reference path, gradients, edges."""

from __future__ import annotations

import pytest
import torch

from deepmi.losses import MILoss, mutual_information
from deepmi.losses._bspline import bspline_joint_pdf


def sample(shape, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=dtype)
    y = torch.sin(3 * x) + 0.3 * torch.rand(shape, generator=g, dtype=dtype)  # not monotonic in x
    return x, y


@pytest.fixture(scope="module")
def monai_losses():
    return pytest.importorskip("monai.losses")


@pytest.mark.parametrize("shape", [(1, 1, 20, 24), (1, 1, 8, 9, 10), (1, 1, 16, 16, 16)])
@pytest.mark.parametrize("bins", [8, 23, 32])
def test_matches_monai_on_2d_and_3d(monai_losses, shape, bins):
    """MONAI ranges each input by its own min/max: value_range="auto" with one sample."""
    x, y = sample(shape, seed=bins, dtype=torch.float32)
    peer = monai_losses.GlobalMutualInformationLoss(kernel_type="b-spline", num_bins=bins)
    ours = MILoss(bins, value_range="auto", kernel="bspline")
    torch.testing.assert_close(ours(x, y), peer(x, y), rtol=1e-4, atol=0)


def test_matches_monai_on_a_batch_that_shares_its_range(monai_losses):
    """MONAI takes one min/max over the whole batch; with equal per-sample ranges both agree."""
    x, y = sample((3, 1, 12, 13), seed=1, dtype=torch.float32)
    for t in (x, y):
        t.view(3, -1)[:, 0] = t.min()
        t.view(3, -1)[:, 1] = t.max()
    peer = monai_losses.GlobalMutualInformationLoss(kernel_type="b-spline", num_bins=16, reduction="none")
    ours = MILoss(16, value_range="auto", kernel="bspline", reduction="none")
    torch.testing.assert_close(ours(x, y), peer(x, y), rtol=1e-4, atol=0)


def test_joint_pdf_equals_monai_weights(monai_losses):
    x, y = sample((1, 1, 9, 11), seed=2)
    peer = monai_losses.GlobalMutualInformationLoss(kernel_type="b-spline", num_bins=12)
    wa, _, wb, _ = peer.parzen_windowing(x, y)
    want = torch.bmm(wa.permute(0, 2, 1), wb.to(wa)) / wa.shape[1]
    lo_hi = lambda t: (t.min().item(), t.max().item())  # noqa: E731
    # each input on its own range: rescale y onto x's so that one (lo, hi) serves both
    (xl, xh), (yl, yh) = lo_hi(x), lo_hi(y)
    y_on_x = (y - yl) / (yh - yl) * (xh - xl) + xl
    got = bspline_joint_pdf(x, y_on_x, 12, xl, xh)
    torch.testing.assert_close(got, want.to(got.dtype), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-0.5, 2.0), "auto"])
def test_fast_matches_reference_values_and_gradients(masked, value_range):
    x, y = sample((2, 1, 9, 10), seed=3)
    y = (y * 4).round() / 4  # quantised target: values exactly between two centres (box car ties)
    mask = torch.rand(x.shape, generator=torch.Generator().manual_seed(4)) < 0.7 if masked else None
    out = []
    for method in ("fast", "reference"):
        a = x.clone().requires_grad_()
        value = mutual_information(a, y, 10, value_range, "bspline", mask=mask, method=method)
        value.sum().backward()
        out.append((value, a.grad))
    for got, want in zip(*out, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_ties_split_the_target_count():
    """A target value half-way between two centres counts 1/2 in each (the box car's definition)."""
    bins = 6  # centres of y at u = 2 + v * 2: v = 0.25 sits at u = 2.5, between bins 2 and 3
    p = bspline_joint_pdf(torch.tensor([[0.5]]), torch.tensor([[0.25]]), bins, 0.0, 1.0)[0]
    col = p.sum(0)
    torch.testing.assert_close(col, torch.tensor([0, 0, 0.5, 0.5, 0, 0.0]))


@pytest.mark.parametrize("method", ["fast", "reference"])
def test_gradcheck(method):
    x, y = sample((2, 12), seed=5)
    x = (0.05 + 0.9 * x).requires_grad_()
    fn = lambda a: mutual_information(a, y, 7, (0.0, 1.0), "bspline", method=method)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), atol=1e-6)


def test_gradient_at_the_clamp_ends_is_half_the_inward_slope():
    """The clamp's mean convention: exactly at either end a value gets half of its in-range slope.

    With 8 bins the coordinate 2 + 4 v is clamped into [2, 5]: the ends are v = 0 and v = 3/4 (as
    MONAI, the top quarter of the range shares the last window)."""
    y = torch.tensor([[0.2, 0.9, 0.5, 0.1]], dtype=torch.float64)
    eps = 1e-7

    def grad_at(v0):
        x = torch.tensor([[v0, 0.3, 0.7, 0.45]], dtype=torch.float64, requires_grad=True)
        mutual_information(x, y, 8, (0.0, 1.0), "bspline").sum().backward()
        return x.grad[0, 0].item()

    assert grad_at(0.75) == pytest.approx(grad_at(0.75 - eps) / 2, rel=1e-4)
    assert grad_at(0.0) == pytest.approx(grad_at(eps) / 2, rel=1e-4)
    assert grad_at(0.75) != 0 and grad_at(0.9) == 0.0 and grad_at(-0.1) == 0.0


def test_target_gets_no_gradient():
    x, y = sample((1, 30), seed=6)
    y.requires_grad_()
    x.requires_grad_()
    mutual_information(x, y, 8, kernel="bspline").sum().backward()
    assert y.grad is None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("bins", [2, 3, 4])
def test_too_few_bins_is_a_clear_error(bins):
    x, y = sample((1, 30), seed=7)
    with pytest.raises(ValueError, match="bspline' needs bins >= 5"):
        mutual_information(x, y, bins, kernel="bspline")
    with pytest.raises(ValueError, match="bspline' needs bins >= 5"):
        MILoss(bins, kernel="bspline")


@pytest.mark.slow
def test_compiled_matches_eager():
    x, y = sample((2, 1, 16, 16), seed=8)
    out = []
    for compile in (False, True):
        a = x.clone().requires_grad_()
        value = mutual_information(a, y, 16, "auto", "bspline", compile=compile)
        value.sum().backward()
        out.append((value, a.grad))
    for got, want in zip(*out, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
