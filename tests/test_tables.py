"""Table assembly from metrics.json files, and the one-command reproduction end to end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from experiments.results import assemble, claims, load_runs, to_markdown
from experiments.tables import TABLES
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
    assert "Exp1 MAE_tx (px): lmi best — **holds**" in statements


def test_reproduce_deepmi_table1_smoke_end_to_end(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    command = [
        sys.executable, str(REPO_ROOT / "scripts" / "reproduce.py"), "deepmi-table1",
        "--scale", "smoke", "--seeds", "0", "--runs-dir", str(runs), "--", "logger=csv",
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = list(csv.DictReader((runs / "smoke" / "tables" / "deepmi-table1.csv").open()))
    table = TABLES["deepmi-table1"]
    assert len(rows) == len(table.rows) * len(table.columns)
    assert all(row["n"] == "1" for row in rows), [r for r in rows if r["n"] != "1"]

    # a second launch finds every cell finished and leaves them alone
    stamps = {p: p.stat().st_mtime for p in runs.rglob("metrics.json")}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert {p: p.stat().st_mtime for p in runs.rglob("metrics.json")} == stamps
