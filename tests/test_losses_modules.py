"""Every loss module: reductions, one descent step, the registry, edge cases and bad inputs."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from deepmi.losses import (
    LOSSES,
    L1Loss,
    LMILoss,
    MILoss,
    SSIMLoss,
    build_loss,
    fuzzy_pdfs,
    lmi,
    mutual_information,
)

# case -> (registry name, constructor arguments)
ALL_LOSSES: dict[str, tuple[str, dict]] = {
    "l1": ("l1", {}),
    "l2": ("l2", {}),
    "ssim": ("ssim", {}),
    "ssim_l2": ("ssim_l2", {}),
    "mi": ("mi", {"bins": 8}),
    "mi_gaussian": ("mi", {"bins": 8, "kernel": "gaussian"}),
    "lmi": ("lmi", {"bins": 8}),
    "lmi_histogram": ("lmi", {"bins": 8, "method": "histogram"}),
}


def make(case: str, **extra) -> torch.nn.Module:
    name, kwargs = ALL_LOSSES[case]
    return build_loss(name, **kwargs, **extra)


@pytest.fixture
def fresh_range_warnings(monkeypatch):
    """The out-of-range warning is shown once per value_range and process: start each test afresh."""
    monkeypatch.setattr("deepmi.losses._checks._warned_ranges", set())


def test_registry_names():
    assert set(LOSSES) == {"l1", "l2", "ssim", "ssim_l2", "mi", "lmi"}
    assert isinstance(build_loss("lmi", bins=5), LMILoss) and build_loss("lmi", bins=5).bins == 5


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown loss 'x'; choose one of: l1, l2, ssim, ssim_l2, mi, lmi"):
        build_loss("x")
    with pytest.raises(
        ValueError, match="loss 'l1' does not take argument.* bins; valid arguments: reduction"
    ):
        build_loss("l1", bins=25)
    with pytest.raises(ValueError, match="'lmi' does not take.*kernel.*valid arguments: bins, value_range"):
        build_loss("lmi", kernel="gaussian")


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_reductions(name):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(3, 1, 10, 12, generator=g), torch.rand(3, 1, 10, 12, generator=g)
    per = make(name, reduction="none")(x, y)
    assert per.shape == (3,)
    torch.testing.assert_close(make(name, reduction="mean")(x, y), per.mean())
    torch.testing.assert_close(make(name, reduction="sum")(x, y), per.sum())
    with pytest.raises(ValueError, match="unknown reduction 'avg'; choose one of: mean, sum, none"):
        make(name, reduction="avg")


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_one_gradient_step_lowers_it(name):
    g = torch.Generator().manual_seed(1)
    target = torch.rand(2, 1, 16, 16, generator=g)
    pred = torch.nn.Parameter(0.1 + 0.8 * torch.rand(2, 1, 16, 16, generator=g))
    loss_fn = make(name)
    before = loss_fn(pred, target)
    before.backward()
    assert pred.grad is not None and pred.grad.abs().max() > 0
    # SGD step whose largest pixel move is 0.002: small enough to stay in the linear regime
    torch.optim.SGD([pred], lr=0.002 / pred.grad.abs().max().item()).step()
    with torch.no_grad():
        after = loss_fn(pred, target)
    assert after < before, (name, before.item(), after.item())


@pytest.mark.parametrize("name", ["lmi", "mi", "lmi_histogram", "mi_gaussian"])
def test_gradient_reaches_both_inputs(name):
    x = torch.rand(2, 1, 6, 6, requires_grad=True)
    y = torch.rand(2, 1, 6, 6, requires_grad=True)
    make(name)(x, y).backward()
    assert x.grad.abs().sum() > 0 and y.grad.abs().sum() > 0


@pytest.mark.parametrize("name", list(ALL_LOSSES))
@pytest.mark.parametrize(
    "case",
    ["constant", "range_ends", "batch_one", "float64", "half"],
)
def test_edge_cases_finite(name, case):
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(2, 1, 7, 9, generator=g), torch.rand(2, 1, 7, 9, generator=g)
    if case == "constant":
        x, y = torch.full_like(x, 0.3), torch.full_like(y, 0.3)
    elif case == "range_ends":
        x, y = (x > 0.5).float(), (y > 0.5).float()  # values exactly 0 and 1
    elif case == "batch_one":
        x, y = x[:1], y[:1]
    elif case == "float64":
        x, y = x.double(), y.double()
    elif case == "half":
        x, y = x.half(), y.half()
    x.requires_grad_()
    out = make(name)(x, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("cls", [LMILoss, MILoss])
def test_bins_two_and_any_layout(cls):
    for shape in [(3, 40), (2, 5, 8), (2, 3, 4, 5), (2, 1, 2, 3, 4)]:
        x, y = torch.rand(shape), torch.rand(shape)
        assert cls(2, reduction="none")(x, y).shape == (shape[0],)


def test_statistics_are_per_sample():
    # sample 0 identical on centres, sample 1 independent: the batch must not mix them
    x = torch.randint(0, 5, (2, 1, 20, 20)).float() / 4
    y = x.clone()
    y[1] = torch.rand(1, 20, 20)
    per = LMILoss(5, reduction="none")(x, y)
    assert per[0].item() < 1e-6 and per[1].item() > 0.5
    torch.testing.assert_close(per[1:], LMILoss(5, reduction="none")(x[1:], y[1:]))


@pytest.mark.parametrize("cls", [LMILoss, MILoss, L1Loss, SSIMLoss])
def test_large_images(cls):
    x = torch.rand(2, 1, 512, 1024, requires_grad=True)
    y = torch.rand(2, 1, 512, 1024)
    out = cls()(x, y)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", list(ALL_LOSSES))
def test_bad_inputs_raise(name):
    loss = make(name)
    x = torch.rand(2, 1, 5, 5)
    with pytest.raises(ValueError, match="same shape"):
        loss(x, torch.rand(2, 1, 5, 6))
    with pytest.raises(ValueError, match="floating-point"):
        loss(torch.randint(0, 3, (2, 1, 5, 5)), x)
    for bad in (float("nan"), float("inf"), -float("inf")):
        y = x.clone()
        y[1, 0, 2, 3] = bad
        with pytest.raises(ValueError, match="target contains NaN or inf"):
            loss(x, y)
        with pytest.raises(ValueError, match="pred contains NaN or inf"):
            loss(y, x)


def test_huge_finite_values_are_not_mistaken_for_inf(fresh_range_warnings):
    # the cheap NaN/inf test sums the input; an overflowing sum of finite values must still pass
    x = torch.full((1, 1000), 3e37)
    with pytest.warns(UserWarning, match="outside value_range"):  # they are, all of them
        assert torch.isfinite(LMILoss(5, value_range=(0, 1))(x, x))


def test_bad_hyper_parameters_raise():
    for bins in (1, 0, -3, 2.5, True):
        with pytest.raises(ValueError, match="bins"):
            LMILoss(bins)
        with pytest.raises(ValueError, match="bins"):
            MILoss(bins)
    for value_range in ((1.0, 1.0), (2.0, 0.0), (0.0, float("inf")), (0.0,)):
        with pytest.raises(ValueError, match="value_range"):
            LMILoss(5, value_range=value_range)
    with pytest.raises(ValueError, match="bins <= 4096"):
        MILoss(5000)(torch.rand(1, 4), torch.rand(1, 4))
    assert torch.isfinite(LMILoss(5000)(torch.rand(1, 4), torch.rand(1, 4)))  # no N x N table here
    with pytest.raises(ValueError, match="unknown method 'exact'; choose one of: closed_form, histogram"):
        LMILoss(5, method="exact")
    with pytest.raises(ValueError, match="unknown kernel 'box'; choose one of: linear, gaussian"):
        MILoss(5, kernel="box")
    with pytest.raises(ValueError, match="sigma_ratio"):
        MILoss(5, kernel="gaussian", sigma_ratio=0)


def test_import_pulls_neither_hydra_nor_lightning():
    code = (
        "import sys; from deepmi.losses import LMILoss; "
        "bad = [m for m in ('hydra', 'lightning', 'pytorch_lightning', 'monai') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("name", ["lmi", "mi", "lmi_histogram", "mi_gaussian"])
def test_chunked_eager_kernels_match_single_pass(name, monkeypatch):
    # Eager kernels run over cache-sized column chunks on large inputs: same values and gradients.
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 1, 30, 41, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(3, 1, 30, 41, generator=g, dtype=torch.float64, requires_grad=True)
    loss = make(name, reduction="sum")
    whole = loss(x, y)
    grads = torch.autograd.grad(whole, (x, y))
    monkeypatch.setattr("deepmi.losses._kernels.CHUNK_ELEMENTS", 1)  # -> chunks of 1024 columns
    chunked = loss(x, y)
    torch.testing.assert_close(chunked, whole, atol=1e-12, rtol=0)
    for a, b in zip(torch.autograd.grad(chunked, (x, y)), grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("bins", [np.int64(11), np.int32(11), np.uint8(11), torch.tensor(11)])
def test_integer_scalars_are_valid_bins(bins):
    x, y = torch.rand(2, 30), torch.rand(2, 30)
    for loss in (LMILoss(bins), MILoss(bins)):
        assert loss.bins == 11 and type(loss.bins) is int
    torch.testing.assert_close(lmi(x, y, bins), lmi(x, y, 11))
    torch.testing.assert_close(mutual_information(x, y, bins), mutual_information(x, y, 11))


@pytest.mark.parametrize(
    "bins",
    [2.5, 11.0, True, np.bool_(True), torch.tensor(True), torch.tensor(2.5), torch.tensor([3, 4]), "25"],
)
def test_non_integer_bins_raise(bins):
    with pytest.raises(ValueError, match=r"bins must be an integer >= 2, got .*; pass e\.g\. bins=25"):
        LMILoss(bins)
    with pytest.raises(ValueError, match="bins must be an integer"):
        lmi(torch.rand(1, 4), torch.rand(1, 4), bins)


@pytest.mark.parametrize("bins", [np.int64(1), torch.tensor(0), -3])
def test_integer_bins_below_two_raise(bins):
    with pytest.raises(ValueError, match="bins must be >= 2"):
        MILoss(bins)


def _caught(fn) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return [str(w.message) for w in caught]


def test_out_of_range_batch_warns_once_with_the_fix(fresh_range_warnings):
    # 8-bit images with the default value_range (0, 1): all clamped to 1, loss 0, gradient 0.
    g = torch.Generator().manual_seed(0)
    pred = (torch.rand(2, 1, 32, 32, generator=g) * 255).requires_grad_()
    target = torch.rand(2, 1, 32, 32, generator=g) * 255
    messages = _caught(lambda: LMILoss(25)(pred, target).backward())
    assert len(messages) == 1
    assert re.search(r"of pred's values .* outside value_range=\(0, 1\)", messages[0])
    assert "value_range=(0, 255) for 8-bit images" in messages[0]
    assert pred.grad.abs().max() < 1e-3  # what the warning is about: almost no gradient reaches pred
    # once per value_range: no repeat, from any loss or function
    assert _caught(lambda: LMILoss(25)(pred, target)) == []
    assert _caught(lambda: mutual_information(pred, target, 8)) == []
    # another range warns again; the values themselves are unchanged by the check
    assert len(_caught(lambda: MILoss(8, value_range=(0.0, 2.0))(pred, target))) == 1


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, y: lmi(x, y, 5, method="histogram"),
        lambda x, y: mutual_information(x, y, 5, kernel="gaussian"),
        lambda x, y: fuzzy_pdfs(x, y, 5),
    ],
)
def test_out_of_range_target_warns_from_every_histogram_function(fn, fresh_range_warnings):
    x = torch.rand(2, 500)
    messages = _caught(lambda: fn(x, x * 100 + 2))
    assert len(messages) == 1 and "of target's values" in messages[0]


def test_in_range_or_mostly_in_range_batches_do_not_warn(fresh_range_warnings):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 1, 64, 64, generator=g)
    slightly_out = x * 1.2 - 0.1  # 1/6 of the values a little outside: clamping them is intended
    binary = (x > 0.5).float()  # values exactly at the range ends are in range
    for a, b in ((x, x.flip(0)), (slightly_out, x), (binary, x), (x * 255, x * 255)):
        value_range = (0.0, 255.0) if a.max() > 2 else (0.0, 1.0)
        assert _caught(lambda a=a, b=b, r=value_range: LMILoss(25, value_range=r)(a, b)) == []


def test_histogram_losses_compute_in_float32_under_autocast():
    # bf16 autocast used to turn the Gaussian kernel's bmm into bf16 (0.9 % error in MI) and its
    # backward then failed on a dtype mismatch; every histogram loss must give its float32 numbers.
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 1, 32, 32, generator=g, requires_grad=True)
    y = torch.rand(2, 1, 32, 32, generator=g)
    for name in ("lmi", "lmi_histogram", "mi", "mi_gaussian"):
        loss = make(name)
        want = loss(x, y)
        (grad_want,) = torch.autograd.grad(want, x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = loss(x, y)
            (grad_got,) = torch.autograd.grad(got, x)
        assert got.dtype == torch.float32, name
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(grad_got, grad_want, atol=1e-7, rtol=1e-5)
    # and with backward() outside the autocast region
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = make("mi_gaussian")(x, y)
    out.backward()
    assert x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()
