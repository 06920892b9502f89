"""scripts/register_brain.py: its transform algebra, and a tiny end-to-end run on the MNI152 templates."""

from __future__ import annotations

import math

import pytest
import torch

from scripts.register_brain import affine_mm, main, transform_errors, warp

CORNERS = torch.tensor([[x, y, z] for x in (-60.0, 60.0) for y in (-80.0, 80.0) for z in (-50.0, 50.0)])


def test_errors_of_known_residuals():
    assert transform_errors(torch.eye(4), CORNERS) == (0.0, 0.0, 0.0)
    rot, trans, corner = transform_errors(affine_mm(torch.tensor([0, 0, 5.0, 3, 4, 0, 0, 0, 0])), CORNERS)
    assert rot == pytest.approx(5.0) and trans == pytest.approx(5.0)
    scaled = affine_mm(torch.tensor([0, 0, 0, 0, 0, 0, 10.0, 10.0, 10.0]))  # 10 % larger: corners move 10 %
    assert transform_errors(scaled, CORNERS)[2] == pytest.approx(0.1 * CORNERS.norm(dim=1).mean().item())


def test_a_displacement_composed_with_its_inverse_has_no_error():
    d = affine_mm(torch.tensor([4.0, -3, 5, 2, -6, 1, 3, -2, 4], dtype=torch.float64))
    errors = transform_errors(d @ torch.linalg.inv(d), CORNERS)
    assert all(e < 1e-9 for e in errors)
    assert min(transform_errors(d, CORNERS)) > 1


def test_warp_samples_at_the_affine_image_in_mm():
    """warp(v, A)(x) = v(A x): warping by D then by D^-1 gives back v (inside the field of view), and
    a pure translation by one voxel shifts the volume by one voxel along grid x (= the W axis)."""
    z, y, x = torch.meshgrid(*(torch.linspace(-1, 1, n) for n in (20, 24, 28)), indexing="ij")
    v = (torch.sin(3 * x) * torch.cos(2 * y) + z)[None, None]
    d = affine_mm(torch.tensor([3.0, -2, 4, 2, -1, 3, 2, -3, 1], dtype=torch.float64))
    back = warp(warp(v, d, 2.0), torch.linalg.inv(d), 2.0)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4), slice(4, -4))
    torch.testing.assert_close(back[inner], v[inner], atol=0.05, rtol=0)
    shifted = warp(v, affine_mm(torch.tensor([0, 0, 0, 2.0, 0, 0, 0, 0, 0])), 2.0)
    torch.testing.assert_close(shifted[..., :-1], v[..., 1:], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_mi_recovers_a_displacement_that_l2_does_not(tmp_path):
    """8 mm voxels, two pyramid levels: MI undoes most of a random displacement of the grey-matter
    map against the T1; L2, whose optimum is biased by the non-monotonic intensity relation, not."""
    pytest.importorskip("nilearn")
    text = main(
        [
            "--trials",
            "1",
            "--base-mm",
            "8",
            "--levels",
            "2",
            "1",
            "--iters",
            "40",
            "20",
            "--lrs",
            "0.5",
            "0.2",
        ]
        + ["--losses", "mi-linear", "l2", "--no-memory", "--out", str(tmp_path)]
    )
    corner = {
        line.split("|")[1].strip(): float(line.split("|")[4].split()[0])
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| loss")
    }
    assert (tmp_path / "table.md").read_text() == text
    assert corner["mi-linear"] < corner["(no registration)"] / 3
    assert corner["l2"] > corner["mi-linear"] * 2
    assert all(math.isfinite(c) for c in corner.values())
