"""Fuzzy pdfs (DeepMI Eq. 14-16) against a loop-based numpy re-derivation and hard-bin counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmi.losses import fuzzy_pdfs


def numpy_fuzzy_pdfs(x: np.ndarray, y: np.ndarray, bins: int, lo: float, hi: float):
    """Per-pixel loops straight from the paper: two memberships per value, four per pair."""
    b = x.shape[0]
    px, py, pxy = np.zeros((b, bins)), np.zeros((b, bins)), np.zeros((b, bins, bins))
    for s in range(b):
        xs, ys = x[s].ravel(), y[s].ravel()
        for xv, yv in zip(xs, ys, strict=True):
            mx = np.zeros(bins)
            my = np.zeros(bins)
            for v, m in ((xv, mx), (yv, my)):
                vb = (min(max(v, lo), hi) - lo) / (hi - lo) * (bins - 1)
                v0 = int(np.floor(vb))
                if v0 == bins - 1:  # exactly at hi: all mass on the last bin
                    m[v0] = 1.0
                else:
                    m[v0] += 1 - (vb - v0)
                    m[v0 + 1] += vb - v0
            px[s] += mx
            py[s] += my
            pxy[s] += np.outer(mx, my)
        n = xs.size
        px[s] /= n
        py[s] /= n
        pxy[s] /= n
    return px, py, pxy


@pytest.mark.parametrize("bins", [2, 3, 7])
@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-2.0, 3.0)])
def test_matches_loop_reference(bins, value_range):
    lo, hi = value_range
    g = torch.Generator().manual_seed(bins)
    # include out-of-range values (clamped) and both ends exactly
    x = lo + (hi - lo) * (torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64) * 1.2 - 0.1)
    y = lo + (hi - lo) * (torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64) * 1.2 - 0.1)
    x[0, 0, 0, 0], x[0, 0, 0, 1], y[1, 0, 0, 0] = lo, hi, hi
    px, py, pxy = fuzzy_pdfs(x, y, bins, value_range)
    rpx, rpy, rpxy = numpy_fuzzy_pdfs(x.numpy(), y.numpy(), bins, lo, hi)
    assert px.shape == (2, bins) and py.shape == (2, bins) and pxy.shape == (2, bins, bins)
    np.testing.assert_allclose(px.numpy(), rpx, atol=1e-12)
    np.testing.assert_allclose(py.numpy(), rpy, atol=1e-12)
    np.testing.assert_allclose(pxy.numpy(), rpxy, atol=1e-12)


def test_hard_bins_are_label_frequencies():
    bins = 5
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, bins, (3, 10, 10), generator=g)
    b = torch.randint(0, bins, (3, 10, 10), generator=g)
    px, py, pxy = fuzzy_pdfs(a.double() / (bins - 1), b.double() / (bins - 1), bins)
    for s in range(3):
        counts = np.zeros((bins, bins))
        np.add.at(counts, (a[s].numpy().ravel(), b[s].numpy().ravel()), 1)
        np.testing.assert_allclose(pxy[s].numpy(), counts / 100, atol=1e-12)
        np.testing.assert_allclose(px[s].numpy(), np.bincount(a[s].numpy().ravel(), minlength=bins) / 100)


def test_marginals_are_joint_sums_and_normalised():
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(4, 1, 9, 9, generator=g), torch.rand(4, 1, 9, 9, generator=g)
    px, py, pxy = fuzzy_pdfs(x, y, 11)
    torch.testing.assert_close(pxy.sum(-1), px, atol=1e-6, rtol=0)
    torch.testing.assert_close(pxy.sum(-2), py, atol=1e-6, rtol=0)
    torch.testing.assert_close(px.sum(-1), torch.ones(4), atol=1e-6, rtol=0)
    assert (pxy >= 0).all()


def test_bin_convention_first_centre_at_lo_last_at_hi():
    # N bins: lo -> bin 0, hi -> bin N-1, the midpoint of bin centres 1 and 2 splits evenly.
    bins, lo, hi = 4, 10.0, 40.0
    x = torch.tensor([[lo, hi, 25.0]], dtype=torch.float64)  # 25 is 1.5 bins from lo (spacing 10)
    px, _, _ = fuzzy_pdfs(x, x, bins, (lo, hi))
    np.testing.assert_allclose(px[0].numpy(), np.array([1, 0.5, 0.5, 1]) / 3)


def test_gradcheck_pdfs():
    g = torch.Generator().manual_seed(2)
    # away from bin centres (kinks): bins at multiples of 1/4, values in the middle of cells
    x = ((torch.randint(0, 4, (2, 6), generator=g) + 0.2 + 0.6 * torch.rand(2, 6, generator=g)) / 4).double()
    y = ((torch.randint(0, 4, (2, 6), generator=g) + 0.2 + 0.6 * torch.rand(2, 6, generator=g)) / 4).double()
    x.requires_grad_()
    y.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: fuzzy_pdfs(a, b, 5), (x, y))


@pytest.mark.parametrize("bins", [5, 2896, 2897, 4096])
def test_backward_table_index_is_exact_up_to_the_largest_bins(bins):
    # The MI backward looks up cell (a, b), or its centre-mean twin at + N^2, in tables of 2 N^2
    # entries; float32 is exact only below 2^24 = 2 * 2896^2, so larger N must not round the index.
    from deepmi.losses.fuzzy import MAX_JOINT_BINS, _table_index

    assert bins <= MAX_JOINT_BINS
    cells = [(1, 0, 0), (1, bins - 1, bins - 2), (0, bins - 2, bins - 1), (1, bins - 1, bins - 3)]
    on, a, b = (torch.tensor([[float(c[k]) for c in cells]]) for k in range(3))  # float32, as the kernel
    got = _table_index(a, b, on, bins)
    assert got.dtype == torch.int64
    assert got[0].tolist() == [n * bins * bins + i * bins + j for n, i, j in cells]
