"""Exp1 bar data: exact source raster, target geometry re-derived from image moments, caching."""

import json
import math
import time

import numpy as np
import pytest
import torch

from deepmi.data.bar import BarAlignmentDataset, bar_bounds, generate_bar_pairs, render_bars

SMALL = dict(height=32, width=96, bar_height=6, bar_width=15, max_tx=20.0, max_theta=40.0)


def test_source_is_exact_centred_bar_at_paper_size():
    source = generate_bar_pairs(0, progress=False)["source"]
    assert source.shape == (192, 640) and source.dtype == np.uint8
    assert set(np.unique(source)) == {0, 255}
    rows, cols = np.nonzero(source)
    assert len(rows) == 50 * 125
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (71, 120, 258, 382)
    assert bar_bounds(192, 640, 50, 125) == (257.5, 382.5, 70.5, 120.5)


def _moments(image):
    rows, cols = np.nonzero(image)
    x, y = cols.astype(float), rows.astype(float)
    cov = np.cov(np.stack([x, y]))
    major = np.linalg.eigh(cov)[1][:, -1]
    # Orientation as displayed (y up): counter-clockwise angle of the long axis, modulo 180.
    angle = math.degrees(math.atan2(-major[1], major[0]))
    return len(x), x.mean(), y.mean(), (angle + 90) % 180 - 90


def test_targets_follow_the_documented_motion():
    pairs = generate_bar_pairs(12, seed=3, progress=False)
    cx, cy = (640 - 1) / 2, (192 - 1) / 2
    bx, by = 320.0, 95.5  # bar centre (snapped 0.5 px right of the image centre)
    assert np.all(np.abs(pairs["tx"]) <= 100) and np.all(np.abs(pairs["theta"]) <= 40)
    for target, tx, theta in zip(pairs["target"], pairs["tx"], pairs["theta"], strict=True):
        area, mx, my, angle = _moments(target)
        t = math.radians(theta)
        # q = R(theta)(p - c) + c + (tx, 0), R = [[cos, sin], [-sin, cos]] in y-down pixels.
        ex = math.cos(t) * (bx - cx) + math.sin(t) * (by - cy) + cx + tx
        ey = -math.sin(t) * (bx - cx) + math.cos(t) * (by - cy) + cy
        assert abs(area - 6250) < 0.02 * 6250
        assert abs(mx - ex) < 0.3 and abs(my - ey) < 0.3
        assert abs(angle - theta) < 0.5


def test_parameters_are_uniform_over_the_paper_ranges():
    pairs = generate_bar_pairs(400, height=8 * 24, width=640, progress=False)
    assert pairs["tx"].min() < -90 and pairs["tx"].max() > 90
    assert pairs["theta"].min() < -36 and pairs["theta"].max() > 36
    assert abs(pairs["tx"].mean()) < 10 and abs(pairs["theta"].mean()) < 4


def test_render_bars_is_binary_and_identity_at_zero():
    zero = render_bars(
        np.zeros(1), np.zeros(1), **{k: SMALL[k] for k in ("height", "width", "bar_height", "bar_width")}
    )
    assert zero.sum() == 6 * 15 and set(np.unique(zero)) == {0, 1}


def test_dataset_items_cache_and_determinism(tmp_path):
    train = BarAlignmentDataset(tmp_path, "train", n_train=8, n_test=4, progress=False, **SMALL)
    test = BarAlignmentDataset(tmp_path, "test", n_train=8, n_test=4, progress=False, **SMALL)
    assert len(train) == 8 and len(test) == 4
    item = train[0]
    assert set(item) == {"source", "target", "tx", "theta"}
    assert item["source"].shape == item["target"].shape == (1, 32, 96)
    assert (
        item["source"].dtype == torch.float32 and item["tx"].dtype == torch.float32 and item["tx"].dim() == 0
    )
    assert item["target"].min() == 0 and item["target"].max() == 1
    assert not torch.equal(train.tx[:4], test.tx)  # disjoint random streams per split
    files = sorted(p.name for p in (tmp_path / "synthetic").iterdir())
    assert len(files) == 4 and sum(f.endswith(".json") for f in files) == 2
    meta = json.loads(next((tmp_path / "synthetic").glob("*.json")).read_text())
    assert meta["params"]["max_tx"] == 20.0
    # Reload from cache: identical; a changed parameter writes a new cache instead of reusing.
    again = BarAlignmentDataset(tmp_path, "train", n_train=8, n_test=4, progress=False, **SMALL)
    assert torch.equal(again.tx, train.tx) and np.array_equal(again.target, train.target)
    BarAlignmentDataset(tmp_path, "train", n_train=8, progress=False, **{**SMALL, "max_theta": 10.0})
    assert len(list((tmp_path / "synthetic").glob("*.npz"))) == 3
    memory = BarAlignmentDataset(None, "train", n_train=8, progress=False, **SMALL)
    assert torch.equal(memory.theta, train.theta)


def test_sample_i_does_not_depend_on_n():
    few = generate_bar_pairs(3, progress=False, **SMALL)
    many = generate_bar_pairs(6, progress=False, **SMALL)
    assert np.array_equal(few["tx"], many["tx"][:3]) and np.array_equal(few["target"], many["target"][:3])


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="split"):
        BarAlignmentDataset(None, "val", progress=False, **SMALL)
    with pytest.raises(ValueError, match="leaves the"):
        generate_bar_pairs(1, height=32, width=96, progress=False)
    with pytest.raises(ValueError, match="max_theta"):
        generate_bar_pairs(1, max_theta=120.0, progress=False)


@pytest.mark.slow
def test_paper_size_generation_is_fast():
    start = time.perf_counter()
    pairs = generate_bar_pairs(1500, progress=False)
    assert time.perf_counter() - start < 30
    assert pairs["target"].shape == (1500, 192, 640)


def test_preview_draws_one_row_per_sample_with_its_parameters(tmp_path):
    import matplotlib.image

    from deepmi.data.preview import save_grid, save_preview

    dataset = BarAlignmentDataset(tmp_path, "test", n_train=4, n_test=3, progress=False, **SMALL)
    path = save_preview(dataset, tmp_path / "preview.png", n=2)
    height, width = matplotlib.image.imread(path).shape[:2]
    assert height > width * 0.5, "two rows of two panels"
    columns = {"image": torch.rand(2, 1, 8, 12), "pred_depth": torch.rand(2, 1, 8, 12) * 80}
    assert save_grid(tmp_path / "grid.png", columns, title="t").stat().st_size > 1000
    with pytest.raises(ValueError, match="Nothing to preview"):
        save_preview(dataset, tmp_path / "x.png", indices=[])
