"""Exp2's learning curve: IoU of {M_s < t} per threshold, pooled over all test pixels like the test."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torchmetrics.classification import BinaryJaccardIndex

from experiments.runner.train import run
from experiments.tasks.mask_prediction import THRESHOLDS, MaskPredictionModule, dissimilar_region
from tests.helpers import compose_config


class _SourceAsMask(nn.Module):
    """The mask is the source image's first channel: a fixed, known prediction."""

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        return pair[:, :1]


def _module() -> MaskPredictionModule:
    return MaskPredictionModule(
        _SourceAsMask(), nn.L1Loss(), optimizer=lambda params: torch.optim.SGD(params, lr=0.1)
    )


def _batch(seed: int, n: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    source = torch.rand(n, 1, 6, 10, generator=generator) * 0.6  # spans every threshold
    mask = (torch.rand(n, 1, 6, 10, generator=generator) < 0.3).float()
    return {"source": source, "target": source * (1 - mask), "mask": mask}


def test_curve_iou_by_hand() -> None:
    # 4 pixels: mask values 0.01, 0.3, 0.45, 0.9; the true dissimilar pixels are the first two
    source = torch.tensor([0.01, 0.3, 0.45, 0.9]).view(1, 1, 2, 2)
    batch = {"source": source, "target": source, "mask": torch.tensor([1.0, 1, 0, 0]).view(1, 1, 2, 2)}
    curve = _module().curve_metrics([batch])
    # t = 0.05, 0.10, 0.20: called {0} -> 1/2; t = 0.40: {0, 1} -> 2/2; t = 0.50: {0, 1, 2} -> 2/3
    expected = {"iou_0.05": 0.5, "iou_0.10": 0.5, "iou_0.20": 0.5, "iou_0.40": 1.0, "iou_0.50": 2 / 3}
    assert curve == pytest.approx(expected)


def test_curve_equals_torchmetrics_iou_accumulated_over_batches() -> None:
    batches = [_batch(1, 2), _batch(2, 3)]
    curve = _module().curve_metrics(batches)
    for threshold in THRESHOLDS:
        reference = BinaryJaccardIndex()
        for batch in batches:
            called = dissimilar_region(batch["source"], threshold)
            reference.update(called.long(), (batch["mask"] > 0.5).long())
        assert curve[f"iou_{threshold:.2f}"] == pytest.approx(float(reference.compute()), rel=1e-6)


def test_curve_of_an_empty_union_is_zero_like_torchmetrics() -> None:
    source = torch.ones(1, 1, 2, 2)  # nothing called dissimilar at any threshold, nothing truly so
    batch = {"source": source, "target": source, "mask": torch.zeros(1, 1, 2, 2)}
    assert set(_module().curve_metrics([batch]).values()) == {0.0}


def test_a_run_with_a_curve_ends_on_its_test_metrics(tmp_path: Path, data_root: Path) -> None:
    smoke = ["debug=smoke", "logger=none", "trainer.enable_progress_bar=false"]
    overrides = [*smoke, "experiment=exp2_mask", "trainer.max_epochs=2", "curve_every_n_epochs=1"]
    metrics = run(compose_config(overrides, tmp_path, data_root))["metrics"]
    rows = list(csv.DictReader((tmp_path / "curve.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    for threshold in THRESHOLDS:
        name = f"iou_{threshold:.2f}"
        assert float(rows[-1][name]) == pytest.approx(metrics[f"test/{name}"], abs=1e-6), name


def test_mask_value_summary_traces_false_positives_to_black_source_pixels() -> None:
    from scripts.exp2_mask_values import iou_markdown, mask_value_summary, to_markdown

    # 2x2 image: the rectangle is pixel 0; outside, pixel 1 is black and gets M = 0.3
    source = torch.tensor([0.5, 0.0, 0.6, 0.8]).view(1, 2, 2)
    item = {"source": source, "target": source, "mask": torch.tensor([1.0, 0, 0, 0]).view(1, 2, 2)}
    mask = torch.tensor([0.0, 0.3, 0.9, 0.95]).view(1, 1, 2, 2)
    summary = mask_value_summary(lambda s, t: mask, [item])
    assert summary["dark_share_outside"] == pytest.approx(1 / 3)
    assert summary["fp_share_0.20"] == 0 and summary["fp_share_0.40"] == pytest.approx(1 / 3)
    assert summary["fp_dark_share_0.40"] == 1.0 and math.isnan(summary["fp_dark_share_0.20"])
    assert summary["tp_share_0.05"] == 1.0
    row = "| lmi | 0.00% | 0.00% | 0.00% | 33.33% (100%) | 33.33% (100%) | 100.00% |"
    assert row in to_markdown({"lmi": summary})
    # identifiable pixels 0, 2, 3: the black pixel 1 counts neither as a hit nor as a miss
    assert [summary[f"iou_lit_{t:.2f}"] for t in THRESHOLDS] == [1.0] * len(THRESHOLDS)
    assert "| lmi | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |" in iou_markdown({"lmi": summary})
    # a lit false positive: pixel 3 at M = 0.45 is called dissimilar from t = 0.5 on
    mask = torch.tensor([0.0, 0.3, 0.9, 0.45]).view(1, 1, 2, 2)
    summary = mask_value_summary(lambda s, t: mask, [item])
    assert summary["iou_lit_0.40"] == 1.0 and summary["iou_lit_0.50"] == pytest.approx(1 / 2)
