"""The subgradient convention at kinks: the mean of the right and left derivatives, on every path.

The fuzzy memberships (DeepMI Eq. 15) are piecewise linear with kinks on the bin centres, and the
clamp to ``value_range`` adds kinks at its ends. Every path must return, for every element, the
mean of its one-sided derivatives, which these tests measure with one-sided finite differences in
float64 on inputs with many values exactly on centres, at the ends and outside the range.
"""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from deepmi.losses import LMILoss, MILoss, fuzzy_pdfs, lmi, mutual_information


def on_grid_mix(shape, bins, value_range, seed, centre_share=0.4):
    """Values exactly on bin centres (ends included), some outside the range, the rest anywhere.

    The ranges used keep centres exact in float64: (N - 1) / (hi - lo) is a power of two.
    """
    lo, hi = value_range
    g = torch.Generator().manual_seed(seed)
    anywhere = torch.rand(shape, generator=g, dtype=torch.float64) * 1.2 - 0.1  # 1/6 outside
    centre = torch.randint(0, bins, shape, generator=g).double() / (bins - 1)
    u = torch.where(torch.rand(shape, generator=g) < centre_share, centre, anywhere)
    return lo + (hi - lo) * u


def one_sided_slopes(fn, x: torch.Tensor, h: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Right and left difference quotients of ``fn(x).sum()`` for every element of ``x``."""
    x = x.detach()
    base = fn(x).sum().item()
    right, left = torch.empty_like(x), torch.empty_like(x)
    for i in range(x.numel()):
        step = torch.zeros_like(x).view(-1)
        step[i] = h
        step = step.view_as(x)
        right.view(-1)[i] = (fn(x + step).sum().item() - base) / h
        left.view(-1)[i] = (base - fn(x - step).sum().item()) / h
    return right, left


def assert_mean_of_one_sided(fn, x, y, h, atol):
    """Autograd gradients w.r.t. both inputs equal the mean of the one-sided difference quotients."""
    xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
    grad_x, grad_y = torch.autograd.grad(fn(xg, yg).sum(), (xg, yg))
    for grad, slopes in (
        (grad_x, one_sided_slopes(lambda a: fn(a, y), x, h)),
        (grad_y, one_sided_slopes(lambda b: fn(x, b), y, h)),
    ):
        right, left = slopes
        torch.testing.assert_close(grad, (right + left) / 2, atol=atol, rtol=1e-6)
    return grad_x, grad_y


CASES = [(2, (0.0, 1.0)), (5, (0.0, 1.0)), (9, (-2.0, 6.0))]


@pytest.mark.parametrize("method", ["closed_form", "histogram", "reference"])
@pytest.mark.parametrize("bins,value_range", CASES)
def test_lmi_gradient_is_mean_of_one_sided_slopes(method, bins, value_range):
    x = on_grid_mix((2, 30), bins, value_range, seed=bins)
    y = on_grid_mix((2, 30), bins, value_range, seed=bins + 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few values are outside the range on purpose
        assert_mean_of_one_sided(
            lambda a, b: lmi(a, b, bins, value_range, method=method), x, y, h=1e-7, atol=1e-7
        )


def dense_pair(bins, value_range, seed):
    """400 pixels, many on centres, with every joint bin occupied: MI is differentiable in p_xy there
    (an empty bin would make the one-sided slope of p log p infinite)."""
    x = on_grid_mix((1, 400), bins, value_range, seed)
    y = on_grid_mix((1, 400), bins, value_range, seed + 1)
    y[0, :100] = x[0, :100]  # pixels where both values sit on the same centre (or both anywhere)
    _, _, p_xy = fuzzy_pdfs(x, y, bins, value_range)
    assert (p_xy > 0).all()
    return x, y


@pytest.mark.parametrize("kernel,method", [("linear", "fast"), ("gaussian", "fast"), ("linear", "reference")])
@pytest.mark.parametrize("bins,value_range", [(5, (0.0, 1.0)), (9, (-2.0, 6.0))])
def test_mi_gradient_is_mean_of_one_sided_slopes(kernel, method, bins, value_range):
    full_x, full_y = dense_pair(bins, value_range, seed=bins)
    n = 60  # differentiate w.r.t. the first 60 pixels of each; the other 340 keep the bins occupied

    def fn(a, b):
        a, b = torch.cat([a, full_x[:, n:]], 1), torch.cat([b, full_y[:, n:]], 1)
        return mutual_information(a, b, bins, value_range, kernel=kernel, method=method)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_mean_of_one_sided(fn, full_x[:, :n], full_y[:, :n], h=1e-6, atol=1e-6)


def test_issue_example_on_a_bin_centre():
    # x = 0.5 on centre 5 of N = 11, y = 0.42: the loss rises 2 per unit to the right, falls 6 to the
    # left; autograd used to return 0 (closed form) and -2 (histogram).
    x = torch.tensor([[0.5]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([[0.42]], dtype=torch.float64, requires_grad=True)
    right, left = one_sided_slopes(lambda a: lmi(a, y.detach(), 11), x, 1e-7)
    assert right.item() == pytest.approx(2.0) and left.item() == pytest.approx(6.0)
    for method in ("closed_form", "histogram", "reference"):
        (gx,) = torch.autograd.grad(lmi(x, y, 11, method=method).sum(), x)
        assert gx.item() == pytest.approx(4.0), method
        # the same pair with the roles swapped: y on the centre
        (gy,) = torch.autograd.grad(lmi(y, x, 11, method=method).sum(), x)
        assert gy.item() == pytest.approx(4.0), method


def test_sgd_leaves_a_bin_centre():
    # 50 SGD steps from x = 0.5 used to leave it there; now it moves to 0.4, the nearest centre of
    # the target 0.42, where L_LMI is lowest (docs/losses.md, the bin-centre property).
    target = torch.tensor([[0.42]])
    pred = torch.nn.Parameter(torch.tensor([[0.5]]))
    opt = torch.optim.SGD([pred], lr=1e-3)
    start = LMILoss(11)(pred, target).item()
    for _ in range(50):
        opt.zero_grad()
        LMILoss(11)(pred, target).backward()
        opt.step()
    assert abs(pred.item() - 0.4) < 0.01
    assert LMILoss(11)(pred, target).item() < start - 0.05


@pytest.mark.parametrize("bins", [2, 5, 9])
def test_range_ends_get_half_the_inner_slope(bins):
    # Binary images: every value sits at lo or hi. The clamp is flat outside, so the mean of the
    # one-sided slopes is half the inner one, for the fast paths of both losses.
    g = torch.Generator().manual_seed(bins)
    x = (torch.rand(2, 40, generator=g) > 0.5).double()
    y = torch.where(torch.rand(2, 40, generator=g) > 0.3, x, torch.rand(2, 40, generator=g).double())
    for fn in (
        lambda a, b: lmi(a, b, bins),
        lambda a, b: lmi(a, b, bins, method="histogram"),
        lambda a, b: mutual_information(a, b, bins, kernel="gaussian"),
    ):
        grad_x, _ = assert_mean_of_one_sided(fn, x, y, h=1e-7, atol=1e-6)
        right, left = one_sided_slopes(lambda a, fn=fn: fn(a, y), x, 1e-7)
        assert (left[x == 1] != 0).any() and (right[x == 0] != 0).any()  # the inner slopes are real
        torch.testing.assert_close(grad_x[x == 0], right[x == 0] / 2, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(grad_x[x == 1], left[x == 1] / 2, atol=1e-6, rtol=1e-6)


def test_fuzzy_pdfs_gradients_on_centres():
    # The histogram method's gradients flow through fuzzy_pdfs: check a weighted sum of all three pdfs.
    bins = 5
    x, y = on_grid_mix((2, 25), bins, (0.0, 1.0), seed=3), on_grid_mix((2, 25), bins, (0.0, 1.0), seed=4)
    g = torch.Generator().manual_seed(5)
    wx, wy, wxy = (
        torch.randn(bins, generator=g),
        torch.randn(bins, generator=g),
        torch.randn(bins, bins, generator=g),
    )

    def fn(a, b):
        px, py, pxy = fuzzy_pdfs(a, b, bins)
        return (px * wx).sum(-1) + (py * wy).sum(-1) + (pxy * wxy).sum((-2, -1))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_mean_of_one_sided(fn, x, y, h=1e-7, atol=1e-7)


def _compiler_available() -> bool:
    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


@pytest.mark.skipif(not _compiler_available(), reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_lmi_gradient_on_centres_matches_reference():
    # float32 values j/8 are exact centres of N = 25 on (0, 1); same bins/shapes/dtype as the other
    # compiled LMI tests, so they share one compilation.
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 9, (4, 1, 64, 64), generator=g).float() / 8
    y = torch.where(torch.rand(x.shape, generator=g) < 0.5, x, torch.rand(x.shape, generator=g))
    grads = {}
    for name, kwargs in (("compiled", {"compile": True}), ("reference", {"method": "reference"})):
        xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            grads[name] = torch.autograd.grad(LMILoss(25, reduction="sum", **kwargs)(xg, yg), (xg, yg))
        assert not [w for w in caught if "falling back to eager" in str(w.message)]
    for a, b in zip(grads["compiled"], grads["reference"], strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_compiled_mi_gradient_on_centres_matches_reference():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 9, (2, 1, 33, 40), generator=g).float() / 8
    y = torch.where(torch.rand(x.shape, generator=g) < 0.5, x, torch.rand(x.shape, generator=g))
    grads = []
    for kwargs in ({"compile": True}, {"method": "reference"}):
        xg, yg = x.clone().requires_grad_(), y.clone().requires_grad_()
        grads.append(torch.autograd.grad(MILoss(25, **kwargs)(xg, yg), (xg, yg)))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
