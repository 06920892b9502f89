"""The Hydra + Lightning runner: composition, errors, metrics.json, resume, the CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import MissingConfigException

from experiments.reporting.tables import IMAGE_LOSSES
from experiments.runner.train import run
from tests.conftest import REPO_ROOT
from tests.helpers import compose_config

SMOKE = ["debug=smoke", "logger=none", "trainer.enable_progress_bar=false"]


@pytest.mark.parametrize("loss", IMAGE_LOSSES)
def test_exp1_smoke_writes_metrics_for_every_table1_loss(loss: str, tmp_path: Path, data_root: Path) -> None:
    cfg = compose_config([*SMOKE, "experiment=exp1_bar", f"loss={loss}"], tmp_path, data_root)
    record = run(cfg)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["experiment"] == "exp1_bar" and written["loss"] == loss
    assert written["metrics"] == record["metrics"]
    for key in ("test/mae_tx", "test/mae_theta"):
        assert math.isfinite(written["metrics"][key]) and written["metrics"][key] >= 0
    assert written["config"]["loss"]["name"] == loss
    assert written["environment"]["torch"]


def test_unknown_option_lists_the_valid_ones(tmp_path: Path, data_root: Path) -> None:
    with pytest.raises(MissingConfigException, match="(?s)Available options.*lmi"):
        compose_config(["loss=nope"], tmp_path, data_root)


def test_bins_below_two_is_a_clear_error(tmp_path: Path, data_root: Path) -> None:
    cfg = compose_config([*SMOKE, "loss=lmi", "loss.bins=1"], tmp_path, data_root)
    with pytest.raises(ValueError, match="bins"):
        run(cfg)


def test_resume_from_last_checkpoint_gives_the_same_result(tmp_path: Path, data_root: Path) -> None:
    straight = compose_config([*SMOKE, "loss=lmi", "trainer.max_epochs=2"], tmp_path / "a", data_root)
    expected = run(straight)["metrics"]

    interrupted = [*SMOKE, "loss=lmi", "trainer.max_epochs=2", "test=false"]
    stop = ["+callbacks.stop._target_=tests.helpers.StopAfterEpochs", "+callbacks.stop.epochs=1"]
    run(compose_config([*interrupted, *stop], tmp_path / "b", data_root))
    steps = {run: torch.load(tmp_path / run / "checkpoints" / "last.ckpt")["global_step"] for run in "ab"}
    assert steps["b"] * 2 == steps["a"] > 0, f"the interrupted run should stop after epoch 1: {steps}"
    resumed = compose_config(
        [*SMOKE, "loss=lmi", "trainer.max_epochs=2", "ckpt_path=last"], tmp_path / "b", data_root
    )
    assert run(resumed)["metrics"] == expected


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEEPMI_DATA": str(tmp_path / "data"), "WANDB_MODE": "offline"}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "run.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_single_run_with_wandb_offline(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _cli(["debug=smoke", "loss=l1", f"hydra.run.dir={out}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "metrics.json").read_text())
    assert record["loss"] == "l1"
    assert list((out / "wandb").glob("offline-run-*")), "wandb offline run folder missing"
    assert (out / "checkpoints" / "last.ckpt").exists()


def test_cli_multirun_gives_each_job_its_own_folder(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = _cli(
        ["-m", "debug=smoke", "logger=csv", "loss=lmi", "loss.bins=3,25", f"hydra.sweep.dir={sweep}"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    assert sorted(r["bins"] for r in records) == [3, 25]
    assert len({r["config"]["paths"]["output_dir"] for r in records}) == 2


def test_cli_loss_that_does_not_fit_says_which_would(tmp_path: Path) -> None:
    proc = _cli(["debug=smoke", "logger=none", "loss=jsd", f"hydra.run.dir={tmp_path / 'x'}"], tmp_path)
    assert proc.returncode != 0
    assert "does not fit experiment 'exp1_bar'" in proc.stderr
    assert "lmi" in proc.stderr


def test_cli_sweep_through_the_submitit_launcher(tmp_path: Path) -> None:
    """The SLURM path's launcher, run locally (submitit's local executor)."""
    sweep = tmp_path / "sweep"
    proc = _cli(
        ["-m", "hydra/launcher=submitit_local", *SMOKE, "loss=l2", f"hydra.sweep.dir={sweep}"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [json.loads(p.read_text())["loss"] for p in sweep.glob("*/metrics.json")] == ["l2"]


def test_slurm_preset_composes(tmp_path: Path, data_root: Path) -> None:
    from hydra import compose, initialize_config_dir

    from experiments import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm_gpu"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.gpus_per_node == 1


def test_readme_main_job_learns_well_below_the_trivial_baseline(tmp_path: Path, data_root: Path) -> None:
    """`python run.py debug=quick` (the README's main job) must show a network that learns."""
    metrics = run(
        compose_config(
            ["debug=quick", "logger=none", "trainer.enable_progress_bar=false"], tmp_path, data_root
        )
    )["metrics"]
    assert metrics["test/mae_tx"] < 0.25 * metrics["test/baseline_mae_tx"], metrics
    assert metrics["test/mae_theta"] < 0.6 * metrics["test/baseline_mae_theta"], metrics


def test_debug_scales_never_run_an_experiment_silently_at_paper_size(tmp_path: Path, data_root: Path) -> None:
    from experiments import CONFIG_DIR
    from experiments.runner.config_checks import check_config

    experiments = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
    for debug in sorted(p.stem for p in (CONFIG_DIR / "debug").glob("*.yaml")):
        for experiment in experiments:
            paper = compose_config([f"experiment={experiment}", "logger=none"], tmp_path, data_root)
            # composed last: check_config reads the debug choice from the current Hydra config
            cfg = compose_config(
                [f"debug={debug}", f"experiment={experiment}", "logger=none"], tmp_path, data_root
            )
            try:
                check_config(cfg)
            except ValueError as error:
                assert f"debug={debug} has no patch for experiment '{experiment}'" in str(error)
                continue
            shrunk = (
                cfg.get("dataset") != paper.get("dataset")
                or cfg.trainer.max_epochs < paper.trainer.max_epochs
            )
            assert shrunk or cfg.get("module") != paper.get("module"), (debug, experiment)


def test_model_dataset_patches_apply_to_their_pair_only(tmp_path: Path, data_root: Path) -> None:
    """model_dataset/<model>_<dataset>.yaml patches that model on that dataset, and nothing else."""
    from experiments import CONFIG_DIR

    models = {p.stem for p in (CONFIG_DIR / "model").glob("*.yaml")}
    datasets = {p.stem for p in (CONFIG_DIR / "dataset").glob("*.yaml")}
    pairs = {f"{m}_{d}" for m in models for d in datasets}
    # the group is optional in the defaults list: a misspelt file name would never apply, silently
    for patch in (CONFIG_DIR / "model_dataset").glob("*.yaml"):
        assert patch.stem in pairs, f"{patch.name} names no <model>_<dataset> pair"

    def max_disparity(*overrides: str) -> float:
        return compose_config(
            ["experiment=exp3_depth", "logger=none", *overrides], tmp_path, data_root
        ).model.max_disparity

    # Middlebury 2014 calib.txt of Motorcycle: ndisp = 270 at width 2964
    assert max_disparity("dataset=middlebury_motorcycle") == pytest.approx(270 / 2964, abs=1e-4)
    assert max_disparity("dataset=middlebury_motorcycle", "debug=cpu") == pytest.approx(270 / 2964, abs=1e-4)
    assert max_disparity("dataset=middlebury_motorcycle", "model.max_disparity=0.3") == 0.3
    assert max_disparity("dataset=kitti_raw") == 0.3
