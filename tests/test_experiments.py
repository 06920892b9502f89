"""Every experiment file runs at smoke scale and writes the metrics its paper table needs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from deepmi.data.errors import DatasetNotFoundError
from deepmi.data.fixtures import write_kitti_raw_fixture
from experiments import CONFIG_DIR
from experiments.runner.train import run
from tests.helpers import compose_config

SMOKE = ["debug=smoke", "logger=none", "trainer.enable_progress_bar=false"]

EXPECTED = {
    "exp1_bar": ["test/mae_tx", "test/mae_theta"],
    "exp2_mask": [f"test/iou_{t}" for t in ("0.05", "0.10", "0.20", "0.40", "0.50")],
    "exp3_depth": ["test/mae_depth_m"],
    "mige_toy": ["grad_rmse/mige/d5", "grad_rmse/mine/d5", "grad_rmse/mine_f/d5"],
    "dim_cifar10": ["test/acc_conv", "test/acc_fc", "test/acc_y"],
    "dim_cifar100": ["test/acc_conv", "test/acc_fc", "test/acc_y"],
    "ib_mnist": ["test/error_pct"],
}
# the loss each smoke run uses: the experiment's default, or one with more moving parts
LOSS = {"dim_cifar10": ["loss=jsd_pm"], "dim_cifar100": ["loss=mige"], "ib_mnist": ["loss=mine_ib"]}


def test_every_experiment_file_is_covered() -> None:
    assert sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("experiment", sorted(EXPECTED))
def test_experiment_smoke_run(experiment: str, tmp_path: Path, data_root: Path) -> None:
    overrides = [*SMOKE, f"experiment={experiment}", *LOSS.get(experiment, [])]
    record = run(compose_config(overrides, tmp_path, data_root))
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["experiment"] == experiment == record["experiment"]
    for key in EXPECTED[experiment]:
        assert math.isfinite(written["metrics"][key]), key
    if experiment.startswith("exp"):
        assert (tmp_path / "examples.png").stat().st_size > 1000
    if experiment.startswith(("dim", "ib")):
        metric = EXPECTED[experiment][0]
        assert 0 <= written["metrics"][metric] <= 100, "accuracies and error rates are percentages"


def test_exp3_on_a_kitti_raw_drive_written_in_kittis_layout(tmp_path: Path, data_root: Path) -> None:
    base = write_kitti_raw_fixture(tmp_path / "kitti", n_frames=3, size=(32, 96))
    overrides = [
        *SMOKE, "experiment=exp3_depth", "dataset=kitti_raw", f"dataset.base_dir={base}",
        "dataset.height=32", "dataset.width=96", "dataset_module.batch_size=2",
    ]  # fmt: skip
    metrics = run(compose_config(overrides, tmp_path / "run", data_root))["metrics"]
    assert 0 < metrics["test/mae_depth_m"] < 80


def test_missing_kitti_says_what_to_download(tmp_path: Path, data_root: Path) -> None:
    missing = f"dataset.base_dir={tmp_path / 'none'}"
    overrides = [*SMOKE, "experiment=exp3_depth", "dataset=kitti_raw", missing]
    with pytest.raises(DatasetNotFoundError, match="raw_data"):
        run(compose_config(overrides, tmp_path / "run", data_root))


def test_missing_cifar_at_paper_scale_says_how_to_get_it(tmp_path: Path, data_root: Path) -> None:
    overrides = ["logger=none", "experiment=dim_cifar10", f"dataset.root={tmp_path / 'empty'}"]
    with pytest.raises(DatasetNotFoundError, match="cifar"):
        run(compose_config(overrides, tmp_path / "run", data_root))


@pytest.mark.parametrize(
    ("experiment", "loss", "valid"),
    [("dim_cifar10", "lmi", "infonce"), ("ib_mnist", "jsd", "mige_ib"), ("exp2_mask", "vib", "ssim")],
)
def test_a_loss_that_does_not_fit_names_the_ones_that_do(
    experiment: str, loss: str, valid: str, tmp_path: Path, data_root: Path
) -> None:
    cfg = compose_config([*SMOKE, f"experiment={experiment}", f"loss={loss}"], tmp_path, data_root)
    with pytest.raises(ValueError, match=f"(?s)does not fit experiment '{experiment}'.*{valid}"):
        run(cfg)


def test_exp3_lowers_the_learning_rate_for_l1_and_l2_only(tmp_path: Path, data_root: Path) -> None:
    def lr(loss: str) -> float:
        return compose_config(
            ["experiment=exp3_depth", f"loss={loss}"], tmp_path, data_root
        ).module.optimizer.lr

    assert {loss: lr(loss) for loss in ("l1", "l2", "lmi")} == {"l1": 1e-5, "l2": 1e-5, "lmi": 1e-3}
