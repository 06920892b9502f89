"""The MIGE toy experiment (Fig. 1) in its tiny configuration: files, columns, and MIGE's accuracy."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from matplotlib.image import imread

from experiments.tasks.mige_toy import CSV_COLUMNS, ESTIMATORS, TINY_CONFIG, MIGEToyTask


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mige_toy")
    summary = MIGEToyTask(**TINY_CONFIG).run(out)
    return out, summary


def test_csv_has_one_row_per_d_rho_estimator(toy_run):
    out, _ = toy_run
    with open(out / "mige_toy.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == CSV_COLUMNS
        rows = list(reader)
    keys = {(int(r["d"]), float(r["rho"]), r["estimator"]) for r in rows}
    assert len(rows) == len(keys) == len(TINY_CONFIG["dims"]) * len(TINY_CONFIG["rhos"]) * len(ESTIMATORS)
    for r in rows:
        d, rho = int(r["d"]), float(r["rho"])
        assert float(r["true_mi"]) == pytest.approx(-d / 2 * math.log(1 - rho**2))
        assert float(r["true_grad"]) == pytest.approx(rho * d / (1 - rho**2))
        assert math.isfinite(float(r["grad"]))
        assert math.isnan(float(r["mi"])) == (r["estimator"] == "mige")


def test_png_is_a_valid_figure(toy_run):
    out, _ = toy_run
    image = imread(out / "mige_toy.png")
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 200
    assert np.std(image[..., :3]) > 0.05  # not a blank canvas


def test_summary_and_mige_gradient_error(toy_run):
    _, summary = toy_run
    for estimator in ESTIMATORS:
        assert f"grad_rmse/{estimator}/d5" in summary
    assert "mi_rmse/mine/d5" in summary and "mi_rmse/mige/d5" not in summary
    # 256 samples, rho in {+-0.2, +-0.6} (true gradients up to 4.7): measured RMSE ~0.16
    assert summary["grad_rmse/mige/d5"] < 0.6


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="rho"):
        MIGEToyTask(rhos=[0.5, 1.0])
    with pytest.raises(ValueError, match="dims"):
        MIGEToyTask(dims=[])
