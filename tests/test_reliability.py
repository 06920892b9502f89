"""Runs that survive real interruptions and never record a wrong result (kill, resume, config
changes, divergence, time limits, stale records, bad data roots)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from experiments.runner.checkpointing import AtomicLastCheckpoint
from experiments.runner.fingerprint import differences, fingerprint, result_config
from experiments.runner.train import run
from tests.conftest import REPO_ROOT
from tests.helpers import compose_config

SMOKE = ["debug=smoke", "logger=none", "trainer.enable_progress_bar=false"]
# smoke Exp1: 32 pairs, batch 8 -> 4 steps per epoch
THREE_EPOCHS = [*SMOKE, "loss=l1", "trainer.max_epochs=3"]


def _record(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _cli(args: list[str], cwd: Path, data: Path) -> subprocess.Popen:
    env = {**os.environ, "DEEPMI_DATA": str(data), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "run.py"), *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(
    tmp_path: Path, data_root: Path
) -> None:
    expected = run(compose_config(THREE_EPOCHS, tmp_path / "straight", data_root))["metrics"]

    folder, marker = tmp_path / "killed", tmp_path / "paused"
    pause = [  # step 6 is in the middle of epoch 2 (steps 5-8)
        "+callbacks.pause._target_=tests.helpers.PauseAtStep", "+callbacks.pause.step=6",
        f"+callbacks.pause.marker={marker}",
    ]  # fmt: skip
    proc = _cli([*THREE_EPOCHS, *pause, f"hydra.run.dir={folder}"], tmp_path, data_root)
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "the run never reached step 6"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    # what a kill leaves: the epoch-1 checkpoint, and a record that says the run did not finish
    assert torch.load(folder / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    assert _record(folder)["status"] == "running"
    assert not list((folder / "checkpoints").glob(".*partial"))

    resumed = run(compose_config([*THREE_EPOCHS, "ckpt_path=last"], folder, data_root))
    assert resumed["status"] == "finished"
    assert resumed["metrics"] == expected


def test_checkpoint_every_k_steps_and_at_every_epoch_end(tmp_path: Path, data_root: Path) -> None:
    stop = ["+callbacks.stop._target_=tests.helpers.FailAtStep", "+callbacks.stop.step=7"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(compose_config([*THREE_EPOCHS, *stop, "checkpoint.every_n_train_steps=3"], tmp_path, data_root))
    # steps 3 and 6 (every 3) and 4 (epoch end) were saved; the crash came at 7
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 6
    record = _record(tmp_path)
    assert record["status"] == "failed" and record["error_type"] == "RuntimeError"
    assert "simulated crash at step 7" in record["error"] and "holds step 6" in record["stop_reason"]


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path: Path) -> None:
    class Trainer:
        sanity_checking, is_global_zero = False, True

        class strategy:  # noqa: N801 (stands in for trainer.strategy)
            @staticmethod
            def barrier(name: str) -> None:
                pass

        def save_checkpoint(self, path: Path, weights_only: bool | None = None) -> None:
            Path(path).write_bytes(b"half a checkpoint")
            raise OSError("disk full")

    callback = AtomicLastCheckpoint(tmp_path)
    callback.last_path.write_bytes(b"good")
    with pytest.raises(OSError, match="disk full"):
        callback.save(Trainer())
    assert callback.last_path.read_bytes() == b"good"


def test_resume_under_another_config_is_refused_with_the_differing_keys(
    tmp_path: Path, data_root: Path
) -> None:
    run(compose_config([*SMOKE, "loss=lmi"], tmp_path, data_root))
    other = compose_config([*SMOKE, "loss=l2", "ckpt_path=last"], tmp_path, data_root)
    with pytest.raises(ValueError, match=r"(?s)cannot be resumed.*loss\.name: 'lmi' -> 'l2'"):
        run(other)
    assert _record(tmp_path)["loss"] == "lmi"


def test_skip_if_finished_skips_only_the_same_config(tmp_path: Path, data_root: Path) -> None:
    first = run(compose_config([*SMOKE, "loss=lmi"], tmp_path, data_root))
    again = run(
        compose_config([*SMOKE, "loss=lmi", "skip_if_finished=true", "logger=csv"], tmp_path, data_root)
    )
    assert again["wall_time_s"] == first["wall_time_s"]  # the stored record, not a new run
    with pytest.raises(ValueError, match=r"(?s)cannot be skipped as finished.*loss\.name"):
        run(compose_config([*SMOKE, "loss=l2", "skip_if_finished=true"], tmp_path, data_root))


def test_a_fresh_machine_skips_runs_whose_record_is_committed(tmp_path: Path, data_root: Path) -> None:
    """Only results/runs survives a machine change: a sweep continued there must not redo them."""
    records = tmp_path / "records"
    overrides = [*SMOKE, "loss=lmi", f"records_dir={records}"]
    first = run(compose_config(overrides, tmp_path / "machine_a", data_root))
    (kept,) = records.iterdir()
    fresh = tmp_path / "machine_b"  # no run folder, no checkpoint: only the kept record
    again = run(compose_config([*overrides, "skip_if_finished=true"], fresh, data_root))
    assert again["wall_time_s"] == first["wall_time_s"] and again["metrics"] == first["metrics"]
    assert not (fresh / "metrics.json").exists()  # nothing was trained
    # the committed copy names no folder of this machine: the data root outside the repo is a name
    kept_text = (kept / "metrics.json").read_text()
    assert str(data_root) not in kept_text and '"root": "$DEEPMI_DATA' in kept_text
    # a kept record of another config is refused, never taken for this run
    record = json.loads((kept / "metrics.json").read_text())
    record["config"]["trainer"]["max_epochs"] = 7
    (kept / "metrics.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"(?s)cannot be skipped as finished.*max_epochs"):
        run(compose_config([*overrides, "skip_if_finished=true"], tmp_path / "machine_c", data_root))
    # without skip_if_finished the record is not consulted: the run trains
    rerun = run(compose_config(overrides, tmp_path / "machine_d", data_root))
    assert rerun["status"] == "finished" and (tmp_path / "machine_d" / "metrics.json").exists()


def test_nan_loss_stops_the_run_and_is_recorded_as_diverged(tmp_path: Path, data_root: Path) -> None:
    from experiments.reporting.results import load_runs, load_unfinished

    records = tmp_path / "records"
    overrides = [*SMOKE, "experiment=ib_mnist", "loss=mine_ib", "module.optimizer.lr=1e4"]
    overrides.append(f"records_dir={records}")
    record = run(compose_config(overrides, tmp_path / "run", data_root))
    assert record["status"] == "diverged"
    assert isinstance(record["diverged_at_step"], int) and "diverged" in record["stop_reason"]
    assert "metrics" not in record and _record(tmp_path / "run")["status"] == "diverged"
    # the divergence is kept with the records (a failed seed for the tables), never as a result
    assert load_runs(records) == [] and [r["status"] for r in load_unfinished(records)] == ["diverged"]


def test_cli_exits_non_zero_when_a_single_run_diverges(tmp_path: Path, data_root: Path) -> None:
    args = [
        *SMOKE,
        "experiment=ib_mnist",
        "loss=mine_ib",
        "module.optimizer.lr=1e4",
        f"hydra.run.dir={tmp_path}/r",
    ]
    proc = _cli(args, tmp_path, data_root)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 3, out[-3000:]  # run.py's exit code for "diverged"
    assert "training diverged" in out


def test_max_time_is_recorded_as_stopped_and_not_skipped_later(tmp_path: Path, data_root: Path) -> None:
    records = tmp_path / "records"
    stop = [*THREE_EPOCHS, "+trainer.max_time='00:00:00:00'", f"records_dir={records}"]
    record = run(compose_config(stop, tmp_path, data_root))
    assert record["status"] == "stopped" and "max_time" in record["stop_reason"]
    assert "metrics" not in record and not records.exists()  # an interruption is not kept: it resumes
    again = run(
        compose_config([*THREE_EPOCHS, "skip_if_finished=true", "ckpt_path=last"], tmp_path, data_root)
    )
    assert again["status"] == "finished" and again["metrics"]


def test_a_new_run_replaces_an_unfinished_result_in_its_folder(tmp_path: Path, data_root: Path) -> None:
    """A stopped run's folder may be started over; the new run's record replaces the old one at its
    start, so a crash leaves its own failure, not the old result (a finished record is never
    replaced: tests/test_run_lifecycle.py)."""
    stop = ["+callbacks.stop._target_=tests.helpers.StopAfterEpochs", "+callbacks.stop.epochs=1"]
    run(compose_config([*THREE_EPOCHS, *stop], tmp_path, data_root))
    assert _record(tmp_path)["status"] == "stopped"
    crash = ["+callbacks.stop._target_=tests.helpers.FailAtStep", "+callbacks.stop.step=2"]
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(compose_config([*SMOKE, "loss=l1", *crash], tmp_path, data_root))
    record = _record(tmp_path)
    assert record["status"] == "failed" and "simulated crash at step 2" in record["error"]


def test_fingerprint_ignores_paths_and_loggers_but_not_the_loss(tmp_path: Path, data_root: Path) -> None:
    base = compose_config([*SMOKE, "loss=lmi"], tmp_path / "a", data_root)
    moved = compose_config([*SMOKE, "loss=lmi", "logger=csv"], tmp_path / "b", tmp_path / "other_data")
    other = compose_config([*SMOKE, "loss=lmi", "loss.bins=3"], tmp_path / "a", data_root)
    assert fingerprint(base) == fingerprint(moved)
    assert fingerprint(base) != fingerprint(other)
    assert differences(result_config(base), result_config(other)) == ["loss.bins: 11 -> 3"]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["seed=abc"], "seed must be an integer or null, got 'abc'"),
        (["dataset=kitti_raw"], "dataset=kitti_raw does not fit experiment 'exp1_bar'; choose one of: bar"),
    ],
)
def test_bad_options_are_named(overrides: list[str], match: str, tmp_path: Path, data_root: Path) -> None:
    with pytest.raises(ValueError, match=match):
        run(compose_config([*SMOKE, *overrides], tmp_path, data_root))


def test_a_corrupt_generated_dataset_is_named_and_regenerated(tmp_path: Path) -> None:
    from deepmi.data.cache import cache_path, cached_arrays

    params = {"n": 3}
    make = lambda: {"x": torch.arange(3).numpy()}  # noqa: E731
    cached_arrays(tmp_path, "toy", params, make)
    path = cache_path(tmp_path, "toy", params)
    path.write_bytes(b"not a zip file")
    with pytest.warns(UserWarning, match=f"{path.name}.*unreadable.*generating it again"):
        arrays = cached_arrays(tmp_path, "toy", params, make)
    assert arrays["x"].tolist() == [0, 1, 2]
    assert cached_arrays(tmp_path, "toy", params, make)["x"].tolist() == [0, 1, 2]


def test_an_unwritable_data_root_is_one_clear_error(tmp_path: Path) -> None:
    from deepmi.data.cache import DataRootNotWritableError, cached_arrays

    blocker = tmp_path / "a_file"
    blocker.write_text("")  # a file where the data root's folder should be: mkdir fails, even as root
    with pytest.raises(
        DataRootNotWritableError, match=r"cannot write generated data under .*paths\.data_dir"
    ) as info:
        cached_arrays(blocker / "data", "toy", {"n": 1}, lambda: {"x": torch.zeros(1).numpy()})
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_ib_resume_keeps_the_lr_decay_and_the_test_curve(tmp_path: Path, data_root: Path) -> None:
    """MNIST IB decays its lr per epoch and writes a per-epoch test curve: both survive a resume."""
    ib = [*SMOKE, "experiment=ib_mnist", "loss=vib", "trainer.max_epochs=3", "module.scheduler.step_size=1"]
    straight = run(compose_config(ib, tmp_path / "a", data_root))
    stop = ["+callbacks.stop._target_=tests.helpers.StopAfterEpochs", "+callbacks.stop.epochs=1"]
    assert run(compose_config([*ib, *stop], tmp_path / "b", data_root))["status"] == "stopped"
    resumed = run(compose_config([*ib, "ckpt_path=last"], tmp_path / "b", data_root))
    assert resumed["metrics"] == straight["metrics"]
    curves = [(tmp_path / d / "curve.csv").read_text() for d in "ab"]
    assert curves[0] == curves[1] and len(curves[0].splitlines()) == 4  # header + 3 epochs
    lrs = [torch.load(tmp_path / d / "checkpoints" / "last.ckpt", weights_only=False)["optimizer_states"][0]
           ["param_groups"][0]["lr"] for d in "ab"]  # fmt: skip
    assert lrs[0] == lrs[1] == pytest.approx(1e-4 * 0.96**2)


def test_wall_time_of_a_resumed_run_sums_its_segments(tmp_path: Path, data_root: Path) -> None:
    """A run stopped after epoch 1 and resumed reports both segments, not the last one alone."""
    stop = ["+callbacks.stop._target_=tests.helpers.StopAfterEpochs", "+callbacks.stop.epochs=1"]
    first = run(compose_config([*THREE_EPOCHS, *stop], tmp_path, data_root))
    assert first["status"] == "stopped" and "resumes" not in first
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    before = ckpt["callbacks"]["TrainingClock"]["elapsed_s"]
    assert 0 < before <= first["wall_time_s"]
    started = time.perf_counter()
    resumed = run(compose_config([*THREE_EPOCHS, "ckpt_path=last"], tmp_path, data_root))
    second = time.perf_counter() - started
    assert resumed["status"] == "finished" and resumed["resumes"] == 1
    assert before < resumed["wall_time_s"] <= before + second


def test_training_clock_adds_the_time_restored_from_a_checkpoint() -> None:
    from experiments.runner.training_clock import TrainingClock

    earlier = TrainingClock(started=time.perf_counter() - 100.0)  # a segment 100 s long
    state = earlier.state_dict()
    assert state["elapsed_s"] >= 100.0 and state["resumes"] == 0
    later = TrainingClock()
    later.load_state_dict(state)
    assert later.resumes == 1 and 100.0 <= later.elapsed() < 100.0 + 60.0
    again = TrainingClock()
    again.load_state_dict(later.state_dict())
    assert again.resumes == 2 and again.elapsed() >= 100.0


# the sweeps RESULTS.md continues with skip_if_finished=true: their committed records must still
# match what their folders' overrides compose today, or a fresh machine would refuse them
CONTINUED_SWEEPS = ("cpu/exp1_bar", "cpu/exp2_mask", "cpu/exp3_depth", "paper/exp1_bar", "paper/ib_mnist")


def test_committed_records_match_the_config_their_overrides_compose_today(
    tmp_path: Path, data_root: Path
) -> None:
    records = [
        path
        for sweep in CONTINUED_SWEEPS
        for path in sorted((REPO_ROOT / "results" / "runs" / sweep).glob("*/metrics.json"))
    ]
    assert len(records) >= 40  # the committed sweeps, not an empty glob
    for path in records:
        record = json.loads(path.read_text())
        if record.get("status") != "finished":
            continue
        cfg = compose_config(path.parent.name.split(","), tmp_path, data_root)
        assert differences(result_config(record["config"]), result_config(cfg)) == [], path.parent.name


def test_a_key_added_to_the_config_later_keeps_older_fingerprints(tmp_path: Path, data_root: Path) -> None:
    cfg = compose_config(["experiment=ib_mnist", "loss=vib"], tmp_path, data_root)
    older = {k: v for k, v in result_config(cfg).items() if k != "ema_decay"}
    assert "ema_decay" in result_config(cfg) and "ema_decay" not in older
    assert fingerprint(older) == fingerprint(cfg)
    ema = compose_config(["experiment=ib_mnist", "loss=vib", "ema_decay=0.999"], tmp_path, data_root)
    assert differences(result_config(cfg), result_config(ema)) == ["ema_decay: None -> 0.999"]


@pytest.mark.parametrize("decay", ["1.0", "0", "-0.5", "abc", "true"])
def test_ema_decay_outside_0_1_is_named(decay: str, tmp_path: Path, data_root: Path) -> None:
    with pytest.raises(ValueError, match="ema_decay must be a number in \\(0, 1\\) or null"):
        run(compose_config([*SMOKE, f"ema_decay={decay}"], tmp_path, data_root))


def test_ema_evaluates_the_averaged_weights_in_test_curve_and_checkpoint(
    tmp_path: Path, data_root: Path
) -> None:
    """ema_decay: the test, the per-epoch curve and the saved weights are the average's, and a
    resumed run ends where an uninterrupted one does."""
    from experiments.tasks.bottleneck import BottleneckModule

    ib = [*SMOKE, "experiment=ib_mnist", "loss=vib", "trainer.max_epochs=2", "curve_every_n_epochs=1"]
    raw = run(compose_config(ib, tmp_path / "raw", data_root))
    ema = run(compose_config([*ib, "ema_decay=0.9"], tmp_path / "ema", data_root))
    assert ema["status"] == "finished" and ema["metrics"] != raw["metrics"]
    checkpoint = torch.load(tmp_path / "ema" / "checkpoints" / "last.ckpt", weights_only=False)
    assert "current_model_state" in checkpoint  # Lightning keeps the raw weights beside the average
    averaged, current = checkpoint["state_dict"], checkpoint["current_model_state"]
    assert any(not torch.equal(averaged[k], current[k]) for k in averaged if averaged[k].is_floating_point())
    # evaluating the checkpoint's weights (the average) reproduces the run's test metrics and last curve row
    evaluated = run(compose_config([*ib, "ema_decay=0.9", "train=false",
                                    f"ckpt_path={tmp_path / 'ema' / 'checkpoints' / 'last.ckpt'}"],
                                   tmp_path / "eval", data_root))  # fmt: skip
    assert evaluated["metrics"]["test/error_pct"] == ema["metrics"]["test/error_pct"]
    last_row = (tmp_path / "ema" / "curve.csv").read_text().splitlines()[-1]
    assert float(last_row.split(",")[-1]) == pytest.approx(ema["metrics"]["test/error_pct"])
    assert BottleneckModule.load_from_checkpoint(tmp_path / "ema" / "checkpoints" / "last.ckpt") is not None
    # interrupted after epoch 1 and resumed: the same numbers as straight through
    stop = ["+callbacks.stop._target_=tests.helpers.StopAfterEpochs", "+callbacks.stop.epochs=1"]
    assert (
        run(compose_config([*ib, "ema_decay=0.9", *stop], tmp_path / "cut", data_root))["status"] == "stopped"
    )
    resumed = run(compose_config([*ib, "ema_decay=0.9", "ckpt_path=last"], tmp_path / "cut", data_root))
    assert resumed["metrics"] == ema["metrics"]
