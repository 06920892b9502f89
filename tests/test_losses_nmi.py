"""Normalised MI (Studholme 1999): a numpy reference on every kernel, its bounds, gradients, the module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmi.losses import NMILoss, normalized_mutual_information

KERNELS = ("linear", "gaussian", "bspline")


def numpy_memberships(v: np.ndarray, bins: int, kernel: str, role: str) -> np.ndarray:
    """(P, N) window weights written from the kernels' definitions, independently of deepmi."""
    v = np.clip(v.ravel(), 0.0, 1.0)[:, None]
    centres = np.arange(bins)[None, :]
    if kernel == "linear":
        return np.maximum(0.0, 1.0 - np.abs(v * (bins - 1) - centres))
    if kernel == "gaussian":
        w = np.exp(-((v * (bins - 1) - centres) ** 2) / (2 * 0.5**2))
        return w / w.sum(1, keepdims=True)
    d = np.abs(np.clip(2 + v * (bins - 4), 2, bins - 3) - centres)  # MONAI: lo at bin 2, hi at N - 2
    if role == "target":  # box car
        return (d < 0.5) + 0.5 * (d == 0.5)
    return np.where(d < 1, (4 - 6 * d**2 + 3 * d**3) / 6, np.where(d < 2, (2 - d) ** 3 / 6, 0.0))


def numpy_nmi(x: np.ndarray, y: np.ndarray, bins: int, kernel: str, w: np.ndarray | None = None) -> float:
    mx = numpy_memberships(x, bins, kernel, "pred")
    my = numpy_memberships(y, bins, kernel, "target")
    w = np.ones(mx.shape[0]) if w is None else w.ravel()
    p = (mx * w[:, None]).T @ my / w.sum()

    def h(q):
        q = q[q > 0]
        return -(q * np.log(q)).sum()

    return (h(p.sum(1)) + h(p.sum(0))) / h(p)


def sample(shape, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    y = (x**2 + 0.3 * torch.rand(shape, generator=g, dtype=torch.float64)) / 1.3
    return x, y


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("method", ["fast", "reference"])
@pytest.mark.parametrize("masked", [False, True])
def test_matches_numpy(kernel, method, masked):
    x, y = sample((2, 1, 7, 9), seed=1)
    w = (
        torch.rand(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        if masked
        else None
    )
    got = normalized_mutual_information(x, y, 11, kernel=kernel, method=method, mask=w)
    for b in range(2):
        want = numpy_nmi(x[b].numpy(), y[b].numpy(), 11, kernel, None if w is None else w[b].numpy())
        assert got[b].item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("kernel", KERNELS)
def test_between_one_and_two(kernel):
    x, y = sample((4, 300), seed=3)
    independent = torch.rand(4, 300, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    for other in (y, independent, x):
        nmi = normalized_mutual_information(x, other, 16, kernel=kernel)
        assert ((nmi >= 1 - 1e-12) & (nmi <= 2 + 1e-12)).all()
    assert (normalized_mutual_information(x, independent, 16, kernel=kernel) < 1.1).all()


def test_identical_hard_labels_give_two():
    labels = torch.randint(0, 8, (3, 200), generator=torch.Generator().manual_seed(5))
    x = labels.double() / 7
    torch.testing.assert_close(
        normalized_mutual_information(x, x, 8), torch.full((3,), 2.0, dtype=torch.float64)
    )


def test_constant_inputs_give_one_with_zero_gradient():
    x = torch.zeros(2, 50, dtype=torch.float64, requires_grad=True)
    nmi = normalized_mutual_information(x, torch.zeros(2, 50, dtype=torch.float64), 8)
    assert torch.equal(nmi, torch.ones(2, dtype=torch.float64))
    nmi.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("method", ["fast", "reference"])
def test_gradcheck(kernel, method):
    x, y = sample((2, 10), seed=6)
    x = (0.1 + 0.8 * x).requires_grad_()
    y = (0.1 + 0.8 * y).requires_grad_(kernel != "bspline")  # the box car passes no gradient
    fn = lambda a, b: normalized_mutual_information(a, b, 6, kernel=kernel, method=method)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, y), atol=1e-6)


def test_fast_gradient_matches_reference():
    x, y = sample((2, 1, 6, 6), seed=7)
    grads = []
    for method in ("fast", "reference"):
        a, b = x.clone().requires_grad_(), y.clone().requires_grad_()
        normalized_mutual_information(a, b, 9, method=method).sum().backward()
        grads.append((a.grad, b.grad))
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_module_is_negative_reduced_nmi():
    x, y = sample((3, 40), seed=8)
    want = normalized_mutual_information(x, y, 12, kernel="gaussian")
    torch.testing.assert_close(NMILoss(12, kernel="gaussian")(x, y), -want.mean())
    torch.testing.assert_close(NMILoss(12, kernel="gaussian", reduction="none")(x, y), -want)
