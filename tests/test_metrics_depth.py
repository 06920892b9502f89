"""Exp3's depth and disparity metrics (deepmi.metrics.depth) against hand-computed cases, their
pooling over batches, and the median training depth of the constant baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepmi.metrics.depth import (
    depth_error_sums,
    depth_metrics,
    depth_metrics_from_sums,
    disparity_metrics,
    split_depth_median,
)

# Three valid pixels and one without ground truth (depth 0), whose wild prediction must not count.
PRED = torch.tensor([[3.0, 1.0], [4.0, 100.0]])
TRUE = torch.tensor([[1.0, 1.0], [5.0, 0.0]])


def test_depth_metrics_on_a_hand_computed_case() -> None:
    # errors p - g = 2, 0, -1 over g = 1, 1, 5; ratios max(p/g, g/p) = 3, 1, 1.25
    got = {k: float(v) for k, v in depth_metrics(PRED, TRUE).items()}
    expected = {
        "mae_depth_m": (2 + 0 + 1) / 3,
        "abs_rel": (2 / 1 + 0 + 1 / 5) / 3,
        "sq_rel": (4 / 1 + 0 + 1 / 5) / 3,
        "rmse": math.sqrt((4 + 0 + 1) / 3),
        "rmse_log": math.sqrt((math.log(3) ** 2 + 0 + math.log(4 / 5) ** 2) / 3),
        "delta1": 1 / 3,  # 1.25 itself is not < 1.25: the threshold is strict, as in monodepth
        "delta2": 2 / 3,
        "delta3": 2 / 3,
    }
    assert got == pytest.approx(expected, rel=1e-12)


def test_disparity_metrics_on_a_hand_computed_case() -> None:
    pred = torch.tensor([10.0, 12.5, 20.0, 6.0, 7.0])
    true = torch.tensor([10.0, 11.0, 16.0, 5.0, 0.0])  # the last one unknown
    # errors 0, 1.5, 4, 1 (exactly 1 is not "bad 1": the threshold is strict)
    got = {k: float(v) for k, v in disparity_metrics(pred, true).items()}
    assert got == pytest.approx({"epe_px": 6.5 / 4, "bad1_pct": 50.0, "bad3_pct": 25.0}, rel=1e-12)


def test_an_explicit_mask_replaces_the_default_one() -> None:
    valid = torch.tensor([[True, False], [False, False]])
    got = depth_metrics(PRED, TRUE, valid)
    assert float(got["mae_depth_m"]) == 2.0 and float(got["delta3"]) == 0.0


def test_batches_pool_per_pixel_not_as_a_mean_of_batch_means() -> None:
    generator = torch.Generator().manual_seed(0)
    true = torch.rand(5, 1, 6, 7, generator=generator) * 10 + 1
    true[true > 9] = 0  # holes: batches have different numbers of valid pixels
    pred = true + torch.randn(true.shape, generator=generator).clamp(-0.5, 0.5)
    sums = [depth_error_sums(pred[s], true[s]) for s in (slice(0, 1), slice(1, 5))]
    pooled = depth_metrics_from_sums({k: sums[0][k] + sums[1][k] for k in sums[0]})
    whole = depth_metrics(pred, true)
    for key, value in whole.items():
        assert float(pooled[key]) == pytest.approx(float(value), rel=1e-12), key
    batch_means = (
        depth_metrics(pred[:1], true[:1])["mae_depth_m"] + depth_metrics(pred[1:], true[1:])["mae_depth_m"]
    ) / 2
    assert float(batch_means) != pytest.approx(float(whole["mae_depth_m"]), rel=1e-6)


def test_no_valid_pixel_gives_nan_and_bad_inputs_raise() -> None:
    assert all(math.isnan(float(v)) for v in depth_metrics(torch.ones(3), torch.zeros(3)).values())
    with pytest.raises(ValueError, match="same shape"):
        depth_metrics(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="clip"):
        depth_metrics(torch.tensor([0.0, 1.0]), torch.ones(2))
    with pytest.raises(ValueError, match="valid"):
        depth_metrics(torch.ones(3), torch.ones(3), torch.ones(2, dtype=torch.bool))


class _Items:
    """A dataset of depth maps (0 = no measurement)."""

    def __init__(self, maps: list[torch.Tensor]) -> None:
        self.maps = maps

    def __len__(self) -> int:
        return len(self.maps)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"depth": self.maps[index], "left": torch.zeros_like(self.maps[index])}


def test_split_median_reads_every_items_valid_depths() -> None:
    items = _Items([torch.tensor([[1.0, 0.0], [7.0, 2.0]]), torch.tensor([[0.0, 3.0], [9.0, float("inf")]])])
    assert split_depth_median(items) == 3.0  # median of 1, 7, 2, 3, 9
    # above max_values it keeps every k-th pixel of each item: k = ceil(8 / 4) = 2 -> 1, 7, 0, 9
    assert split_depth_median(items, max_values=4) == 7.0


def test_split_median_prefers_depth_values_and_rejects_splits_without_depth() -> None:
    class Crops(_Items):
        def depth_values(self) -> np.ndarray:
            return np.array([4.0, 5.0, 6.0, 0.0])

    assert split_depth_median(Crops([torch.ones(2, 2)])) == 5.0
    with pytest.raises(ValueError, match="no valid"):
        split_depth_median(_Items([torch.zeros(2, 2)]))
    with pytest.raises(ValueError, match="'depth'"):
        split_depth_median([{"left": torch.ones(2)}])
