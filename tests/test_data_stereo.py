"""Synthetic stereo: geometric consistency of left/right/disparity, depth = f B / d, occlusion
mask, exact disparity rebuild from the cache, and a hand-made two-layer scene."""

import numpy as np
import pytest
import torch

from deepmi.data.synthetic_stereo import (
    KITTI_BASELINE,
    SyntheticStereoDataset,
    _Layer,
    _render,
    generate_synthetic_stereo,
    kitti_focal,
    planes_to_disparity,
)
from deepmi.models.warp import warp_right_to_left as warp

H, W = 48, 160


def warp_right_to_left(right: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """The library's stereo warp (Exp3's), reading the edge pixel outside the image."""
    return warp(right, disparity, padding_mode="border")


@pytest.fixture(scope="module")
def pairs():
    return generate_synthetic_stereo(10, height=H, width=W, seed=5, split="test", progress=False)


def test_warping_right_with_gt_disparity_reproduces_left(pairs):
    left = torch.from_numpy(pairs["left"] / 255.0).float()[:, None]
    right = torch.from_numpy(pairs["right"] / 255.0).float()[:, None]
    disparity = torch.from_numpy(pairs["disparity"])[:, None]
    visible = torch.from_numpy(pairs["visible"]).float()[:, None]
    assert visible.mean() > 0.7
    err = ((warp_right_to_left(right, disparity) - left).abs() * visible).sum() / visible.sum()
    err_zero = ((right - left).abs() * visible).sum() / visible.sum()
    assert err < 0.02, err
    assert err < 0.25 * err_zero, (err, err_zero)
    # Shifting the disparity by a pixel is clearly worse than the ground truth as well.
    err_off = ((warp_right_to_left(right, disparity + 1.5) - left).abs() * visible).sum() / visible.sum()
    assert err < 0.6 * err_off


def test_depth_disparity_and_calibration(pairs):
    focal, baseline = float(pairs["focal"]), float(pairs["baseline"])
    assert focal == pytest.approx(721.5377 * W / 1242) and baseline == KITTI_BASELINE
    assert kitti_focal(640) == pytest.approx(371.8, abs=0.1)
    disparity = pairs["disparity"]
    assert np.all(disparity > 0) and np.isfinite(disparity).all()
    depth = focal * baseline / disparity
    assert depth.min() > 3.0 and depth.max() <= 80.0 + 1e-3
    dataset = SyntheticStereoDataset(None, "test", n_test=3, height=H, width=W, seed=5, progress=False)
    item = dataset[1]
    torch.testing.assert_close(
        item["depth"] * item["disparity"], torch.full((1, H, W), focal * baseline), rtol=1e-5, atol=0
    )
    torch.testing.assert_close(item["disparity"][0], torch.from_numpy(pairs["disparity"][1]), rtol=0, atol=0)


def test_disparity_is_rebuilt_exactly_from_layers_and_planes(pairs):
    assert np.array_equal(planes_to_disparity(pairs["layer"], pairs["planes"]), pairs["disparity"])
    assert np.array_equal(planes_to_disparity(pairs["layer"][2], pairs["planes"][2]), pairs["disparity"][2])


def test_ground_disparity_grows_towards_the_bottom(pairs):
    # Layer 1 is the ground plane: its b coefficient (d per row) is B / camera height > 0.
    assert np.all(pairs["planes"][:, 1, 1] > 0)
    bottom, middle = pairs["disparity"][:, -1].mean(), pairs["disparity"][:, H // 2].mean()
    assert bottom > middle


def test_left_border_seen_out_of_right_view_is_not_visible(pairs):
    columns = np.arange(W)[None, None, :]
    out_of_view = columns - pairs["disparity"] < 0
    assert out_of_view.any() and not pairs["visible"][out_of_view].any()


def test_two_layer_scene_shifts_and_occludes_as_expected():
    """A square at disparity 6 in front of a wall at disparity 2, both with constant texture."""
    wall = _Layer(plane=(0.0, 0.0, 2.0), region=(0, 60, 0, 19), texture=np.full((20, 61), 0.2, np.float32))
    box = [(1.0, 0.0, -20.0), (-1.0, 0.0, 29.0), (0.0, 1.0, -5.0), (0.0, -1.0, 14.0)]  # 20<=u<=29, 5<=v<=14
    square = _Layer(
        plane=(0.0, 0.0, 6.0),
        region=(20, 29, 5, 14),
        halfplanes=box,
        texture=np.full((10, 10), 0.9, np.float32),
    )
    left, label_left = _render([wall, square], 20, 40, right=False)
    right, label_right = _render([wall, square], 20, 40, right=True)
    assert np.array_equal(np.nonzero(left[10] > 0.5)[0], np.arange(20, 30))
    assert np.array_equal(np.nonzero(right[10] > 0.5)[0], np.arange(14, 24))  # moved 6 px left
    assert (label_right[10, 14:24] == 1).all() and (label_left[:5] == 0).all()


def test_dataset_items_and_cache(tmp_path):
    kwargs = dict(n_train=3, n_test=2, height=H, width=W, progress=False)
    train = SyntheticStereoDataset(tmp_path, "train", **kwargs)
    item = train[0]
    assert set(item) == {"left", "right", "disparity", "depth", "visible", "focal", "baseline"}
    for key in ("left", "right", "disparity", "depth", "visible"):
        assert item[key].shape == (1, H, W) and item[key].dtype == torch.float32, key
    assert 0 <= item["left"].min() and item["right"].max() <= 1
    again = SyntheticStereoDataset(tmp_path, "train", **kwargs)
    assert np.array_equal(again.left, train.left) and np.array_equal(
        again.planes, train.planes, equal_nan=True
    )
    test = SyntheticStereoDataset(tmp_path, "test", **kwargs)
    assert len(train) == 3 and len(test) == 2 and not np.array_equal(train.left[:2], test.left)
    assert len(list((tmp_path / "synthetic").glob("synthetic_stereo-*.npz"))) == 2


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="split"):
        SyntheticStereoDataset(None, "val", progress=False)
    with pytest.raises(ValueError, match="at least"):
        generate_synthetic_stereo(1, height=4, width=8, progress=False)
    with pytest.raises(ValueError, match="baseline"):
        generate_synthetic_stereo(1, baseline=0.0, progress=False)
