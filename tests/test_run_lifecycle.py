"""Every way a run ends is recorded truly (issue 29): NaN, exceptions, signals, time limits, damaged
checkpoints, two runs in one folder, relabelling through a checkpoint, evaluation beside a run.

Real processes, signals and files; smoke Exp1 runs of a few seconds (32 pairs, batch 8: 4 steps
per epoch).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from experiments.runner.record import read_record, worse_than_baseline
from experiments.runner.train import run
from tests.conftest import REPO_ROOT
from tests.helpers import compose_config

SMOKE = ["debug=smoke", "logger=none", "trainer.enable_progress_bar=false"]
BASE = ["experiment=exp1_bar", "loss=lmi", *SMOKE, "trainer.max_epochs=3"]
STOP_AFTER_2 = ["+callbacks.stop._target_=tests.helpers.StopAfterEpochs", "+callbacks.stop.epochs=2"]


class StopAtStep(L.Callback):
    """Request a stop (``trainer.should_stop``, as ``trainer.max_time``'s Timer does) after step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            trainer.should_stop = True


def _cli(args: list[str], cwd: Path, data: Path) -> subprocess.Popen:
    env = {**os.environ, "DEEPMI_DATA": str(data), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "run.py"), *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def _wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, f"{marker} never appeared"
        time.sleep(0.1)


def _pause(step: int, marker: Path) -> list[str]:
    return [
        "+callbacks.pause._target_=tests.helpers.PauseAtStep",
        f"+callbacks.pause.step={step}",
        f"+callbacks.pause.marker={marker}",
    ]


def _step(folder: Path, name: str = "last.ckpt") -> int:
    return torch.load(folder / "checkpoints" / name, weights_only=False)["global_step"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> dict:
    """BASE run straight through: what every interrupted-and-resumed run must end as."""
    return run(compose_config(BASE, tmp_path_factory.mktemp("straight"), data_root))


# 1. NaN anywhere in training is `diverged`, at its step; any other exception is `failed`


@pytest.mark.parametrize(
    "overrides",
    [["module.optimizer.lr=inf"], ["module.optimizer.lr=nan"], ["loss=l2", "module.optimizer.lr=1e30"]],
)
def test_a_nan_caught_by_the_loss_check_is_still_diverged(
    overrides: list[str], tmp_path: Path, data_root: Path
) -> None:
    record = run(compose_config([*BASE, *overrides], tmp_path, data_root))
    assert record["status"] == "diverged" and read_record(tmp_path)["status"] == "diverged"
    assert isinstance(record["diverged_at_step"], int) and record["diverged_at_step"] >= 0
    assert "metrics" not in record


@pytest.mark.parametrize(
    ("overrides", "error_type", "message"),
    [
        (["module.optimizer.lr=-1"], "ValueError", "Invalid learning rate"),
        (["ckpt_path=/nonexistent/last.ckpt"], "FileNotFoundError", "/nonexistent/last.ckpt does not exist"),
    ],
)
def test_any_other_exception_is_failed_with_its_type_and_message(
    overrides: list[str], error_type: str, message: str, tmp_path: Path, data_root: Path
) -> None:
    with pytest.raises(Exception, match=message):
        run(compose_config([*BASE, *overrides], tmp_path, data_root))
    record = read_record(tmp_path)
    assert record["status"] == "failed" and record["error_type"] == error_type and message in record["error"]


@pytest.mark.slow  # several run.py processes (about 20-40 s on 2 shared cores)
def test_cli_exit_codes_say_diverged_and_failed(tmp_path: Path, data_root: Path) -> None:
    code, out = _finish(
        _cli([*BASE, "module.optimizer.lr=inf", f"hydra.run.dir={tmp_path / 'nan'}"], tmp_path, data_root)
    )
    assert code == 3 and "training diverged" in out, out[-3000:]
    code, out = _finish(
        _cli([*BASE, "module.optimizer.lr=-1", f"hydra.run.dir={tmp_path / 'neg'}"], tmp_path, data_root)
    )
    assert code == 1 and read_record(tmp_path / "neg")["status"] == "failed", out[-3000:]


def test_a_sweep_records_every_job_and_lists_the_unfinished_ones(tmp_path: Path, data_root: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        *BASE,
        "trainer.max_epochs=1",
        "module.optimizer.lr=1e-3,inf,-1",
        f"hydra.sweep.dir={sweep}",
    ]
    code, out = _finish(_cli(args, tmp_path, data_root))
    statuses = {p.parent.name.split("lr=")[1].split(",")[0]: _status for p in sweep.glob("*/metrics.json")
                for _status in [json.loads(p.read_text())["status"]]}  # fmt: skip
    assert statuses == {"0.001": "finished", "inf": "diverged", "-1": "failed"}, out[-3000:]
    assert code == 1
    summary = out[out.index("2 job(s) in") :]
    assert "diverged" in summary and "failed" in summary and "lr=0.001" not in summary


# 2. SIGTERM and SIGINT: stopped, with the true signal and exit code; the resume ends like a straight run


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_epoch_is_recorded_with_its_name_and_resumes_exactly(
    signum: int, code: int, straight: dict, tmp_path: Path, data_root: Path
) -> None:
    folder, marker = tmp_path / "run", tmp_path / "paused"
    proc = _cli([*BASE, *_pause(6, marker), f"hydra.run.dir={folder}"], tmp_path, data_root)
    _wait_for(marker, proc)
    proc.send_signal(signum)
    returncode, out = _finish(proc, timeout=60)
    record = read_record(folder)
    name = signal.Signals(signum).name
    assert returncode == code, out[-3000:]
    assert record["status"] == "stopped" and record["stop_signal"] == name
    assert f"received {name} at epoch 1, step 6" in record["stop_reason"]
    assert _step(folder) == 4  # the last full epoch: the stop did not save a half epoch as whole
    resumed = run(compose_config([*BASE, "ckpt_path=last"], folder, data_root))
    assert resumed["status"] == "finished" and resumed["resumes"] == 1
    assert resumed["metrics"] == straight["metrics"] and _step(folder) == 12


# 3. a stop request mid-epoch (trainer.max_time, should_stop) resumes like the uninterrupted run


def test_a_stop_request_mid_epoch_resumes_like_the_uninterrupted_run(
    straight: dict, tmp_path: Path, data_root: Path
) -> None:
    stop = [f"+callbacks.stop._target_={__name__}.StopAtStep", "+callbacks.stop.step=7"]
    stopped = run(compose_config([*BASE, *stop], tmp_path, data_root))
    assert stopped["status"] == "stopped" and "step 7" in stopped["stop_reason"]
    assert "last.ckpt holds step 4" in stopped["stop_reason"] and _step(tmp_path) == 4
    resumed = run(compose_config([*BASE, "ckpt_path=last"], tmp_path, data_root))
    assert resumed["status"] == "finished" and _step(tmp_path) == 12
    assert resumed["metrics"] == straight["metrics"]


@pytest.mark.slow  # several run.py processes (about 20-40 s on 2 shared cores)
def test_max_time_mid_epoch_exits_non_zero_and_resumes_like_the_uninterrupted_run(
    straight: dict, tmp_path: Path, data_root: Path
) -> None:
    # a 4 s pause at step 6 crosses the 3 s limit (earlier if this machine is slower: any stop works)
    slow = [*_pause(6, tmp_path / "marker"), "+callbacks.pause.seconds=4", "+trainer.max_time=00:00:00:03"]
    code, out = _finish(_cli([*BASE, *slow, f"hydra.run.dir={tmp_path}"], tmp_path, data_root))
    record = read_record(tmp_path)
    assert code == 4 and record["status"] == "stopped" and "max_time" in record["stop_reason"], out[-3000:]
    resumed = run(compose_config([*BASE, "ckpt_path=last"], tmp_path, data_root))
    assert resumed["metrics"] == straight["metrics"] and _step(tmp_path) == 12


# 4. a damaged checkpoint is named with its fix; the previous one is kept; no record is downgraded


@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_a_damaged_checkpoint_is_named_and_the_previous_one_resumes(
    damage: str, straight: dict, tmp_path: Path, data_root: Path
) -> None:
    assert run(compose_config([*BASE, *STOP_AFTER_2], tmp_path, data_root))["status"] == "stopped"
    last, previous = tmp_path / "checkpoints" / "last.ckpt", tmp_path / "checkpoints" / "previous.ckpt"
    assert _step(tmp_path) == 8 and _step(tmp_path, "previous.ckpt") == 4
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"")
    with pytest.raises(ValueError, match=rf"(?s)checkpoint {last} cannot be read.*ckpt_path='{previous}'"):
        run(compose_config([*BASE, "ckpt_path=last"], tmp_path, data_root))
    assert read_record(tmp_path)["status"] == "stopped"  # the earlier record stands
    resumed = run(compose_config([*BASE, f"ckpt_path='{previous}'"], tmp_path, data_root))
    assert resumed["metrics"] == straight["metrics"]


def test_a_finished_record_is_never_downgraded(tmp_path: Path, data_root: Path) -> None:
    finished = run(compose_config(BASE, tmp_path, data_root))
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    # resuming a finished run: nothing to do, the record is returned as it is
    assert run(compose_config([*BASE, "ckpt_path=last"], tmp_path, data_root)) == finished
    # a new run in its folder is refused (it would replace the result)
    with pytest.raises(FileExistsError, match="holds a finished run"):
        run(compose_config(BASE, tmp_path, data_root))
    assert read_record(tmp_path) == finished


# 5. one live run per folder


@pytest.mark.slow  # several run.py processes (about 20-40 s on 2 shared cores)
def test_a_second_run_in_a_live_runs_folder_is_refused_and_a_dead_ones_lock_is_taken_over(
    straight: dict, tmp_path: Path, data_root: Path
) -> None:
    folder, marker = tmp_path / "run", tmp_path / "paused"
    first = _cli([*BASE, *_pause(2, marker), f"hydra.run.dir={folder}"], tmp_path, data_root)
    _wait_for(marker, first)
    code, out = _finish(_cli([*BASE, "loss=l2", f"hydra.run.dir={folder}"], tmp_path, data_root))
    assert code != 0 and f"{folder} is in use by another run (pid {first.pid}" in out, out[-3000:]
    assert read_record(folder)["loss"] == "lmi"
    assert (
        json.loads((folder / "checkpoints" / "run_config.json").read_text())["config"]["loss"]["name"]
        == "lmi"
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    # the kill left the lock file naming a dead process: the next run takes it over, with a warning
    code, out = _finish(_cli([*BASE, "ckpt_path=last", f"hydra.run.dir={folder}"], tmp_path, data_root))
    assert code == 0 and "taking over a stale lock" in out and f"pid {first.pid}" in out, out[-3000:]
    assert read_record(folder)["metrics"] == straight["metrics"]


# 6. resume compares the config stored in the checkpoint itself


def test_a_bare_checkpoint_of_another_config_is_not_resumed(tmp_path: Path, data_root: Path) -> None:
    run(compose_config([*BASE, *STOP_AFTER_2], tmp_path / "lmi", data_root))
    bare = tmp_path / "bare" / "checkpoints"
    bare.mkdir(parents=True)
    (bare / "last.ckpt").write_bytes((tmp_path / "lmi" / "checkpoints" / "last.ckpt").read_bytes())
    with pytest.raises(ValueError, match=r"(?s)cannot be resumed.*loss\.name: 'lmi' -> 'l2'"):
        run(compose_config([*BASE, "loss=l2", "ckpt_path=last"], tmp_path / "bare", data_root))
    assert read_record(tmp_path / "bare") is None or read_record(tmp_path / "bare")["status"] == "failed"
    ckpt = tmp_path / "lmi" / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match=r"(?s)cannot be resumed.*loss\.name: 'lmi' -> 'l2'"):
        run(compose_config([*BASE, "loss=l2", f"ckpt_path={ckpt}"], tmp_path / "elsewhere", data_root))


# 7 and 10. evaluation has a file of its own; resume= and evaluate= take a multirun folder as it is


def test_evaluating_into_the_runs_folder_leaves_its_record(tmp_path: Path, data_root: Path) -> None:
    finished = run(compose_config(BASE, tmp_path, data_root))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    evaluated = run(compose_config([*BASE, "train=false", f"ckpt_path={ckpt}"], tmp_path, data_root))
    assert read_record(tmp_path) == finished
    assert read_record(tmp_path, "evaluation.json") == evaluated
    assert evaluated["status"] == "evaluated" and evaluated["metrics"] == finished["metrics"]


@pytest.mark.slow  # several run.py processes (about 20-40 s on 2 shared cores)
def test_resume_and_evaluate_a_multirun_folder_by_its_name(
    straight: dict, tmp_path: Path, data_root: Path
) -> None:
    sweep = tmp_path / "sweep"
    code, out = _finish(_cli(["-m", *BASE, *STOP_AFTER_2, f"hydra.sweep.dir={sweep}"], tmp_path, data_root))
    (folder,) = [p.parent for p in sweep.glob("*/metrics.json")]
    assert "=" in folder.name and "," in folder.name and read_record(folder)["status"] == "stopped"
    assert code == 1 and "resume=" in out
    # the stop callback is one of the run's own overrides: drop it on the resumed command's line
    code, out = _finish(_cli([f"resume={folder}", "~callbacks.stop"], tmp_path, data_root))
    assert code == 0 and read_record(folder)["metrics"] == straight["metrics"], out[-3000:]
    assert f"evaluate:  python run.py evaluate='{folder}'" in out
    code, out = _finish(_cli([f"evaluate={folder}"], tmp_path, data_root))
    assert code == 0, out[-3000:]
    assert read_record(folder, "evaluation.json")["metrics"] == straight["metrics"]
    assert read_record(folder)["status"] == "finished"


# 9. a finished run worse than its trivial baseline is flagged; max_epochs=0 is refused


def test_worse_than_baseline_compares_in_each_metrics_direction() -> None:
    metrics = {"test/mae_tx": 22.2, "test/baseline_mae_tx": 10.9, "test/iou_0.05": 0.3,
               "test/baseline_everywhere_iou_0.05": 0.5, "test/baseline_none_iou_0.05": 0.0,
               "test/error_pct": 2.0, "test/baseline_error_pct": 88.0}  # fmt: skip
    flags = worse_than_baseline(metrics)
    assert set(flags) == {"mae_tx", "iou_0.05"}
    assert flags["iou_0.05"]["baseline_name"] == "everywhere" and flags["mae_tx"]["baseline"] == 10.9


def test_a_finished_run_worse_than_its_trivial_baseline_is_flagged(tmp_path: Path, data_root: Path) -> None:
    record = run(compose_config([*BASE, "module.optimizer.lr=1e6"], tmp_path, data_root))
    assert record["status"] == "finished"
    flag = record["flag_worse_than_baseline"]["mae_tx"]
    assert flag["value"] > flag["baseline"] == record["metrics"]["test/baseline_mae_tx"]
    assert read_record(tmp_path)["flag_worse_than_baseline"] == record["flag_worse_than_baseline"]


def test_max_epochs_0_is_refused_for_training(tmp_path: Path, data_root: Path) -> None:
    with pytest.raises(ValueError, match="trainer.max_epochs=0 trains nothing"):
        run(compose_config([*BASE, "trainer.max_epochs=0"], tmp_path, data_root))


def test_an_exp1_checkpoint_evaluated_as_exp2_names_the_experiment(tmp_path: Path, data_root: Path) -> None:
    run(compose_config([*BASE, "trainer.max_epochs=1"], tmp_path / "exp1", data_root))
    ckpt = tmp_path / "exp1" / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match="checkpoint of experiment 'exp1_bar'.*experiment=exp1_bar"):
        run(
            compose_config(
                [*SMOKE, "experiment=exp2_mask", "train=false", f"ckpt_path={ckpt}"],
                tmp_path / "e",
                data_root,
            )
        )


# 11. the data a run read is part of its record and fingerprint; smoke records stay out of git


def test_a_run_on_a_generated_stand_in_is_never_taken_for_one_on_real_data(tmp_path: Path) -> None:
    from deepmi.data.fixtures import write_mnist_fixture

    data = tmp_path / "data"  # no MNIST here: the smoke config lets a generated fixture stand in
    ib = [*SMOKE, "experiment=ib_mnist", "loss=vib", "skip_if_finished=true"]
    record = run(compose_config(ib, tmp_path / "run", data))
    assert record["data_source"].startswith("generated fixture")
    assert record["config"]["dataset_fixture"] is True
    # the same run again: skipped, it is the same run on the same (absent) data
    assert run(compose_config(ib, tmp_path / "run", data)) == record
    write_mnist_fixture(data)  # now files in MNIST's real place: read as the real data
    with pytest.raises(
        ValueError, match=r"(?s)cannot be skipped as finished.*dataset_fixture: True -> '<absent>'"
    ):
        run(compose_config(ib, tmp_path / "run", data))
    real = run(compose_config(ib, tmp_path / "other", data))
    assert real["data_source"] == "real" and "dataset_fixture" not in real["config"]


def test_smoke_reproductions_keep_their_records_out_of_tracked_folders(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "reproduce.py"), "mige-table2", "--scale", "smoke",
         "--runs-dir", str(tmp_path), "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"records_dir={tmp_path / 'records' / 'smoke'}" in proc.stdout
    assert "results/runs" not in proc.stdout


# 12. the run says where it writes at its start, shows epochs of a total and the run's ETA, logs once


def test_the_console_names_the_folder_first_counts_epochs_and_logs_each_line_once(
    tmp_path: Path, data_root: Path
) -> None:
    args = [*BASE, "trainer.max_epochs=2", "trainer.enable_progress_bar=true", f"hydra.run.dir={tmp_path}"]
    code, out = _finish(_cli(args, tmp_path, data_root))
    assert code == 0, out[-3000:]
    assert out.index(f"run folder: {tmp_path}") < out.index("Epoch 1/2")
    assert "Epoch 2/2" in out and "run_eta=" in out
    assert out.count("Seed set to 0") == 1  # not once from Hydra's handler and again from Lightning's
    assert f"evaluate:  python run.py evaluate='{tmp_path}'" in out


# 9. trainer=gpu on a machine without one says what to do


def test_trainer_gpu_without_a_gpu_names_the_fix(tmp_path: Path, data_root: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="trainer=gpu, but torch .* sees no CUDA GPU.*drop trainer=gpu"):
        run(compose_config([*BASE, "trainer=gpu"], tmp_path, data_root))


def test_every_higher_is_better_metric_is_known_as_such() -> None:
    """IoU, the depth thresholds and DIM's classifier accuracies rise with quality; errors do not."""
    from experiments.runner.record import higher_is_better

    for name in ("test/iou_0.05", "test/delta1", "test/acc_conv", "test/acc_y"):
        assert higher_is_better(name), name
    for name in ("test/mae_tx", "test/abs_rel", "test/epe_px", "test/bad3_pct", "test/error_pct"):
        assert not higher_is_better(name), name
