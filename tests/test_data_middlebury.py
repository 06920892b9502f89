"""Middlebury 2014 Motorcycle (scikit-image's bundled pair): offline loading, calibration, the
disparity convention pinned by warping, downsampling, crops, and an Exp3 smoke run on it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from deepmi.data.errors import DatasetNotFoundError
from deepmi.data.middlebury import (
    BASELINE,
    DOFFS,
    FOCAL,
    MiddleburyMotorcycle,
    disparity_to_depth,
    downsample_pair,
    load_motorcycle,
)
from deepmi.metrics.depth import depth_metrics, disparity_metrics, split_depth_median
from deepmi.models.warp import warp_right_to_left
from experiments.runner.train import run
from tests.helpers import compose_config

SMOKE = ["debug=smoke", "logger=none", "trainer.enable_progress_bar=false"]


@pytest.fixture(scope="module")
def native() -> dict:
    try:
        return load_motorcycle(1)
    except DatasetNotFoundError as err:
        pytest.skip(f"scikit-image's stereo_motorcycle cannot be loaded offline here: {err}")


def _photometric_error(pair: dict, disparity: np.ndarray) -> float:
    """Mean |warp(right, disparity) - left| over the left pixels with ground truth."""
    left, right = (torch.from_numpy(np.array(pair[k]))[None, None] for k in ("left", "right"))
    warped = warp_right_to_left(right, torch.from_numpy(np.array(disparity, np.float32))[None, None])
    valid = torch.from_numpy(np.array(pair["disparity"]) > 0)[None, None]
    return float((warped - left).abs()[valid].mean())


def test_the_pair_loads_offline_with_middleburys_calibration(native: dict) -> None:
    assert native["left"].shape == native["right"].shape == native["disparity"].shape == (500, 741)
    assert native["left"].dtype == np.float32 and 0 <= native["left"].min() < native["left"].max() <= 1
    disparity = native["disparity"]
    known = disparity > 0
    assert 0.9 < known.mean() < 0.95  # skimage's inf (unknown) became 0
    assert 7.0 < disparity[known].min() < disparity[known].max() < 61.0
    assert (native["focal"], native["baseline"], native["doffs"]) == (FOCAL, BASELINE, DOFFS)
    depth = disparity_to_depth(disparity, FOCAL, BASELINE, DOFFS)
    assert (depth[~known] == 0).all()
    assert 2.0 < depth[known].min() < depth[known].max() < 5.1  # metres: a motorcycle in a workshop


def test_true_disparity_warps_the_right_view_onto_the_left(native: dict) -> None:
    """Pins the convention: left column u shows what the right view shows at u - d."""
    d = native["disparity"]
    err = _photometric_error(native, d)
    assert err < 0.35 * _photometric_error(native, np.zeros_like(d)), "true disparity: far better than none"
    assert err < 0.3 * _photometric_error(native, -d), "the sign of the shift"
    assert err < 0.8 * min(_photometric_error(native, d + 1), _photometric_error(native, d - 1)), "sub-pixel"


def test_half_resolution_halves_disparity_and_focal_and_keeps_depth(native: dict) -> None:
    half = load_motorcycle(2)
    assert half["left"].shape == (250, 370)
    assert (half["focal"], half["doffs"], half["baseline"]) == (FOCAL / 2, DOFFS / 2, BASELINE)
    known = half["disparity"] > 0
    assert known.mean() > 0.9
    # a downsampled pixel's disparity is the mean of its 2 x 2 native block, halved
    block = native["disparity"][100:102, 200:202]
    if (block > 0).all() and np.ptp(block) <= 1:
        assert half["disparity"][50, 100] == pytest.approx(block.mean() / 2, rel=1e-6)
    err = _photometric_error(half, half["disparity"])
    assert err < 0.35 * _photometric_error(half, np.zeros_like(half["disparity"]))
    depth_half = disparity_to_depth(half["disparity"], half["focal"], BASELINE, half["doffs"])
    depth_native = disparity_to_depth(native["disparity"], FOCAL, BASELINE, DOFFS)
    assert np.median(depth_half[known]) == pytest.approx(np.median(depth_native[depth_native > 0]), rel=0.01)


def test_downsampling_drops_blocks_across_depth_edges_or_mostly_unknown() -> None:
    image = np.arange(16, dtype=float).reshape(2, 8)
    inf = np.inf
    disparity = np.array(
        [
            [10.0, 10.5, 10.0, 14.0, 10.0, inf, 10.0, inf],
            [10.0, 10.5, 10.0, 10.0, inf, inf, 10.0, inf],
        ]
    )
    left, right, half = downsample_pair(image, image, disparity, 2)
    assert left.shape == half.shape == (1, 4)
    assert left[0, 0] == pytest.approx((0 + 1 + 8 + 9) / 4)
    assert half[0, 0] == pytest.approx(10.25 / 2)  # agreeing block: mean, halved
    assert half[0, 1] == inf  # spread of 4 native px: a depth edge inside
    assert half[0, 2] == inf  # 3 of 4 unknown
    assert half[0, 3] == pytest.approx(5.0)  # half known and agreeing: kept
    with pytest.raises(ValueError, match="downsample"):
        downsample_pair(image, image, disparity, 0)


def test_training_crops_are_full_width_and_reproducible_test_is_the_whole_view(native: dict) -> None:
    train = MiddleburyMotorcycle("train", downsample=4, crop_height=64, n_train=10, seed=3)
    test = MiddleburyMotorcycle("test", downsample=4, crop_height=64)
    assert len(train) == 10 and len(test) == 1
    item = train[7]
    assert item["left"].shape == item["right"].shape == item["depth"].shape == (1, 64, 185)
    top = int(item["top"])
    pair = load_motorcycle(4)
    assert torch.equal(item["left"][0], torch.from_numpy(pair["left"][top : top + 64]))
    assert torch.equal(item["disparity"], MiddleburyMotorcycle("train", 4, 64, 10, seed=3)[7]["disparity"])
    assert len({int(train[i]["top"]) for i in range(10)}) > 1
    whole = test[0]
    assert whole["left"].shape == (1, 125, 185) and int(whole["top"]) == 0
    valid = whole["valid"].bool()
    assert torch.equal(valid, whole["depth"] > 0)
    focal_baseline = float(whole["focal"] * whole["baseline"])
    expected = focal_baseline / (whole["disparity"][valid] + whole["doffs"])
    torch.testing.assert_close(whole["depth"][valid], expected, rtol=1e-5, atol=0)
    assert split_depth_median(train) == pytest.approx(float(whole["depth"][valid].median()), rel=1e-3)


def test_bad_arguments_say_what_is_allowed(native: dict) -> None:
    with pytest.raises(ValueError, match=r"crop_height=300 must lie in \[16, 250\]"):
        MiddleburyMotorcycle("train", downsample=2, crop_height=300)
    with pytest.raises(ValueError, match="split"):
        MiddleburyMotorcycle("val")


def test_a_scikit_image_that_cannot_load_the_pair_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import skimage.data

    def offline() -> None:
        raise OSError("no network to fetch motorcycle_left.png")

    monkeypatch.setattr(skimage.data, "stereo_motorcycle", offline, raising=False)
    load_motorcycle.cache_clear()
    try:
        with pytest.raises(DatasetNotFoundError, match="stereo_motorcycle"):
            MiddleburyMotorcycle("test", downsample=4)
    finally:
        load_motorcycle.cache_clear()


def test_exp3_smoke_run_on_middlebury(native: dict, tmp_path: Path, data_root: Path) -> None:
    """python run.py experiment=exp3_depth dataset=middlebury_motorcycle debug=smoke logger=none"""
    overrides = [*SMOKE, "experiment=exp3_depth", "dataset=middlebury_motorcycle"]
    cfg = compose_config(overrides, tmp_path, data_root)
    assert cfg.dataset.downsample == 4 and cfg.dataset.crop_height == 64  # the smoke patch applies
    metrics = run(cfg)["metrics"]
    assert json.loads((tmp_path / "metrics.json").read_text())["metrics"] == metrics
    names = ["mae_depth_m", "abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3"]
    names += ["epe_px", "bad1_pct", "bad3_pct"]
    for name in names:
        assert math.isfinite(metrics[f"test/{name}"]) and math.isfinite(metrics[f"test/baseline_{name}"]), (
            name
        )
    for name in ("bad1_pct", "bad3_pct", "baseline_bad1_pct"):
        assert 0 <= metrics[f"test/{name}"] <= 100

    # the baseline: one constant depth, the median of the training split's true depths
    train = MiddleburyMotorcycle("train", downsample=4, crop_height=64, n_train=16, seed=cfg.dataset.seed)
    median = split_depth_median(train)
    assert metrics["test/baseline_median_depth_m"] == pytest.approx(median, rel=1e-6)
    test = MiddleburyMotorcycle("test", downsample=4)[0]
    constant = torch.full_like(test["depth"], median)
    for name, value in depth_metrics(constant, test["depth"]).items():
        assert metrics[f"test/baseline_{name}"] == pytest.approx(float(value), rel=1e-5, abs=1e-6), name
    constant_disparity = float(test["focal"] * test["baseline"]) / median - float(test["doffs"])
    for name, value in disparity_metrics(
        torch.full_like(test["disparity"], constant_disparity), test["disparity"]
    ).items():
        assert metrics[f"test/baseline_{name}"] == pytest.approx(float(value), rel=1e-5, abs=1e-6), name
    assert (tmp_path / "disparity_panel.png").stat().st_size > 5000
    assert (tmp_path / "examples.png").exists()

    # The comparison figure (scripts/disparity_panel.py) rebuilds the run from its checkpoint and
    # predicts the very disparity the run was tested with: its EPE is the run's test/epe_px.
    from scripts.disparity_panel import main as disparity_panel
    from scripts.disparity_panel import predictions

    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    item, preds = predictions([("L1", checkpoint)], index=0)
    valid = item["disparity"][0] > 0
    epe = float((preds["L1"] - item["disparity"][0]).abs()[valid].mean())
    assert epe == pytest.approx(metrics["test/epe_px"], rel=1e-4)
    figure = tmp_path / "comparison.png"
    disparity_panel(["--ckpt", f"L1={checkpoint}", "--ckpt", f"L_LMI={checkpoint}", "--out", str(figure)])
    assert figure.stat().st_size > 10000
    with pytest.raises(SystemExit):  # a label without a path is refused before any work
        disparity_panel(["--ckpt", str(checkpoint), "--out", str(figure)])
