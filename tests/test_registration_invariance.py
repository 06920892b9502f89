"""L_MI is invariant to one-to-one intensity maps, L_LMI is not; the kornia adapter and its example."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from kornia.geometry import ImageRegistrator
from kornia.geometry.transform import HomographyWarper
from kornia.geometry.transform.image_registrator import Similarity

from deepmi.losses import LOSSES, LMILoss, MILoss, lmi, mutual_information
from deepmi.registration import MaskedImageRegistrator, RegistrationLoss

N = 16


def smooth(*shape: int, seed: int = 0) -> torch.Tensor:
    """A smooth random field in [0, 1] of shape (1, 1, *shape): noise blurred by repeated 3-box means."""
    g = torch.Generator().manual_seed(seed)
    v = torch.rand(1, 1, *shape, generator=g, dtype=torch.float64)
    pool = F.avg_pool2d if len(shape) == 2 else F.avg_pool3d
    for _ in range(4):
        v = pool(v, 3, stride=1, padding=1, count_include_pad=False)
    return (v - v.min()) / (v.max() - v.min())


def on_centres(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """An image whose values are exactly bin centres k / (N - 1), and its bin labels k."""
    k = torch.randint(0, N, (2, 1, 24, 24), generator=torch.Generator().manual_seed(seed))
    return k.double() / (N - 1), k


# (a) invariance of L_MI, and its absence in L_LMI


def test_mi_unchanged_by_a_permutation_of_bin_centres_lmi_is_not() -> None:
    x, k = on_centres()
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(1))
    assert (perm != torch.arange(N)).sum() >= N - 2  # a real relabelling
    y = perm[k].double() / (N - 1)  # still on centres: same occupancy, other bins
    mi_xx, mi_xy = mutual_information(x, x, N), mutual_information(x, y, N)
    torch.testing.assert_close(mi_xy, mi_xx, atol=1e-9, rtol=0)
    assert (mi_xx > 2.5).all()  # ~log 16 = 2.77: the test is not vacuous
    # hard bins: L_LMI is the fraction of pixels whose bin changed
    assert torch.allclose(lmi(x, x, N), torch.zeros(2, dtype=x.dtype), atol=1e-12)
    changed = (perm[k] != k).double().mean(dim=(1, 2, 3))
    torch.testing.assert_close(lmi(x, y, N), changed)
    assert (lmi(x, y, N) > 0.8).all()


def test_inverting_a_smooth_image_keeps_mi_and_raises_lmi() -> None:
    x = smooth(48, 48)  # values anywhere, not on centres: inversion mirrors the fuzzy histogram
    mi_loss, lmi_loss = MILoss(bins=N), LMILoss(bins=N)
    torch.testing.assert_close(mi_loss(x, 1 - x), mi_loss(x, x), atol=1e-9, rtol=0)
    assert lmi_loss(x, x) < 0.5  # the bin-centre floor 2 f (1 - f) <= 1/2 (docs/losses.md)
    assert lmi_loss(x, 1 - x) > lmi_loss(x, x) + 0.3


def test_gamma_keeps_most_of_mi_lmi_rises() -> None:
    # I^3 is one-to-one but squeezes values into the low bins: MI drops only by the merged bins
    x = smooth(48, 48)
    mi_same, mi_gamma = mutual_information(x, x, N), mutual_information(x, x**3, N)
    assert mi_gamma > 0.6 * mi_same
    assert lmi(x, x**3, N) > lmi(x, x, N) + 0.3


def test_volume_inversion_keeps_mi_and_raises_lmi() -> None:
    # the losses see a pixel set, not an image: the same holds for a 3D volume
    v = smooth(12, 16, 16, seed=3)
    torch.testing.assert_close(
        mutual_information(v, 1 - v, N), mutual_information(v, v, N), atol=1e-9, rtol=0
    )
    assert lmi(v, 1 - v, N) > lmi(v, v, N) + 0.3
    m = RegistrationLoss("mi", bins=N)(v, 1 - v)  # the adapter keeps the volume's layout
    assert m.shape == v.shape
    torch.testing.assert_close(m.mean(), MILoss(bins=N)(v, v))


# (b) the registration gradient under L_MI points the right way for an inverted target


def shift_gradient(name: str, shift_px: float) -> float:
    """d loss / d shift_x at the identity, for a target = inverted source moved right by shift_px."""
    src = smooth(48, 48, seed=5).float()
    warper = HomographyWarper(48, 48)
    truth = Similarity(rotation=False, scale=False)
    with torch.no_grad():
        truth.shift[0, 0, 0] = -shift_px * 2 / 48  # kornia's model maps dst to src: moved right => shift < 0
    dst = 1 - warper(src, truth())
    model = Similarity(rotation=False, scale=False)
    warped = warper(src, model())
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))  # away from the zero-filled border
    kwargs = {"bins": N} if name in ("mi", "lmi") else {}
    RegistrationLoss(name, **kwargs)(warped[inner], dst[inner], reduction="mean").backward()
    return model.shift.grad[0, 0, 0].item()


@pytest.mark.parametrize("shift_px", [2.0, -2.0])
def test_mi_gradient_reduces_the_shift_of_an_inverted_target(shift_px: float) -> None:
    g = shift_gradient("mi", shift_px)
    # the true parameter is -shift_px * 2 / 48; a descent step (-g) must move toward it
    assert g != 0 and math.copysign(1, -g) == math.copysign(1, -shift_px)


@pytest.mark.parametrize("name", ["l1", "l2"])
@pytest.mark.parametrize("shift_px", [2.0, -2.0])
def test_pixel_loss_gradient_moves_away_from_an_inverted_target(name: str, shift_px: float) -> None:
    # contrast: L1/L2 want equal values, and on 1 - I the nearest "equal" is the wrong way
    g = shift_gradient(name, shift_px)
    assert g != 0 and math.copysign(1, -g) == math.copysign(1, shift_px)


# (c) the adapter with kornia


def test_adapter_map_has_the_loss_as_mean_and_gradient() -> None:
    a = smooth(20, 20, seed=7).float().requires_grad_(True)
    b = (1 - smooth(20, 20, seed=8)).float()
    for name in ("ssim", "ssim_l2", "mi", "lmi"):
        loss = LOSSES[name]() if name not in ("mi", "lmi") else LOSSES[name](bins=N)
        mapped = RegistrationLoss(loss)(a, b)  # reduction="none", as kornia calls it
        assert mapped.shape == a.shape
        mask = torch.zeros_like(a, dtype=torch.bool)
        mask[..., 3:11, 5:17] = True  # kornia's masked mean of a map is the loss
        (g_map,) = torch.autograd.grad(mapped.masked_select(mask).mean(), a)
        (g_loss,) = torch.autograd.grad(loss(a, b), a)
        torch.testing.assert_close(mapped.masked_select(mask).mean(), loss(a, b))
        torch.testing.assert_close(g_map, g_loss)
    l1_map = RegistrationLoss("l1")(a, b)
    torch.testing.assert_close(l1_map, (a - b).abs())  # elementwise: the true per-pixel map
    torch.testing.assert_close(RegistrationLoss("l2")(a, b, reduction="mean"), F.mse_loss(a, b))


def test_adapter_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="reduction"):
        RegistrationLoss("l1")(torch.rand(1, 4), torch.rand(1, 4), reduction="max")
    with pytest.raises(ValueError, match="only for a loss given by name"):
        RegistrationLoss(MILoss(), bins=8)
    with pytest.raises(ValueError, match="unknown loss"):
        RegistrationLoss("ncc")
    with pytest.raises(ValueError, match="NaN|finite"):
        RegistrationLoss("l1")(torch.full((1, 4), float("nan")), torch.rand(1, 4))


@pytest.mark.parametrize("name", list(LOSSES))
def test_adapter_runs_in_kornias_image_registrator(name: str) -> None:
    src = smooth(32, 32, seed=9).float()
    kwargs = {"bins": N} if name in ("mi", "lmi") else {}
    reg = ImageRegistrator("similarity", loss_fn=RegistrationLoss(name, **kwargs), pyramid_levels=2, lr=1e-2)
    reg.num_iterations = 3
    transform = reg.register(src, 1 - src.roll(2, dims=-1))
    assert transform.shape == (1, 3, 3) and torch.isfinite(transform).all()
    assert not torch.equal(transform, torch.eye(3)[None])  # the parameters moved
    loss = reg.get_single_level_loss(src, 1 - src, reg.model())
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_l1_adapter_registers_exactly_as_kornias_default_and_masked_l1_matches() -> None:
    src = smooth(32, 32, seed=11).float()
    dst = src.roll((1, 2), dims=(-2, -1))
    kw = {"model_type": "similarity", "pyramid_levels": 2, "num_iterations": 4, "lr": 1e-2}
    ours = ImageRegistrator(loss_fn=RegistrationLoss("l1"), **kw).register(src, dst)
    kornia = ImageRegistrator(loss_fn=F.l1_loss, **kw).register(src, dst)
    masked = MaskedImageRegistrator(loss_fn=RegistrationLoss("l1"), **kw).register(src, dst)
    torch.testing.assert_close(ours, kornia, atol=1e-6, rtol=0)
    torch.testing.assert_close(masked, kornia, atol=1e-6, rtol=0)


def test_masked_registrator_hides_the_uncovered_border_from_mi() -> None:
    src = smooth(32, 32, seed=13).float()
    reg = MaskedImageRegistrator("similarity", loss_fn=RegistrationLoss("mi", bins=N))
    with torch.no_grad():
        reg.model.scale.fill_(1.25)  # maps dst to src: shrinks the source, a wide zero-filled border
        reg.model.set_image_shape(32, 32)
        warped = reg.warper(32, 32)(src, reg.model())
        covered = reg.warper(32, 32)(torch.ones_like(src), reg.model()) > 0.9
        masked = reg.get_single_level_loss(src, 1 - src, reg.model())
        unmasked = ImageRegistrator.get_single_level_loss(reg, src, 1 - src, reg.model())
    a, b = warped[covered][None, None], (1 - src)[covered][None, None]
    torch.testing.assert_close(masked, MILoss(bins=N)(a, b))
    assert (~covered).float().mean() > 0.2 and not torch.isclose(masked, unmasked)
    with pytest.raises(ValueError, match="ssim"):  # windowed losses need the grid
        MaskedImageRegistrator("similarity", loss_fn=RegistrationLoss("ssim")).get_single_level_loss(
            src, src, reg.model()
        )


# (d) the example script end to end


def test_script_writes_its_table(tmp_path: Path) -> None:
    from scripts.registration_invariance import main

    out = tmp_path / "table.md"
    args = ["--out", str(out), "--size", "32", "--iterations", "2", "--levels", "1", "--bins", "4", "8"]
    table = main(args)
    assert out.read_text() == table
    lines = table.strip().splitlines()
    assert lines[0] == "| loss | same | inverted (1 - I) | gamma (I^3) |"
    labels = [line.split("|")[1].strip() for line in lines[2:]]
    assert labels == [
        "no registration",
        "L1",
        "L2",
        "SSIM",
        "SSIM + L2",
        "L_MI (N=4)",
        "L_MI (N=8)",
        "L_LMI (N=4)",
        "L_LMI (N=8)",
    ]
    for line in lines[2:]:
        cells = [float(c) for c in line.split("|")[2:-1]]
        assert len(cells) == 3 and all(0 <= c < 1 for c in cells)
    assert main(args) == table  # deterministic
