"""scripts/bench_estimators.py on a tiny task set: it runs, writes one record per cell, resumes
without recomputing, renders the published numbers apart from ours, and --check detects a stale page."""

from __future__ import annotations

import json

import pytest

from scripts import bench_estimators as bench

TASK = "halfcube-sparse-3x3-2pair-0.8"  # in both the MI and the gradient task lists


def _args(tmp_path, *extra: str) -> list[str]:
    return [
        "--tiny", "--no-progress", "--tasks", TASK,
        "--estimators", "ksg", "mine", "infonce", "mige", "mige_proj", "mige_iii",
        "--records", str(tmp_path / "records"), "--page", str(tmp_path / "page.md"),
        "--figure", str(tmp_path / "fig.png"), "--published", str(tmp_path / "published.yaml"), *extra,
    ]  # fmt: skip


@pytest.fixture()
def ran(tmp_path, capsys):
    (tmp_path / "published.yaml").write_text(
        "source: a test paper\nnumbers:\n  half_cube-multinormal-sparse-3-3-2-2.0:\n"
        "    ksg: {value: 0.987, source: Table 9}\n"
    )
    assert bench.main(_args(tmp_path)) == 0
    capsys.readouterr()
    return tmp_path


def test_script_writes_one_record_per_cell_and_the_page(ran):
    mi = sorted(p.name for p in (ran / "records" / "mi").glob("*.json"))
    grad = sorted(p.name for p in (ran / "records" / "grad").glob("*.json"))
    assert mi == [f"{TASK}__{e}__s0.json" for e in ("infonce", "ksg", "mine")]
    assert grad == [f"{TASK}__{e}__s0.json" for e in ("infonce", "mige", "mige_iii", "mige_proj", "mine")]
    record = json.loads((ran / "records" / "grad" / f"{TASK}__mige__s0.json").read_text())
    assert record["truth"] == pytest.approx([2 * r / (1 - r * r) for r in bench.TINY_CONFIG["rhos"]])
    assert record["circumstance"] == "I" and len(record["estimates"]) == len(record["rhos"])
    assert {"cpu", "threads", "torch", "date"} <= set(record["env"])
    page = (ran / "page.md").read_text()
    ksg = json.loads((ran / "records" / "mi" / f"{TASK}__ksg__s0.json").read_text())["estimate"]
    assert f"{ksg:.2f}" in page
    assert "KSG 0.99; MINE not transcribed" in page  # the published value, in its own column
    assert (ran / "fig.png").stat().st_size > 0


def test_rerun_skips_finished_cells_and_recomputes_a_missing_one(ran, capsys):
    record = ran / "records" / "mi" / f"{TASK}__mine__s0.json"
    before = {p: p.stat().st_mtime_ns for p in ran.glob("records/*/*.json")}
    assert bench.main(_args(ran)) == 0
    assert "ran 0 cells" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in ran.glob("records/*/*.json")} == before
    record.unlink()
    assert bench.main(_args(ran)) == 0
    assert "ran 1 cells" in capsys.readouterr().out
    assert record.exists()


def test_check_passes_on_a_fresh_page_and_fails_on_a_stale_one(ran, capsys):
    assert bench.main(_args(ran, "--check")) == 0
    page = ran / "page.md"
    page.write_text(page.read_text().replace("| KSG |", "| KSG (edited) |"))
    assert bench.main(_args(ran, "--check")) == 1
    assert "stale" in capsys.readouterr().out
    assert bench.main(_args(ran, "--render-only")) == 0
    assert bench.main(_args(ran, "--check")) == 0
    # a new record makes the committed page stale too
    extra = ran / "records" / "mi" / f"{TASK}__ksg__s0.json"
    rec = json.loads(extra.read_text())
    rec["seed"] = 1
    (ran / "records" / "mi" / f"{TASK}__ksg__s1.json").write_text(json.dumps(rec))
    assert bench.main(_args(ran, "--check")) == 1


def test_unknown_task_is_rejected(tmp_path):
    with pytest.raises(SystemExit):
        bench.main(["--tiny", "--tasks", "no-such-task", "--records", str(tmp_path)])
