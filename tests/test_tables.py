"""Table assembly from metrics.json files, and the one-command reproduction end to end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.reporting.render import render_table
from experiments.reporting.results import (
    assemble,
    claims,
    load_runs,
    missing_cells,
    to_markdown,
    with_run_rows,
)
from experiments.reporting.tables import TABLES
from tests.conftest import REPO_ROOT


def _write_run(folder: Path, experiment: str, loss: str, bins: int | None, seed: int, metrics: dict) -> None:
    folder.mkdir(parents=True)
    record = {
        "experiment": experiment, "loss": loss, "bins": bins, "seed": seed, "status": "finished",
        "metrics": metrics, "wall_time_s": 1.0, "environment": {"device": "cpu"},
        "config": {"dataset": {"n_train": 8}, "trainer": {"max_epochs": 1}},
    }  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(record))


def test_cells_average_over_seeds_and_mark_the_best(tmp_path: Path) -> None:
    for seed, (lmi, l1) in enumerate([(1.0, 2.0), (3.0, 2.0)]):
        _write_run(tmp_path / f"lmi{seed}", "exp1_bar", "lmi", 11, seed, {"test/mae_tx": lmi})
        _write_run(tmp_path / f"l1{seed}", "exp1_bar", "l1", None, seed, {"test/mae_tx": l1 + 1})
    # a bin-sweep run must not leak into Table 1's lmi row, nor a repeat of the same configuration
    _write_run(tmp_path / "lmi3bins", "exp1_bar", "lmi", 3, 0, {"test/mae_tx": 100.0})
    _write_run(tmp_path / "lmi0bins11", "exp1_bar", "lmi", 11, 0, {"test/mae_tx": 1.0})
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metrics.json").write_text("{not json")
    table = TABLES["deepmi-table1"]
    cells = assemble(table, load_runs(tmp_path))
    assert cells[("lmi", "exp1/mae_tx")].values == [1.0, 3.0]
    assert cells[("lmi", "exp1/mae_tx")].paper == 1.04
    assert cells[("l1", "exp1/mae_tx")].mean == 3.0
    markdown = to_markdown(table, cells)
    assert "**2 ± 1.41 (2)** / 1.04" in markdown  # lmi: lower MAE is better
    assert "not run / 3.44" in markdown
    statements = "\n".join(claims(table, cells))
    # lmi 2 ± 1.41 against l1 3 ± 0: Welch's p = 0.5, so no verdict, and the seeds a verdict would need
    expected = "Exp1 MAE_tx (px): lmi best — **undecided** (lmi 2 ± 1.41 (2) vs l1 3 ± 0 (2); Δ = -1"
    assert expected in statements
    assert "p = 0.500; p ≥ 0.05; 80 % power needs 17 seeds per arm" in statements


def _claims_for(tmp_path: Path, lmi: list[float], l1: list[float]) -> str:
    for seed, value in enumerate(lmi):
        _write_run(tmp_path / f"lmi{seed}", "exp1_bar", "lmi", 11, seed, {"test/mae_tx": value})
    for seed, value in enumerate(l1):
        _write_run(tmp_path / f"l1{seed}", "exp1_bar", "l1", None, seed, {"test/mae_tx": value})
    table = TABLES["deepmi-table1"]
    return "\n".join(claims(table, assemble(table, load_runs(tmp_path))))


def test_a_claim_is_decided_by_welchs_test_and_the_one_percent_margin(tmp_path: Path) -> None:
    text = _claims_for(tmp_path / "holds", lmi=[1.0, 1.2, 1.1], l1=[3.0, 3.2, 3.1])
    expected = "lmi best — **holds** (lmi 1.1 ± 0.1 (3) vs l1 3.1 ± 0.1 (3); "
    expected += "Δ = -2 [-2.23, -1.77], p < 0.001)"
    assert expected in text
    text = _claims_for(tmp_path / "fails", lmi=[3.0, 3.2, 3.1], l1=[1.0, 1.2, 1.1])
    assert "lmi best — **does not hold** (lmi 3.1 ± 0.1 (3) vs l1 1.1 ± 0.1 (3); Δ = 2" in text
    # two seeds each, a gap of seven standard errors: Welch's p = 0.019 (df 2) is significant
    text = _claims_for(tmp_path / "two", lmi=[1.0, 1.2], l1=[2.0, 2.2])
    assert "lmi best — **holds**" in text and "p = 0.019" in text
    # significant (the seeds agree exactly) but under 1 % of the value: a tie at chance
    text = _claims_for(tmp_path / "chance", lmi=[49.5, 49.5], l1=[49.4, 49.4])
    assert "**undecided** (lmi 49.5 ± 0 (2) vs l1 49.4 ± 0 (2)" in text
    assert "gap under 1% of the value" in text
    # a large gap against a single-seed rival is still no verdict: no test on one seed
    text = _claims_for(tmp_path / "one_seed", lmi=[3.0, 3.2], l1=[1.0])
    assert "lmi best — **undecided** (lmi 3.1 ± 0.141 (2) vs l1 1 (1); one seed: no test possible)" in text


def test_missing_cells_name_the_rows_and_the_command_that_fills_them(tmp_path: Path) -> None:
    for seed in (0, 1):
        _write_run(tmp_path / "exp1_bar" / f"lmi{seed}", "exp1_bar", "lmi", 11, seed, {"test/mae_tx": 1.0})
    _write_run(tmp_path / "exp1_bar" / "l1", "exp1_bar", "l1", None, 0, {"test/mae_tx": 2.0})
    table = TABLES["deepmi-table1"]
    runs = load_runs(tmp_path)
    lines = missing_cells(table, assemble(table, runs), runs)
    by_experiment = {line.split(":")[0]: line for line in lines}
    assert set(by_experiment) == {"- exp1_bar", "- exp2_mask", "- exp3_depth"}
    exp1 = by_experiment["- exp1_bar"]
    assert "l1 (1 of 2 seeds)" in exp1 and "l2 (0 of 2 seeds)" in exp1 and "lmi (" not in exp1
    assert f"loss=l1,l2,ssim,ssim_l2,mi seed=0,1 hydra.sweep.dir={tmp_path / 'exp1_bar'}" in exp1
    assert f"hydra.sweep.dir={tmp_path / 'exp3_depth'}" in by_experiment["- exp3_depth"]
    bins = TABLES["deepmi-table2"]
    exp1_bins = missing_cells(bins, assemble(bins, runs), runs)[0]
    assert "loss=lmi loss.bins=3,15,25 seed=0,1" in exp1_bins


def test_fill_commands_keep_records_beside_the_committed_ones_for_every_experiment(tmp_path: Path) -> None:
    # records copied into the repository: the run itself lived elsewhere (config.paths.output_dir)
    for seed in (0, 1):
        folder = tmp_path / "records" / "exp1_bar" / f"lmi{seed}"
        _write_run(folder, "exp1_bar", "lmi", 11, seed, {"test/mae_tx": 1.0})
        record = json.loads((folder / "metrics.json").read_text())
        record["config"]["paths"] = {"output_dir": str(tmp_path / "runs" / "exp1_bar" / f"lmi{seed}")}
        (folder / "metrics.json").write_text(json.dumps(record))
    table = TABLES["deepmi-table1"]
    runs = load_runs(tmp_path / "records")
    by_experiment = {line.split(":")[0]: line for line in missing_cells(table, assemble(table, runs), runs)}
    assert f"records_dir={tmp_path / 'records' / 'exp1_bar'} " in by_experiment["- exp1_bar"]
    # experiments without any record yet: their records go next to exp1's, never nowhere
    assert f"hydra.sweep.dir={tmp_path / 'runs' / 'exp2_mask'} " in by_experiment["- exp2_mask"]
    assert f"records_dir={tmp_path / 'records' / 'exp2_mask'} " in by_experiment["- exp2_mask"]
    assert f"records_dir={tmp_path / 'records' / 'exp3_depth'} " in by_experiment["- exp3_depth"]


def test_a_table_without_any_run_gives_no_fill_command_that_would_run_the_wrong_scale() -> None:
    table = TABLES["deepmi-exp3-depth"]
    lines = missing_cells(table, assemble(table, []), [])
    assert lines == ["- exp3_depth: no runs yet; the commands given with this table fill it."]


def test_fill_commands_keep_the_overrides_every_run_shares(tmp_path: Path) -> None:
    """A budget probe's records (trainer.max_epochs=20 in their folder names): the fill command
    runs the missing losses at the same budget, and an override only some runs had is left out."""
    name = (
        "dataset=middlebury_motorcycle,debug=cpu,experiment=exp3_depth,loss={},seed=0,trainer.max_epochs=20"
    )
    _write_run(tmp_path / name.format("lmi"), "exp3_depth", "lmi", 11, 0, {"test/mae_depth_m": 1.0})
    odd = name.format("l1") + ",lr_by_loss.l1=0.001"
    _write_run(tmp_path / odd, "exp3_depth", "l1", None, 0, {"test/mae_depth_m": 2.0})
    table = TABLES["deepmi-exp3-depth"]
    runs = load_runs(tmp_path)
    (line,) = missing_cells(table, assemble(table, runs), runs)
    assert "loss=l2,ssim,ssim_l2,mi seed=0 trainer.max_epochs=20 " in line
    assert "lr_by_loss" not in line


def test_reproduce_deepmi_table1_smoke_end_to_end(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = [
        sys.executable, str(REPO_ROOT / "scripts" / "reproduce.py"), "deepmi-table1",
        "--scale", "smoke", "--seeds", "0", "--runs-dir", str(runs),
        "--records-dir", str(tmp_path / "records"), "--", "logger=csv",
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = list(csv.DictReader((runs / "smoke" / "tables" / "deepmi-table1.csv").open()))
    table = TABLES["deepmi-table1"]
    assert len(rows) == len(table.rows) * len(table.columns)
    assert all(row["n"] == "1" for row in rows), [r for r in rows if r["n"] != "1"]
    # every finished run's record was copied for the repository, without the machine's paths
    records = sorted((tmp_path / "records" / "smoke").glob("*/*/metrics.json"))
    assert len(records) == len(table.rows) * 3
    assert all(str(REPO_ROOT) not in p.read_text() for p in records)
    assert assemble(table, load_runs(tmp_path / "records" / "smoke")).keys() == {
        (row, c.key) for row in table.rows for c in table.columns
    }

    # a second launch finds every cell finished and leaves them alone
    stamps = {p: p.stat().st_mtime for p in runs.rglob("metrics.json")}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert {p: p.stat().st_mtime for p in runs.rglob("metrics.json")} == stamps


def test_toy_summary_averages_seeds_and_bolds_the_smallest_gradient_error(tmp_path: Path) -> None:
    from scripts.make_tables import main as make_tables

    for seed, (mine, mige) in enumerate([(1.0, 0.2), (3.0, 0.4)]):
        folder = tmp_path / f"toy{seed}"
        folder.mkdir()
        record = {
            "experiment": "mige_toy", "loss": None, "bins": None, "seed": seed, "status": "finished",
            "metrics": {"grad_rmse/mine/d5": mine, "grad_rmse/mige/d5": mige, "mi_rmse/mine/d5": 0.5},
            "wall_time_s": 60.0, "environment": {"device": "cpu"},
            "config": {"module": {"n_rhos": 9, "rho_min": -0.8, "rho_max": 0.8}},
        }  # fmt: skip
        (folder / "metrics.json").write_text(json.dumps(record))
    [md] = make_tables([str(tmp_path), "--tables", "mige-fig1"])
    text = md.read_text()
    assert "| 5 | 2 ± 1.41 (2) | — | **0.3 ± 0.141 (2)** | 0.5 ± 0 (2) | — |" in text
    assert "seeds [0, 1]; total wall time 2.0 min" in text
    rows = list(csv.DictReader(md.with_suffix(".csv").open()))
    assert {"quantity": "grad_rmse", "estimator": "mine", "d": "5", "values": "1 3"} in rows


def test_reproduce_mige_fig1_smoke_writes_the_figure_and_its_table(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = [
        sys.executable, str(REPO_ROOT / "scripts" / "reproduce.py"), "mige-fig1",
        "--scale", "smoke", "--seeds", "0", "1", "--runs-dir", str(runs), "--no-records", "--", "logger=none",
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = runs / "smoke" / "tables"
    assert sorted(p.name for p in out.glob("mige-fig1-*.png")) == [
        f"mige-fig1-debug=smoke,experiment=mige_toy,seed={s}-mige_toy.png" for s in (0, 1)
    ]
    assert "(2)** |" in (out / "mige-fig1.md").read_text()  # the best of two seeds, in bold


def test_baseline_rows_and_failed_runs_are_shown(tmp_path: Path) -> None:
    from experiments.reporting.results import baseline_cells, load_unfinished

    metrics = {"test/mae_tx": 2.0, "test/baseline_mae_tx": 24.0, "test/baseline_mae_theta": 19.0}
    _write_run(tmp_path / "lmi0", "exp1_bar", "lmi", 11, 0, metrics)
    _write_run(tmp_path / "l1", "exp1_bar", "l1", None, 0, {"test/mae_tx": 3.0, "test/baseline_mae_tx": 24.0})
    _write_run(tmp_path / "l2", "exp1_bar", "l2", None, 0, {})
    record = json.loads((tmp_path / "l2" / "metrics.json").read_text())
    record.update(status="diverged", diverged_at_step=3)
    del record["metrics"]
    (tmp_path / "l2" / "metrics.json").write_text(json.dumps(record))
    table = TABLES["deepmi-table1"]
    runs, failed = load_runs(tmp_path), load_unfinished(tmp_path)
    markdown = to_markdown(table, assemble(table, runs, failed), baseline_cells(table, runs))
    assert "| *baseline: predict (0, 0)* | *24* | *19* | — |" in markdown
    assert "| l2 | diverged / 1.93 |" in markdown.replace(" 1 diverged", " diverged")


def test_a_diverged_seed_counts_as_run_and_is_named_in_missing_cells(tmp_path: Path) -> None:
    from experiments.reporting.results import load_unfinished

    for seed in (0, 1, 2):
        _write_run(tmp_path / f"lmi{seed}", "exp1_bar", "lmi", 11, seed, {"test/mae_tx": 1.0})
    for seed in (0, 1):
        _write_run(tmp_path / f"l1{seed}", "exp1_bar", "l1", None, seed, {"test/mae_tx": 2.0})
    for loss in ("l1", "l2"):  # l1 seed 2 and l2 seed 0 diverged
        folder = tmp_path / f"{loss}_diverged"
        _write_run(folder, "exp1_bar", loss, None, 2 if loss == "l1" else 0, {})
        record = json.loads((folder / "metrics.json").read_text())
        record.update(status="diverged", diverged_at_step=3)
        (folder / "metrics.json").write_text(json.dumps(record))
    table = TABLES["deepmi-table1"]
    runs = load_runs(tmp_path)
    line = missing_cells(table, assemble(table, runs, load_unfinished(tmp_path)), runs)[0]
    assert line.startswith("- exp1_bar:")
    assert "l1 (" not in line  # two finished seeds and a diverged one: nothing to fill
    assert "l2 (0 of 3 seeds, 1 diverged)" in line and "ssim (0 of 3 seeds)" in line


def test_results_blocks_regenerate_from_records(tmp_path: Path) -> None:
    from experiments.reporting.render import render_block, update_results

    records = tmp_path / "runs"
    _write_run(records / "paper" / "exp1_bar" / "lmi0", "exp1_bar", "lmi", 11, 0, {"test/mae_tx": 1.5})
    doc = tmp_path / "RESULTS.md"
    block = "<!-- make_tables: paper/deepmi-table1 -->\nSTALE-TEXT\n<!-- /make_tables -->"
    doc.write_text(f"intro\n{block}\nend\n")
    assert update_results(doc, records, check=True) == ["paper/deepmi-table1"]
    assert doc.read_text().count("STALE-TEXT") == 1  # check mode writes nothing
    assert update_results(doc, records) == ["paper/deepmi-table1"]
    assert "**1.5 (1)** / 1.04" in doc.read_text() and "STALE-TEXT" not in doc.read_text()
    assert update_results(doc, records, check=True) == []
    assert doc.read_text().startswith("intro\n") and doc.read_text().endswith("end\n")
    assert render_block("paper/deepmi-table1", records) in doc.read_text()


def test_seeds_that_do_not_beat_the_baseline_are_counted_not_hidden(tmp_path: Path) -> None:
    for seed, value in enumerate([2.0, 48.0, 3.0]):  # one seed stuck at the identity-warp baseline
        metrics = {"test/mae_tx": value, "test/baseline_mae_tx": 47.5}
        _write_run(tmp_path / f"lmi{seed}", "exp1_bar", "lmi", 11, seed, metrics)
    table = TABLES["deepmi-table1"]
    cells = assemble(table, load_runs(tmp_path))
    assert cells[("lmi", "exp1/mae_tx")].at_baseline == 1
    assert cells[("lmi", "exp1/mae_tx")].learned == [2.0, 3.0]
    # the failed seed is counted, and the seeds that learned get their own mean (2.5, std 0.707)
    assert "[1 of 3 at baseline; the other 2: 2.5 ± 0.707 (2)]" in to_markdown(table, cells)
    statements = "\n".join(claims(table, cells))
    assert "lmi 1 of 3 at baseline; the other 2: 2.5 ± 0.707 (2) (bimodal cells" in statements
    assert cells[("lmi", "exp1/mae_tx")].beats == [True, False, True]


def test_a_claim_between_bimodal_cells_compares_success_rates(tmp_path: Path) -> None:
    base = {"test/baseline_mae_tx": 40.0}
    for seed in range(6):  # lmi learns on every seed, l1 on one of six
        _write_run(tmp_path / f"lmi{seed}", "exp1_bar", "lmi", 11, seed, {"test/mae_tx": 2.0 + seed, **base})
        l1 = 1.0 if seed == 0 else 45.0
        _write_run(tmp_path / f"l1{seed}", "exp1_bar", "l1", None, seed, {"test/mae_tx": l1, **base})
    table = TABLES["deepmi-table1"]
    text = "\n".join(claims(table, assemble(table, load_runs(tmp_path))))
    assert "Exp1 MAE_tx (px): lmi best — **holds**" in text
    assert "learned 6/6 vs 1/6, Fisher p = 0.015" in text


def test_seed_plot_keeps_every_seed_and_the_baselines(tmp_path: Path) -> None:
    from scripts.plot_seeds import baselines, main, seed_values

    base = {"test/baseline_everywhere_iou_0.05": 0.07, "test/baseline_nowhere_iou_0.05": 0.0}
    for seed, value in enumerate([0.9, 0.0, 0.8]):  # lmi at N=25: one seed fails
        _write_run(tmp_path / f"lmi25_{seed}", "exp2_mask", "lmi", 25, seed, {"test/iou_0.05": value, **base})
    _write_run(tmp_path / "lmi11", "exp2_mask", "lmi", 11, 0, {"test/iou_0.05": 0.7, **base})
    _write_run(tmp_path / "l1", "exp2_mask", "l1", None, 1, {"test/iou_0.05": 0.6, **base})
    runs = load_runs(tmp_path)
    assert seed_values(runs, "test/iou_0.05") == {
        "lmi N=25": [(0, 0.9), (1, 0.0), (2, 0.8)],  # not averaged: the failed seed stays visible
        "lmi": [(0, 0.7)],  # the default bin count is the plain loss row
        "l1": [(1, 0.6)],
    }
    assert baselines(runs, "test/iou_0.05") == {"mask everywhere": 0.07, "mask nowhere": 0.0}
    out = main([str(tmp_path), "--metric", "test/iou_0.05", "--out", str(tmp_path / "seeds.png")])
    assert out.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(SystemExit):  # a metric no record has is an error, not an empty figure
        main([str(tmp_path), "--metric", "test/iou_0.99", "--out", str(tmp_path / "none.png")])


def test_seed_plot_compares_sweeps_kept_in_sibling_folders_by_a_config_key(tmp_path: Path) -> None:
    from experiments.reporting.setting_sweep import label_order
    from scripts.plot_seeds import main, seed_values

    for epochs, values in ((1, [0.5, 0.6]), (10, [0.8, 0.9])):
        for seed, value in enumerate(values):  # the same loss and seeds in two sweeps
            folder = tmp_path / f"ep{epochs}" / f"l1_{seed}"
            _write_run(folder, "exp2_mask", "l1", None, seed, {"test/iou_0.05": value})
            record = json.loads((folder / "metrics.json").read_text())
            record["config"]["trainer"]["max_epochs"] = epochs
            (folder / "metrics.json").write_text(json.dumps(record))
    runs = load_runs(tmp_path / "ep1") + load_runs(tmp_path / "ep10")
    assert seed_values(runs, "test/iou_0.05", ["trainer.max_epochs"]) == {
        "l1 max_epochs=1": [(0, 0.5), (1, 0.6)],
        "l1 max_epochs=10": [(0, 0.8), (1, 0.9)],
    }
    # numeric order of the key's values, bin counts before them
    labels = ["lmi N=25 lr=0.001", "lmi lr=0.01", "lmi lr=0.001", "lmi lr=1e-05"]
    assert sorted(labels, key=label_order) == [
        "lmi lr=1e-05",
        "lmi lr=0.001",
        "lmi lr=0.01",
        "lmi N=25 lr=0.001",
    ]
    out = tmp_path / "sweep.png"
    folders = [str(tmp_path / "ep1"), str(tmp_path / "ep10")]
    main([*folders, "--metric", "test/iou_0.05", "--label-key", "trainer.max_epochs", "--out", str(out)])
    assert out.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(SystemExit):  # a key no record has is named, not plotted as "None"
        main([*folders, "--metric", "test/iou_0.05", "--label-key", "trainer.lr", "--out", str(out)])
    with pytest.raises(SystemExit):  # an empty folder among several is an error too
        main([*folders, str(tmp_path / "empty"), "--metric", "test/iou_0.05", "--out", str(out)])


def test_a_setting_sweep_table_puts_sibling_folders_side_by_side(tmp_path: Path, monkeypatch) -> None:
    from dataclasses import replace

    from experiments.reporting import setting_sweep
    from experiments.reporting.render import render_block

    def write(folder: str, loss: str, bins: int | None, lr: float, seed: int, mae: float) -> None:
        path = tmp_path / folder / f"{loss}{bins}_{lr}_{seed}"
        _write_run(
            path, "exp3_depth", loss, bins, seed, {"test/mae_depth_m": mae, "test/baseline_mae_depth_m": 17.0}
        )
        record = json.loads((path / "metrics.json").read_text())
        record["config"]["module"] = {"optimizer": {"lr": lr}}
        (path / "metrics.json").write_text(json.dumps(record))

    for seed, (ssim, lmi50) in enumerate([(10.0, 8.0), (11.0, 9.0)]):
        write("base/exp3_depth", "ssim", None, 0.001, seed, ssim)
        write("base/exp3_depth", "lmi", 50, 0.001, seed, lmi50)
        write("tuned/exp3_depth", "ssim", None, 0.003, seed, ssim - 3.0)  # the same seeds, another lr
    write("tuned/exp3_depth", "ssim", None, 0.01, 0, 20.0)  # worse than the baseline: counted
    sweep = setting_sweep.SettingSweep(
        "t", ("base/exp3_depth", "tuned/exp3_depth"), "module.optimizer.lr", "deepmi-exp3-depth"
    )
    monkeypatch.setitem(setting_sweep.SETTING_SWEEPS, "t", sweep)
    text = render_block("sweep/t", tmp_path)
    rows = [
        line.split(" | ")[:2] for line in text.splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert rows == [
        ["| setting", "MAE (m)"],
        ["| lmi N=50 lr=0.001", "8.5 ± 0.707 (2)"],
        ["| ssim lr=0.001", "10.5 ± 0.707 (2)"],
        ["| ssim lr=0.003", "**7.5 ± 0.707 (2)**"],  # both seeds kept: not deduplicated across folders
        ["| ssim lr=0.01", "20 (1) [1 of 1 at baseline]"],
        ["| *baseline: median training depth*", "*17*"],
    ]
    assert "No records yet." in render_block("sweep/t", tmp_path / "elsewhere")
    monkeypatch.setitem(setting_sweep.SETTING_SWEEPS, "t", replace(sweep, only=("ssim",)))
    assert "lmi N=50" not in render_block("sweep/t", tmp_path)  # "ssim" keeps ssim rows only
    with pytest.raises(ValueError, match="unknown setting sweep 'nope'"):
        render_block("sweep/nope", tmp_path)


def test_curves_are_plotted_per_run_from_records(tmp_path: Path) -> None:
    from scripts.plot_curves import main as plot_curves
    from scripts.plot_curves import read_curves

    for loss, values in (("vib", [3.0, 2.0, 1.5]), ("mige_ib", [2.5, 1.8, 1.2])):
        _write_run(tmp_path / loss, "ib_mnist", loss, None, 0, {"test/error_pct": values[-1]})
        rows = "epoch,step,test_error_pct\n" + "".join(
            f"{i + 1},{600 * (i + 1)},{v}\n" for i, v in enumerate(values)
        )
        (tmp_path / loss / "curve.csv").write_text(rows)
    curves = read_curves(tmp_path)
    assert [(c["label"], c["values"]) for c in curves] == [
        ("mige_ib seed 0", [2.5, 1.8, 1.2]),
        ("vib seed 0", [3.0, 2.0, 1.5]),
    ]
    out = plot_curves([str(tmp_path), "--out", str(tmp_path / "curves.png")])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_chosen_curve_column_is_plotted_with_the_records_baseline(tmp_path: Path, capsys) -> None:
    from scripts.plot_curves import main as plot_curves
    from scripts.plot_curves import read_curves

    _write_run(
        tmp_path / "lmi", "exp3_depth", "lmi", 11, 0, {"test/epe_px": 1.5, "test/baseline_epe_px": 2.8}
    )
    (tmp_path / "lmi" / "curve.csv").write_text(
        "epoch,step,mae_depth_m,epe_px\n5,125,20.0,4.0\n10,250,12.0,1.5\n"
    )
    (curve,) = read_curves(tmp_path, "epe_px")
    assert (curve["metric"], curve["values"]) == ("epe_px", [4.0, 1.5])
    assert curve["baselines"] == {"median training depth": 2.8}
    assert read_curves(tmp_path)[0]["metric"] == "mae_depth_m" and read_curves(tmp_path)[0]["baselines"] == {}
    with pytest.raises(SystemExit):
        plot_curves([str(tmp_path), "--metric", "rmse", "--out", str(tmp_path / "x.png")])
    assert "has no column 'rmse'; it has mae_depth_m, epe_px" in capsys.readouterr().err
    out = plot_curves([str(tmp_path), "--metric", "epe_px", "--out", str(tmp_path / "epe.png")])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_depth_table_reports_every_standard_metric_and_names_the_real_pair_dataset(tmp_path: Path) -> None:
    """Exp3's depth table: the paper's MAE beside abs rel ... bad-3, each best picked in its own
    direction (delta higher is better, errors lower), and the fill command keeps a non-default dataset."""
    from experiments.reporting.tables import DEPTH_COLUMNS

    higher = {"test/delta1", "test/delta2", "test/delta3"}
    for seed in (0, 1):
        good = {c.metric: 0.9 if c.metric in higher else 0.5 for c in DEPTH_COLUMNS}
        bad = {c.metric: 0.2 + seed / 10 if c.metric in higher else 2.0 + seed / 10 for c in DEPTH_COLUMNS}
        _write_run(tmp_path / "exp3_depth" / f"lmi{seed}", "exp3_depth", "lmi", 11, seed, good)
        _write_run(tmp_path / "exp3_depth" / f"l1{seed}", "exp3_depth", "l1", None, seed, bad)
    runs = load_runs(tmp_path)
    for run in runs:
        run["config"]["dataset"]["_target_"] = "deepmi.data.middlebury.MiddleburyMotorcycle"
    table = TABLES["deepmi-exp3-depth"]
    cells = assemble(table, runs)
    header, _, *rows = to_markdown(table, cells).splitlines()
    for title in ("MAE (m)", "abs rel", "RMSE log", "δ<1.25", "EPE (px)", "bad-1 (%)", "bad-3 (%)"):
        assert f" {title} " in header
    lmi_row = next(r for r in rows if r.startswith("| lmi "))
    l1_row = next(r for r in rows if r.startswith("| l1 "))
    # lmi best in every column: lowest errors, highest delta (a reversed direction would bold l1)
    assert lmi_row.count("**") == 2 * len(DEPTH_COLUMNS) and "**" not in l1_row
    assert cells[("lmi", "exp3/mae_depth_m")].paper == 0.27  # only MAE has a paper number
    assert cells[("lmi", "exp3/abs_rel")].paper is None
    text = "\n".join(claims(table, cells))
    assert "MAE (m): lmi best — **holds**" in text and "abs rel" not in text
    (command,) = missing_cells(table, cells, runs)
    assert "experiment=exp3_depth dataset=middlebury_motorcycle loss=l2,ssim,ssim_l2,mi seed=0,1" in command


def test_fill_commands_name_a_dataset_only_when_it_is_not_the_experiments_default() -> None:
    from experiments.reporting.results import _dataset_override

    def runs(target: str) -> list[dict]:
        return [{"config": {"dataset": {"_target_": target}}}]

    # exp1_bar takes config.yaml's dataset (bar), exp3_depth overrides it (synthetic_stereo)
    assert _dataset_override("exp1_bar", runs("deepmi.data.bar.BarAlignmentDataset")) == []
    assert _dataset_override("exp3_depth", runs("deepmi.data.synthetic_stereo.SyntheticStereoDataset")) == []
    middlebury = runs("deepmi.data.middlebury.MiddleburyMotorcycle")
    assert _dataset_override("exp3_depth", middlebury) == ["dataset=middlebury_motorcycle"]


def test_an_ablation_across_folders_is_labelled_by_its_config_key(tmp_path: Path) -> None:
    from scripts.plot_curves import main as plot_curves
    from scripts.plot_curves import read_curves

    for folder, bound in (("godard", 0.3), ("ndisp", 0.0911)):
        run = tmp_path / folder / "lmi"
        _write_run(run, "exp3_depth", "lmi", 11, 0, {"test/epe_px": 3.0})
        record = json.loads((run / "metrics.json").read_text())
        record["config"]["model"] = {"max_disparity": bound}
        (run / "metrics.json").write_text(json.dumps(record))
        (run / "curve.csv").write_text(f"epoch,step,epe_px\n5,125,{10 * bound}\n")
    labels = [
        c["label"]
        for f in ("godard", "ndisp")
        for c in read_curves(tmp_path / f, label_key="model.max_disparity")
    ]
    assert labels == ["lmi max_disparity=0.3 seed 0", "lmi max_disparity=0.0911 seed 0"]
    from scripts.plot_curves import check_label_key

    # a key some runs lack groups them by their loss alone; a key no run has is a typo, named
    curves = read_curves(tmp_path / "godard", label_key="model.widths")
    assert [c["label"] for c in curves] == ["lmi seed 0"]
    with pytest.raises(ValueError, match="no run's config has 'model.widths'"):
        check_label_key(curves, "model.widths")
    out = plot_curves(
        [
            str(tmp_path / "godard"),
            str(tmp_path / "ndisp"),
            "--label-key",
            "model.max_disparity",
            "--out",
            str(tmp_path / "a.png"),
        ]
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fill_commands_restore_the_records_setting_after_the_defaults_changed(tmp_path: Path) -> None:
    """The 20-epoch Middlebury probe ran with 200 crops and Godard's bound 0.3, both since changed
    for debug=cpu: its fill command must say so, and compose to the probe's own fingerprint."""
    from experiments.reporting.config_drift import composed_result_config, override_value
    from experiments.runner.fingerprint import fingerprint

    (source,) = (REPO_ROOT / "results" / "runs" / "middlebury_20ep" / "exp3_depth").glob("*/metrics.json")
    folder = tmp_path / "middlebury_20ep" / "exp3_depth" / source.parent.name
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(source.read_text())
    record = json.loads(source.read_text())
    table = TABLES["deepmi-exp3-depth"]
    runs = load_runs(tmp_path)
    (line,) = missing_cells(table, assemble(table, runs), runs)
    for override in ("dataset.n_train=200", "model.max_disparity=0.3", "trainer.max_epochs=20"):
        assert f" {override} " in line, line
    command = line.split("`")[1].split()
    overrides = [o for o in command[3:] if "=" in o and not o.startswith(("loss=", "hydra.", "records_dir"))]
    lmi = composed_result_config([*overrides, "loss=lmi"])
    assert fingerprint(lmi) == record["config_fingerprint"]
    # without the drift overrides today's debug=cpu is another run
    today = [o for o in overrides if not o.startswith(("dataset.n_train", "model.max_disparity"))]
    assert fingerprint(composed_result_config([*today, "loss=lmi"])) != record["config_fingerprint"]
    assert [override_value(v) for v in (0.3, 200, True, None, "bilinear", [16, 32], "a b")] == [
        "0.3", "200", "true", "null", "bilinear", "[16,32]", '"a b"'
    ]  # fmt: skip


def test_a_table_whose_runs_ran_under_different_settings_says_so(tmp_path: Path) -> None:
    from experiments.reporting.results import mixed_settings, scale_summary

    for seed, bound in ((0, 0.3), (1, 0.0911), (2, 0.0911)):
        folder = tmp_path / f"lmi{seed}"
        _write_run(folder, "exp3_depth", "lmi", 11, seed, {"test/mae_depth_m": 1.0})
        record = json.loads((folder / "metrics.json").read_text())
        record["config_fingerprint"] = f"f{seed}"
        record["config"]["model"] = {"max_disparity": bound}
        record["config"]["seed"] = seed  # per run by design: never reported
        (folder / "metrics.json").write_text(json.dumps(record))
    runs = load_runs(tmp_path)
    assert mixed_settings(runs) == ["model.max_disparity (0.3: 1, 0.0911: 2)"]
    summary = "\n".join(scale_summary(TABLES["deepmi-exp3-depth"], runs))
    assert "**not one setting**: the runs differ in model.max_disparity (0.3: 1, 0.0911: 2)" in summary
    assert mixed_settings([r for r in runs if r["seed"] > 0]) == []


def test_a_bin_count_beyond_the_papers_gets_its_own_row_where_it_was_run(tmp_path: Path) -> None:
    for seed in (0, 1):
        _write_run(tmp_path / f"n11_{seed}", "exp3_depth", "lmi", 11, seed, {"test/mae_depth_m": 10.0 + seed})
        _write_run(tmp_path / f"n50_{seed}", "exp3_depth", "lmi", 50, seed, {"test/mae_depth_m": 8.0 + seed})
    _write_run(tmp_path / "n50_ssim", "exp3_depth", "ssim", 50, 0, {"test/mae_depth_m": 1.0})  # not L_LMI
    _write_run(tmp_path / "exp1", "exp1_bar", "lmi", 11, 0, {"test/mae_tx": 1.0})
    runs = load_runs(tmp_path)
    markdown = render_table("deepmi-table2", runs)
    rows = [line.split(" | ")[0] for line in markdown.splitlines() if line.startswith("| ")]
    assert rows[1:6] == ["| 3", "| 11", "| 15", "| 25", "| 50"]  # numeric order, after the header
    assert "8.5 ± 0.707 (2)" in markdown
    missing = {line.split(":")[0]: line for line in markdown.splitlines() if line.startswith("- exp")}
    # N = 50 ran for Exp3 only: Exp1 is not asked to fill it, Exp3's paper rows still are
    assert "50 (" not in missing["- exp1_bar"] and "3 (0 of" in missing["- exp1_bar"]
    assert "50 (" not in missing["- exp3_depth"] and "loss.bins=3,15,25 " in missing["- exp3_depth"]
    # the Table 1 view of the same runs has no bins rows to add
    assert with_run_rows(TABLES["deepmi-table1"], runs) is TABLES["deepmi-table1"]


def test_the_scale_line_names_the_datas_own_seed(tmp_path: Path) -> None:
    _write_run(tmp_path / "run", "exp3_depth", "ssim", None, 0, {"test/mae_depth_m": 9.0})
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    record["config"]["dataset"] = {"n_train": 200, "seed": 999}
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(record))
    markdown = render_table("deepmi-exp3-depth", load_runs(tmp_path))
    assert "n_train=200, data seed=999; epochs=1; seeds=[0]" in markdown
