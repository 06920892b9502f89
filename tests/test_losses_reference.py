"""``method="reference"``: plain-autograd fuzzy histograms, and every fast path against it in float64."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from deepmi.losses import LMILoss, MILoss, build_loss, fuzzy_pdfs, lmi, mutual_information
from deepmi.losses.reference import memberships, reference_pdfs


def mixed_values(shape, bins, value_range, seed):
    """40 % exactly on bin centres (both ends included), 1/6 of the rest outside the range."""
    lo, hi = value_range
    g = torch.Generator().manual_seed(seed)
    anywhere = torch.rand(shape, generator=g, dtype=torch.float64) * 1.2 - 0.1
    centre = torch.randint(0, bins, shape, generator=g).double() / (bins - 1)
    return lo + (hi - lo) * torch.where(torch.rand(shape, generator=g) < 0.4, centre, anywhere)


@pytest.mark.parametrize("kernel", ["linear", "gaussian"])
def test_memberships_against_numpy(kernel):
    bins, lo, hi, sigma = 6, -1.0, 4.0, 0.7
    v = mixed_values((2, 3, 5), bins, (lo, hi), seed=0)
    got = memberships(v, bins, lo, hi, kernel, sigma).numpy()
    u = np.clip((v.numpy().reshape(2, -1, 1) - lo) / (hi - lo) * (bins - 1), 0, bins - 1)
    d = u - np.arange(bins)
    if kernel == "linear":
        want = np.maximum(0.0, 1.0 - np.abs(d))  # the hat of Eq. 15 on the clamped coordinate
    else:
        w = np.exp(-(d**2) / (2 * sigma**2))
        want = w / w.sum(-1, keepdims=True)
    assert got.shape == (2, 15, bins)
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-12)


PATHS = {
    "lmi_closed_form": (lambda x, y, n, r: lmi(x, y, n, r), lambda x, y, n, r: lmi(x, y, n, r, "reference")),
    "lmi_histogram": (
        lambda x, y, n, r: lmi(x, y, n, r, "histogram"),
        lambda x, y, n, r: lmi(x, y, n, r, "reference"),
    ),
    "mi_linear": (
        lambda x, y, n, r: mutual_information(x, y, n, r),
        lambda x, y, n, r: mutual_information(x, y, n, r, method="reference"),
    ),
    "mi_gaussian": (
        lambda x, y, n, r: mutual_information(x, y, n, r, "gaussian", 0.6),
        lambda x, y, n, r: mutual_information(x, y, n, r, "gaussian", 0.6, method="reference"),
    ),
}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize(
    "bins,value_range", [(2, (0.0, 1.0)), (5, (0.0, 1.0)), (9, (-2.0, 6.0)), (25, (0.0, 1.0))]
)
def test_fast_path_matches_reference(path, bins, value_range):
    fast, reference = PATHS[path]
    x = mixed_values((3, 2, 7, 9), bins, value_range, seed=bins).requires_grad_()
    y = mixed_values((3, 2, 7, 9), bins, value_range, seed=bins + 1).requires_grad_()
    upstream = torch.tensor([0.7, -1.3, 2.0], dtype=torch.float64)  # a weighted sum, not just .sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some values are outside value_range on purpose
        want = reference(x, y, bins, value_range)
        got = fast(x, y, bins, value_range)
        grads_want = torch.autograd.grad((want * upstream).sum(), (x, y))
        grads_got = torch.autograd.grad((got * upstream).sum(), (x, y))
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    for a, b in zip(grads_got, grads_want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    assert all(g.abs().sum() > 0 for g in grads_want)


@pytest.mark.parametrize("bins", [2, 7])
def test_fuzzy_pdfs_match_reference(bins):
    x = mixed_values((2, 40), bins, (0.0, 1.0), seed=3).requires_grad_()
    y = mixed_values((2, 40), bins, (0.0, 1.0), seed=4).requires_grad_()
    g = torch.Generator().manual_seed(5)
    weights = [torch.randn(s, generator=g, dtype=torch.float64) for s in ((bins,), (bins,), (bins, bins))]

    def weighted(pdfs):
        return sum((p * w).sum() for p, w in zip(pdfs, weights, strict=True))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, want = fuzzy_pdfs(x, y, bins), reference_pdfs(x, y, bins, 0.0, 1.0)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    for a, b in zip(
        torch.autograd.grad(weighted(got), (x, y)), torch.autograd.grad(weighted(want), (x, y)), strict=True
    ):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_modules_take_the_reference_method():
    g = torch.Generator().manual_seed(6)
    x, y = torch.rand(2, 1, 9, 11, generator=g), torch.rand(2, 1, 9, 11, generator=g)
    torch.testing.assert_close(LMILoss(8, method="reference")(x, y), LMILoss(8)(x, y), atol=1e-6, rtol=0)
    for kernel in ("linear", "gaussian"):
        want = MILoss(8, kernel=kernel)(x, y)
        torch.testing.assert_close(
            MILoss(8, kernel=kernel, method="reference")(x, y), want, atol=1e-6, rtol=0
        )
    assert build_loss("mi", bins=8, method="reference").method == "reference"
    assert "method='reference'" in repr(MILoss(8, method="reference"))
    with pytest.raises(ValueError, match="unknown method 'exact'; choose one of: fast, reference"):
        MILoss(8, method="exact")
    with pytest.raises(ValueError, match="unknown method 'exact'; choose one of: fast, reference"):
        mutual_information(x, y, 8, method="exact")
