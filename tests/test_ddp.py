"""Lightning DDP on 2 CPU processes (gloo): runs, writes one record, and its test metrics equal a
single-process evaluation of its final weights (every test item counted exactly once)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.tasks.base import TaskModule
from tests.conftest import REPO_ROOT

SMOKE = ["debug=smoke", "logger=none", "trainer.enable_progress_bar=false"]
FAMILIES = {  # one experiment per module family: image task, DIM, IB
    "image": ["experiment=exp1_bar", "loss=lmi"],
    "dim": ["experiment=dim_cifar10", "loss=infonce"],
    "ib": ["experiment=ib_mnist", "loss=vib"],
}


def _run(args: list[str], cwd: Path, expected_code: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEEPMI_DATA": str(cwd / "data"), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "run.py"), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == expected_code, proc.stdout[-2000:] + proc.stderr[-12000:]
    return proc


@pytest.mark.parametrize("family", list(FAMILIES))
def test_cpu_ddp_run_equals_a_single_process_evaluation_of_its_weights(family: str, tmp_path: Path) -> None:
    overrides = [*SMOKE, *FAMILIES[family]]
    ddp_dir = tmp_path / "ddp"
    _run([*overrides, "trainer=ddp_cpu", "trainer.max_epochs=2", f"hydra.run.dir={ddp_dir}"], tmp_path)
    ddp = json.loads((ddp_dir / "metrics.json").read_text())
    assert ddp["status"] == "finished" and ddp["config"]["trainer"]["devices"] == 2
    assert sorted(p.name for p in ddp_dir.glob("metrics.json*")) == ["metrics.json"]  # rank 0 alone wrote

    ckpt = ddp_dir / "checkpoints" / "last.ckpt"
    one_dir = tmp_path / "one"
    _run([*overrides, "train=false", f"ckpt_path={ckpt}", f"hydra.run.dir={one_dir}"], tmp_path)
    single = json.loads((one_dir / "evaluation.json").read_text())  # an evaluation never writes metrics.json
    assert not (one_dir / "metrics.json").exists()
    assert single["status"] == "evaluated" and "strategy" not in single["config"]["trainer"]
    test_metrics = {k: v for k, v in ddp["metrics"].items() if k.startswith("test/")}
    assert test_metrics and test_metrics.keys() == {k for k in single["metrics"] if k.startswith("test/")}
    for key, value in test_metrics.items():
        assert math.isclose(value, single["metrics"][key], rel_tol=1e-5, abs_tol=1e-6), (key, value, single)


def test_cpu_ddp_resumes_on_every_rank_from_rank_0s_epoch_checkpoint(tmp_path: Path) -> None:
    ddp = [*SMOKE, *FAMILIES["image"], "trainer=ddp_cpu", "trainer.max_epochs=2"]
    _run([*ddp, f"hydra.run.dir={tmp_path / 'straight'}"], tmp_path)
    stop = ["+callbacks.stop._target_=tests.helpers.StopAfterEpochs", "+callbacks.stop.epochs=1"]
    _run([*ddp, *stop, f"hydra.run.dir={tmp_path / 'cut'}"], tmp_path, expected_code=4)  # stopped: exit 4
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["status"] == "stopped"
    _run([*ddp, "ckpt_path=last", f"hydra.run.dir={tmp_path / 'cut'}"], tmp_path)
    straight, resumed = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("straight", "cut"))
    assert resumed["status"] == "finished" and resumed["metrics"] == straight["metrics"]


def test_ddp_with_sync_batchnorm_on_cpu_names_the_fix(tmp_path: Path) -> None:
    from experiments.runner.train import run
    from tests.helpers import compose_config

    cfg = compose_config([*SMOKE, "trainer=ddp", "trainer.accelerator=cpu"], tmp_path, tmp_path / "data")
    with pytest.raises(ValueError, match="trainer=ddp_cpu"):
        run(cfg)


def test_a_checkpoint_reloads_in_a_notebook_and_evaluates_like_the_run(
    tmp_path: Path, data_root: Path
) -> None:
    import torch

    from experiments.runner.train import run
    from experiments.tasks.bar_alignment import BarAlignmentModule
    from tests.helpers import compose_config

    record = run(compose_config([*SMOKE, "loss=l1"], tmp_path / "run", data_root))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    module = BarAlignmentModule.load_from_checkpoint(ckpt)
    assert isinstance(module, TaskModule) and not module.training
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    assert all(torch.equal(module.state_dict()[k], v) for k, v in state.items())
    evaluated = run(
        compose_config([*SMOKE, "loss=l1", "train=false", f"ckpt_path={ckpt}"], tmp_path / "ev", data_root)
    )
    assert evaluated["status"] == "evaluated"
    assert evaluated["metrics"] == record["metrics"]
    from experiments.tasks.bottleneck import BottleneckModule

    with pytest.raises(TypeError, match="holds a BarAlignmentModule"):
        BottleneckModule.load_from_checkpoint(ckpt)
    with pytest.raises(ValueError, match="train=false evaluates a checkpoint"):
        run(compose_config([*SMOKE, "train=false", "ckpt_path=nope.ckpt"], tmp_path / "x", data_root))


def test_predict_depth_from_image_files_with_an_exp3_checkpoint(tmp_path: Path, data_root: Path) -> None:
    import imageio.v3 as iio
    import numpy as np

    from experiments.runner.train import run
    from scripts.predict_depth import main as predict_depth
    from tests.helpers import compose_config

    run(compose_config([*SMOKE, "experiment=exp3_depth", "loss=l1"], tmp_path / "run", data_root))
    rng = np.random.default_rng(0)
    left = (rng.random((60, 90, 3)) * 255).astype(np.uint8)  # another size than the model's
    iio.imwrite(tmp_path / "left.png", left)
    iio.imwrite(tmp_path / "right.png", np.roll(left, -3, axis=1))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    out = predict_depth([str(ckpt), str(tmp_path / "left.png"), str(tmp_path / "right.png"),
                         "--out-dir", str(tmp_path / "pred"), "--focal-baseline", "389.6"])  # fmt: skip
    disparity, depth = np.load(out["disparity.npy"]), np.load(out["depth.npy"])
    assert disparity.shape == depth.shape == (60, 90) and np.isfinite(depth).all()
    np.testing.assert_allclose(depth, np.clip(389.6 / np.clip(disparity, 1e-6, None), 1e-3, 80.0), rtol=1e-5)
    assert out["disparity.png"].stat().st_size > 0 and out["depth.png"].stat().st_size > 0
    with pytest.raises(SystemExit):
        iio.imwrite(tmp_path / "small.png", left[:30])
        predict_depth([str(ckpt), str(tmp_path / "left.png"), str(tmp_path / "small.png")])
