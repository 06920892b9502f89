"""Mutual information on fuzzy pdfs (DeepMI Eq. 1-3): textbook values, limits, gradients, MONAI."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepmi.losses import MILoss, fuzzy_pdfs, mutual_information


def off_centre(shape, bins, seed, dtype=torch.float64):
    """Values in the middle part of random cells: gradcheck's finite differences stay off the kinks."""
    g = torch.Generator().manual_seed(seed)
    cell = torch.randint(0, bins - 1, shape, generator=g)
    return ((cell + 0.15 + 0.7 * torch.rand(shape, generator=g)) / (bins - 1)).to(dtype)


def textbook_mi(a: np.ndarray, b: np.ndarray, bins: int) -> float:
    """Discrete MI in nats from integer label counts."""
    counts = np.zeros((bins, bins))
    np.add.at(counts, (a.ravel(), b.ravel()), 1)
    p = counts / counts.sum()
    pa, pb = p.sum(1), p.sum(0)
    nz = p > 0
    return float((p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum())


def entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@pytest.mark.parametrize("bins", [2, 4, 16])
def test_hard_bins_equal_textbook_mi(bins):
    g = torch.Generator().manual_seed(bins)
    a = torch.randint(0, bins, (3, 1, 15, 15), generator=g)
    # dependent labels: keep 60 % of pixels, redraw the rest
    b = torch.where(torch.rand(a.shape, generator=g) < 0.6, a, torch.randint(0, bins, a.shape, generator=g))
    got = mutual_information(a.double() / (bins - 1), b.double() / (bins - 1), bins)
    for s in range(3):
        assert got[s].item() == pytest.approx(textbook_mi(a[s].numpy(), b[s].numpy(), bins), abs=1e-12)


def test_hard_bins_on_another_range():
    a = torch.randint(0, 5, (2, 40))
    b = (a + torch.randint(0, 2, (2, 40))) % 5
    got = mutual_information(100 + 25.0 * a.double(), 100 + 25.0 * b.double(), 5, value_range=(100, 200))
    assert got[1].item() == pytest.approx(textbook_mi(a[1].numpy(), b[1].numpy(), 5), abs=1e-12)


def test_mi_of_identical_hard_images_is_entropy():
    bins = 8
    a = torch.randint(0, bins, (2, 1, 20, 20))
    x = a.double() / (bins - 1)
    got = mutual_information(x, x, bins)
    for s in range(2):
        h = entropy(np.bincount(a[s].numpy().ravel(), minlength=bins) / 400)
        assert got[s].item() == pytest.approx(h, abs=1e-12)


def test_mi_of_identical_images_between_centres_at_most_entropy():
    # Off the centres a value spreads over two bins in both copies, so MI(x, x) < H(p_x).
    x = torch.rand(2, 500, dtype=torch.float64)
    px, _, _ = fuzzy_pdfs(x, x, 10)
    h = -(px * px.log()).sum(-1)
    mi = mutual_information(x, x, 10)
    assert (mi < h).all() and (mi > 0.5 * h).all()


def test_independent_images_near_zero():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 1, 128, 128, generator=g), torch.rand(2, 1, 128, 128, generator=g)
    for kernel in ("linear", "gaussian"):
        mi = mutual_information(x, y, 8, kernel=kernel)
        assert (mi >= -1e-6).all() and (mi < 5e-3).all(), (kernel, mi)


def test_more_dependence_more_mi():
    g = torch.Generator().manual_seed(1)
    x, noise = torch.rand(1, 4000, generator=g), torch.rand(1, 4000, generator=g)
    mis = [mutual_information(x, (1 - w) * x + w * noise, 12).item() for w in (0.0, 0.3, 0.7, 1.0)]
    assert mis == sorted(mis, reverse=True)


def test_empty_bins_no_nan_in_value_or_gradient():
    # constant images leave all but one bin empty: 0 log 0 must be 0, in the gradient too
    for kernel in ("linear", "gaussian"):
        for fill in (0.0, 0.5, 1.0, 0.37):
            x = torch.full((2, 1, 8, 8), fill, requires_grad=True)
            y = torch.full((2, 1, 8, 8), 1 - fill, requires_grad=True)
            mi = mutual_information(x, y, 5, kernel=kernel)
            mi.sum().backward()
            assert torch.isfinite(mi).all() and mi.abs().max() < 1e-5
            assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_gradcheck(kernel):
    bins = 5
    x = off_centre((2, 3, 4), bins, seed=1).requires_grad_()
    y = off_centre((2, 3, 4), bins, seed=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: mutual_information(a, b, bins, kernel=kernel), (x, y))


def test_gradcheck_other_range_and_sigma():
    x = (off_centre((2, 10), 6, seed=3) * 4 - 1).requires_grad_()
    y = (off_centre((2, 10), 6, seed=4) * 4 - 1).requires_grad_()
    for kernel in ("linear", "gaussian"):
        assert torch.autograd.gradcheck(
            lambda a, b, k=kernel: mutual_information(a, b, 6, (-1, 3), kernel=k, sigma_ratio=0.8), (x, y)
        )


def test_mi_loss_is_negative_mi():
    x, y = torch.rand(3, 1, 9, 9), torch.rand(3, 1, 9, 9)
    torch.testing.assert_close(MILoss(7, reduction="none")(x, y), -mutual_information(x, y, 7))


@pytest.fixture
def monai_losses():
    """MONAI's GlobalMutualInformationLoss(kernel_type="gaussian") is the peer of kernel="gaussian"."""
    return pytest.importorskip("monai.losses")


class TestMonaiGaussian:
    @pytest.mark.parametrize("bins,sigma_ratio", [(2, 0.5), (8, 0.5), (25, 0.5), (23, 1.0), (10, 0.3)])
    def test_same_numbers(self, monai_losses, bins, sigma_ratio):
        g = torch.Generator().manual_seed(bins)
        x = torch.rand(3, 1, 24, 20, generator=g, dtype=torch.float64) * 1.1 - 0.05  # clamped like MONAI
        y = (0.7 * x + 0.3 * torch.rand(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
        peer = monai_losses.GlobalMutualInformationLoss(
            kernel_type="gaussian", num_bins=bins, sigma_ratio=sigma_ratio, reduction="none"
        )
        ours = mutual_information(x, y, bins, kernel="gaussian", sigma_ratio=sigma_ratio)
        # MONAI adds 1e-7 inside its log ratio; the MI values agree to that smoothing...
        torch.testing.assert_close(ours, -peer(x, y), atol=1e-4, rtol=0)
        # ...and the joint pdfs, where the estimators could really differ, agree to rounding.
        wa, _, wb, _ = peer.parzen_windowing(x, y)
        p_monai = torch.bmm(wa.permute(0, 2, 1), wb) / wa.shape[1]
        from deepmi.losses.mi import gaussian_joint_pdf

        torch.testing.assert_close(gaussian_joint_pdf(x, y, bins, 0.0, 1.0, sigma_ratio), p_monai)

    def test_gradient_agrees(self, monai_losses):
        g = torch.Generator().manual_seed(0)
        x = torch.rand(2, 1, 16, 16, generator=g, dtype=torch.float64, requires_grad=True)
        y = torch.rand(2, 1, 16, 16, generator=g, dtype=torch.float64)
        peer = monai_losses.GlobalMutualInformationLoss(kernel_type="gaussian", num_bins=12)
        (g_peer,) = torch.autograd.grad(peer(x, y), x)
        (g_ours,) = torch.autograd.grad(MILoss(12, kernel="gaussian")(x, y), x)
        assert math.isclose(
            torch.nn.functional.cosine_similarity(g_peer.flatten(), g_ours.flatten(), dim=0).item(),
            1,
            abs_tol=1e-3,
        )
        torch.testing.assert_close(g_ours, g_peer, atol=1e-5, rtol=1e-2)


@pytest.mark.slow
def test_compiled_matches_eager():
    from deepmi.losses import fuzzy as fuzzy_mod

    x = torch.rand(2, 1, 33, 40, requires_grad=True)
    y = torch.rand(2, 1, 33, 40)
    out_c = MILoss(13, compile=True, reduction="none")(x, y)
    (gc,) = torch.autograd.grad(out_c.sum(), x)
    assert fuzzy_mod._cell_weights_k.failed is None
    assert fuzzy_mod._joint_counts_grad_k.compiled.failed is None
    out_e = MILoss(13, reduction="none")(x, y)
    (ge,) = torch.autograd.grad(out_e.sum(), x)
    torch.testing.assert_close(out_c, out_e, atol=1e-5, rtol=0)
    torch.testing.assert_close(gc, ge, atol=1e-6, rtol=1e-4)
