"""The eager fast paths (fused L_LMI and SSIM sweeps, truncated Parzen window) against references.

``method="reference"`` (SSIM: the plain autograd ``ssim_map``) in float64, values and gradients,
on the edge cases the fast kernels special-case: centres, range ends, clamped values, chunk
boundaries, which inputs need a gradient, repeated backward passes, windows narrower than or as
wide as all the bins.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from deepmi.losses import l2, lmi, mutual_information, ssim, ssim_l2
from deepmi.losses._parzen import window_width
from deepmi.losses.pixel import ssim_map


def mixed(shape, bins, value_range, seed, centre_share=0.4):
    """Values exactly on bin centres (ends included), 1/6 of the rest outside the range."""
    lo, hi = value_range
    g = torch.Generator().manual_seed(seed)
    anywhere = torch.rand(shape, generator=g, dtype=torch.float64) * 1.2 - 0.1
    centre = torch.randint(0, bins, shape, generator=g).double() / (bins - 1)
    return lo + (hi - lo) * torch.where(torch.rand(shape, generator=g) < centre_share, centre, anywhere)


def lmi_fast_and_reference(bins, value_range=(0.0, 1.0)):
    return (
        lambda a, b: lmi(a, b, bins, value_range),
        lambda a, b: lmi(a, b, bins, value_range, method="reference"),
    )


def values_and_grads(fn, x, y, upstream):
    xg, yg = x.clone().requires_grad_(x.requires_grad), y.clone().requires_grad_(y.requires_grad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some values lie outside value_range on purpose
        out = fn(xg, yg)
    wanted = [t for t in (xg, yg) if t.requires_grad]
    return out, torch.autograd.grad((out * upstream).sum(), wanted) if wanted else ()


def assert_matches_reference(fast, reference, x, y, atol=1e-12):
    upstream = torch.linspace(-1.3, 2.0, x.shape[0], dtype=x.dtype)
    got, grads_got = values_and_grads(fast, x, y, upstream)
    want, grads_want = values_and_grads(reference, x, y, upstream)
    torch.testing.assert_close(got, want, atol=atol, rtol=0)
    for a, b in zip(grads_got, grads_want, strict=True):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)


LMI_CASES = [(2, (0.0, 1.0)), (5, (0.0, 1.0)), (9, (-2.0, 6.0)), (25, (0.0, 1.0)), (11, (0.0, 255.0))]


@pytest.mark.parametrize("bins,value_range", LMI_CASES)
@pytest.mark.parametrize("grads", ["both", "x", "y"])
def test_fused_lmi_matches_reference(bins, value_range, grads):
    x = mixed((3, 1, 7, 11), bins, value_range, seed=bins).requires_grad_(grads in ("both", "x"))
    y = mixed((3, 1, 7, 11), bins, value_range, seed=bins + 1).requires_grad_(grads in ("both", "y"))
    assert_matches_reference(*lmi_fast_and_reference(bins, value_range), x, y)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 3), (2, 1, 17, 19), (5, 1, 1, 613)])
def test_fused_lmi_odd_shapes_and_chunks(shape, monkeypatch):
    # chunks of 256 columns: 613 pixels leave a partial last chunk
    monkeypatch.setattr("deepmi.losses._kernels.CHUNK_ELEMENTS", 1)
    x = mixed(shape, 7, (0.0, 1.0), seed=1).requires_grad_()
    y = mixed(shape, 7, (0.0, 1.0), seed=2).requires_grad_()
    assert_matches_reference(*lmi_fast_and_reference(7), x, y)


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0, -3.0, 7.0, 0.3])
def test_fused_lmi_constant_images(value):
    x = torch.full((2, 1, 5, 6), value, dtype=torch.float64, requires_grad=True)
    y = mixed((2, 1, 5, 6), 5, (0.0, 1.0), seed=3).requires_grad_()
    for a, b in ((x, y), (y, x), (x, x.detach().clone().requires_grad_())):
        assert_matches_reference(*lmi_fast_and_reference(5), a, b)


def test_fused_lmi_float32_close_to_reference():
    x = mixed((2, 1, 40, 50), 25, (0.0, 1.0), seed=4).float().requires_grad_()
    y = mixed((2, 1, 40, 50), 25, (0.0, 1.0), seed=5).float().requires_grad_()
    assert_matches_reference(*lmi_fast_and_reference(25), x, y, 1e-6)


def test_fused_lmi_repeated_backward_and_no_grad():
    # The forward pass keeps the slopes and the first backward hands them out (scaled in place);
    # a second backward through the retained graph must recompute, not reuse them.
    x = mixed((2, 30), 6, (0.0, 1.0), seed=6).requires_grad_()
    y = mixed((2, 30), 6, (0.0, 1.0), seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = lmi(x, y, 6)
        (first,) = torch.autograd.grad(out.sum(), x, retain_graph=True)
        (second,) = torch.autograd.grad((2 * out).sum(), x)
        (want,) = torch.autograd.grad(lmi(x, y, 6, method="reference").sum(), x)
        with torch.no_grad():
            torch.testing.assert_close(lmi(x, y, 6), out.detach(), atol=0, rtol=0)
    torch.testing.assert_close(first, want, atol=1e-12, rtol=0)
    torch.testing.assert_close(second, 2 * want, atol=1e-12, rtol=0)


def gaussian_fast_and_reference(bins, sigma, value_range=(0.0, 1.0)):
    return (
        lambda a, b: mutual_information(a, b, bins, value_range, "gaussian", sigma),
        lambda a, b: mutual_information(a, b, bins, value_range, "gaussian", sigma, method="reference"),
    )


@pytest.mark.parametrize(
    "bins,sigma,value_range",
    [(40, 0.5, (0.0, 1.0)), (64, 0.3, (-2.0, 6.0)), (30, 0.05, (0.0, 1.0)), (12, 3.0, (0.0, 1.0))],
)
@pytest.mark.parametrize("grads", ["both", "x", "y"])
def test_truncated_parzen_matches_reference(bins, sigma, value_range, grads):
    # float64 windows: 9 bins at sigma 0.5 (< 40: truncated), all 12 bins at sigma 3 (untruncated)
    width, _ = window_width(bins, sigma, torch.float64)
    assert (width < bins) == (sigma < 1)
    x = mixed((2, 1, 9, 13), bins, value_range, seed=bins).requires_grad_(grads in ("both", "x"))
    y = mixed((2, 1, 9, 13), bins, value_range, seed=bins + 1).requires_grad_(grads in ("both", "y"))
    assert_matches_reference(*gaussian_fast_and_reference(bins, sigma, value_range), x, y)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (1, 3), (3, 1, 1, 613)])
def test_truncated_parzen_odd_shapes_and_chunks(shape, monkeypatch):
    monkeypatch.setattr("deepmi.losses._kernels.CHUNK_ELEMENTS", 1)  # chunks of 256 columns
    x = mixed(shape, 33, (0.0, 1.0), seed=1).requires_grad_()
    y = mixed(shape, 33, (0.0, 1.0), seed=2).requires_grad_()
    assert_matches_reference(*gaussian_fast_and_reference(33, 0.5), x, y)


@pytest.mark.parametrize("value", [0.0, 0.5, 1.0, -3.0, 0.3])
def test_truncated_parzen_constant_images(value):
    x = torch.full((2, 1, 5, 6), value, dtype=torch.float64, requires_grad=True)
    y = mixed((2, 1, 5, 6), 33, (0.0, 1.0), seed=3).requires_grad_()
    for a, b in ((x, y), (y, x)):
        assert_matches_reference(*gaussian_fast_and_reference(33, 0.5), a, b)


def test_truncated_parzen_float32_close_to_reference():
    # float32 windows are 6 bins at sigma 0.5: the dropped weights are below float32 rounding
    assert window_width(25, 0.5, torch.float32)[0] == 6
    x = mixed((2, 1, 30, 40), 25, (0.0, 1.0), seed=4).float().requires_grad_()
    y = mixed((2, 1, 30, 40), 25, (0.0, 1.0), seed=5).float().requires_grad_()
    assert_matches_reference(*gaussian_fast_and_reference(25, 0.5), x, y, 2e-6)


def test_truncated_parzen_tiny_sigma_is_finite():
    # sigma = 0.02 bins: exp(-d^2 / (2 sigma^2)) underflows for every bin but the nearest unless the
    # exponent is taken relative to the nearest bin (as softmax would)
    x = torch.rand(2, 200, dtype=torch.float32, requires_grad=True)
    y = torch.rand(2, 200, dtype=torch.float32)
    out = mutual_information(x, y, 25, kernel="gaussian", sigma_ratio=0.02)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert torch.isfinite(out).all() and torch.isfinite(grad).all()


@pytest.mark.parametrize("shape", [(3, 2, 11, 14), (1, 1, 3, 3), (2, 1, 5, 41), (2, 7, 9)])
@pytest.mark.parametrize("grads", ["both", "x", "y"])
def test_fused_ssim_matches_plain_autograd(shape, grads):
    g = torch.Generator().manual_seed(len(shape))
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    y = (0.5 * x + 0.5 * torch.rand(shape, generator=g, dtype=torch.float64)) ** 2
    x.requires_grad_(grads in ("both", "x"))
    y.requires_grad_(grads in ("both", "y"))

    def plain(a, b):
        if a.dim() == 3:
            a, b = a.unsqueeze(1), b.unsqueeze(1)
        return ssim_map(a, b).flatten(1).mean(1)

    assert_matches_reference(ssim, plain, x, y)
    assert_matches_reference(
        lambda a, b: ssim_l2(a, b, 0.85), lambda a, b: 0.85 * plain(a, b) + 0.15 * l2(a, b), x, y
    )


def test_fused_ssim_constant_images():
    # zero local variance: SSIM is set by the means alone
    x = torch.full((2, 1, 6, 7), 0.25, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 1, 6, 7, dtype=torch.float64, requires_grad=True)
    for a, b in ((x, y), (y, x), (x, x.detach().clone().requires_grad_())):
        assert_matches_reference(ssim, lambda p, q: ssim_map(p, q).flatten(1).mean(1), a, b)


def test_fused_ssim_repeated_backward():
    x = torch.rand(2, 1, 8, 9, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 1, 8, 9, dtype=torch.float64)
    out = ssim(x, y)
    (first,) = torch.autograd.grad(out.sum(), x, retain_graph=True)
    (second,) = torch.autograd.grad((3 * out).sum(), x)
    (want,) = torch.autograd.grad(ssim_map(x, y).flatten(1).mean(1).sum(), x)
    torch.testing.assert_close(first, want, atol=1e-12, rtol=0)
    torch.testing.assert_close(second, 3 * want, atol=1e-12, rtol=0)
