"""Exp3's Lightning module: depth with Middlebury's doffs, metrics pooled over test batches, the
median-training-depth baseline, disparity metrics only with disparity ground truth, the panel."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from deepmi.metrics.depth import depth_metrics, disparity_metrics, split_depth_median
from experiments.runner.train import run
from experiments.tasks.stereo_depth import StereoDepthModule, save_disparity_panel
from tests.helpers import compose_config

SMOKE = ["debug=smoke", "logger=none", "trainer.enable_progress_bar=false"]


class _Ramp(nn.Module):
    """Disparity (as a fraction of the width) growing along the rows: a fixed, known prediction."""

    def forward(self, left: torch.Tensor) -> torch.Tensor:
        rows = torch.linspace(0.05, 0.2, left.shape[-2]).view(1, 1, -1, 1)
        return rows.expand(left.shape[0], 1, left.shape[-2], left.shape[-1])


def _module() -> StereoDepthModule:
    return StereoDepthModule(_Ramp(), nn.L1Loss(), optimizer=lambda params: torch.optim.SGD(params, lr=0.1))


def _batch(seed: int, n: int, doffs: float | None) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    disparity = torch.rand(n, 1, 8, 20, generator=generator) * 6 + 1
    disparity[disparity > 6.5] = 0  # unknown
    focal, baseline = torch.full((n,), 30.0), torch.full((n,), 0.5)
    offset = 0.0 if doffs is None else doffs
    depth = torch.where(disparity > 0, 15.0 / (disparity + offset), torch.zeros_like(disparity))
    batch = {"left": torch.rand(n, 1, 8, 20, generator=generator), "right": torch.rand(n, 1, 8, 20)}
    batch.update(disparity=disparity, depth=depth, focal=focal, baseline=baseline)
    if doffs is not None:
        batch["doffs"] = torch.full((n,), doffs)
    return batch


def test_depth_uses_middleburys_doffs_when_the_batch_has_one() -> None:
    module = _module()
    batch = _batch(0, 2, doffs=4.0)
    disparity = module.disparity_px(batch["left"])
    torch.testing.assert_close(module.predicted_depth(batch), 15.0 / (disparity + 4.0))
    del batch["doffs"]
    torch.testing.assert_close(module.predicted_depth(batch), 15.0 / disparity)


def test_test_metrics_pool_every_pixel_of_every_batch() -> None:
    module = _module()
    module.baseline_depth_m = 3.0
    batches = [_batch(1, 1, doffs=2.0), _batch(2, 3, doffs=2.0)]
    for index, batch in enumerate(batches):
        module.test_step(batch, index)
    whole = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
    disparity = module.disparity_px(whole["left"])
    expected = depth_metrics(module.depth_from_disparity(whole, disparity), whole["depth"])
    expected |= disparity_metrics(disparity, whole["disparity"])
    got = module.depth_sums.compute() | module.disparity_sums.compute()
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert float(got[key]) == pytest.approx(float(value), rel=1e-9), key
    # the baseline: depth 3 m everywhere, i.e. disparity 15 / 3 - doffs = 3 px
    baseline = module.baseline_depth_sums.compute() | module.baseline_disparity_sums.compute()
    expected = depth_metrics(torch.full_like(whole["depth"], 3.0), whole["depth"])
    expected |= disparity_metrics(torch.full_like(whole["disparity"], 3.0), whole["disparity"])
    for key, value in expected.items():
        assert float(baseline[key]) == pytest.approx(float(value), rel=1e-9), key


def test_curve_metrics_equal_the_pooled_test_metrics() -> None:
    module = _module()
    batches = [_batch(1, 1, doffs=2.0), _batch(2, 3, doffs=2.0)]
    curve = module.curve_metrics(batches)
    for index, batch in enumerate(batches):
        module.test_step(batch, index)
    pooled = module.depth_sums.compute() | module.disparity_sums.compute()
    assert set(curve) == {"mae_depth_m", "abs_rel", "rmse", "epe_px", "bad1_pct", "bad3_pct"}
    for key, value in curve.items():
        assert value == pytest.approx(float(pooled[key]), rel=1e-9), key
    without = [{k: v for k, v in b.items() if k != "disparity"} for b in batches]
    assert set(module.curve_metrics(without)) == {"mae_depth_m", "abs_rel", "rmse"}


def test_a_run_with_a_curve_ends_on_its_test_metrics(tmp_path: Path, data_root: Path) -> None:
    overrides = [*SMOKE, "experiment=exp3_depth", "trainer.max_epochs=2", "curve_every_n_epochs=1"]
    metrics = run(compose_config(overrides, tmp_path, data_root))["metrics"]
    rows = list(csv.DictReader((tmp_path / "curve.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    for name in ("mae_depth_m", "epe_px", "bad3_pct"):
        assert float(rows[-1][name]) == pytest.approx(metrics[f"test/{name}"], rel=1e-5), name


def test_without_disparity_ground_truth_only_depth_metrics_accumulate() -> None:
    module = _module()
    batch = _batch(3, 2, doffs=None)
    del batch["disparity"]  # like the KITTI loader: sparse LiDAR depth only
    module.test_step(batch, 0)
    assert module.depth_sums.update_called and not module.disparity_sums.update_called
    assert module.disparity_example is None


def test_the_baseline_median_comes_from_the_training_split(tmp_path: Path, data_root: Path) -> None:
    cfg = compose_config([*SMOKE, "experiment=exp3_depth", "dataset=synthetic_stereo"], tmp_path, data_root)
    metrics = run(cfg)["metrics"]
    factory = instantiate(cfg.dataset)
    train_median = split_depth_median(factory(split="train"))
    test_median = split_depth_median(factory(split="test"))
    assert train_median != pytest.approx(test_median, rel=1e-4)  # so the check below can tell them apart
    assert metrics["test/baseline_median_depth_m"] == pytest.approx(train_median, rel=1e-6)
    for name in ("mae_depth_m", "abs_rel", "delta1", "epe_px", "bad3_pct"):
        assert f"test/{name}" in metrics and f"test/baseline_{name}" in metrics
    assert (tmp_path / "disparity_panel.png").exists()


def test_disparity_panel_marks_unknown_pixels(tmp_path: Path) -> None:
    truth = torch.full((12, 30), 5.0)
    truth[:, :4] = 0
    path = save_disparity_panel(tmp_path / "p.png", torch.rand(1, 12, 30), truth, truth + 0.5, title="t")
    assert path.stat().st_size > 2000
    empty = save_disparity_panel(tmp_path / "q.png", torch.rand(12, 30), torch.zeros(12, 30), truth)
    assert empty.exists()
