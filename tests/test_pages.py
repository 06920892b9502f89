"""The results pages are what the records print, their prose carries no hand-typed measured
number, and a reader finds each claim once (RESULTS.md, results/*.md, README.md, docs/verdicts.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from experiments.reporting.claims import CLAIMS_FILE, load_claims
from experiments.reporting.pages import cell_value, pages, render_value, untied_numbers, update_values
from experiments.reporting.render import update_results
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_page_is_what_the_committed_records_print(page: Path) -> None:
    stale = update_results(page, check=True)
    assert not stale, f"{page.name} is out of date ({stale}): run python scripts/make_tables.py --pages"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_page_carries_a_measured_number_typed_by_hand(page: Path) -> None:
    untied = untied_numbers(page.read_text())
    assert not untied, f"{page.name}: render these from records (<!-- v:... -->) or a block:\n" + "\n".join(
        untied
    )


def test_the_front_pages_are_short_and_headings_unique_across_the_results_pages() -> None:
    assert len((REPO_ROOT / "RESULTS.md").read_text().splitlines()) <= 300
    assert len((REPO_ROOT / "README.md").read_text().splitlines()) <= 120
    seen: dict[str, str] = {}
    duplicates = []
    for page in [REPO_ROOT / "RESULTS.md", *sorted((REPO_ROOT / "results").glob("*.md"))]:
        for heading in re.findall(r"^#+ (.+)$", page.read_text(), re.M):
            if heading in seen:
                duplicates.append(f"{heading!r} in {seen[heading]} and {page.name}")
            seen[heading] = page.name
    assert not duplicates, duplicates


def test_no_results_page_is_a_diary() -> None:
    diary = re.compile(r"\b(this|last|earlier|previous|next) session\b|\byesterday\b|\btoday\b", re.I)
    found = [
        f"{page.name}: {m.group(0)!r}"
        for page in [REPO_ROOT / "RESULTS.md", *sorted((REPO_ROOT / "results").glob("*.md"))]
        for m in diary.finditer(page.read_text())
    ]
    assert not found, found


def test_every_claim_is_a_row_of_the_front_page_with_a_detail_page() -> None:
    text = (REPO_ROOT / "RESULTS.md").read_text()
    claims = load_claims()
    assert {c.id for c in claims} >= {
        "t1-exp1-tx",
        "t2-exp3-synthetic",
        "fig1-d20",
        "mige-t1-cifar10",
        "mige-t2",
    }
    for claim in claims:
        assert f"| {claim.title} |" in text, f"claim {claim.id} has no row in RESULTS.md"
        assert (REPO_ROOT / claim.detail).is_file(), f"claim {claim.id}: no page {claim.detail}"
        if claim.records is None:
            assert {"why", "command", "cost"} <= set(claim.missing), (
                f"{claim.id}: say why, how and at what cost"
            )


def test_a_claims_file_with_an_unknown_key_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "claims.yaml"
    bad.write_text("- {id: x, detail: d.md, data: y, table: deepmi-table1, column: exp1/mae_tx, record: z}\n")
    with pytest.raises(ValueError, match=r"unknown keys \['record'\]"):
        load_claims(bad)
    assert CLAIMS_FILE.is_file()


def test_untied_numbers_flags_typed_values_and_spares_generated_ones() -> None:
    prose = (
        "MAE 10.53 m over 5 seeds, 3 of 5 learned, 12 % better (DeepMI Sec. 5.3, Eq. 13, δ<1.25³).\n"
        "<!-- v:cell:a:b:c:mean -->10.1<!-- /v --> and `lr=0.001` and [x](results/a_0.5.md)\n"
        "<!-- make_tables: cpu/deepmi-table1 -->\n| 0.27 |\n<!-- /make_tables -->\n```\nrun 0.5\n```\n"
    )
    found = untied_numbers(prose)
    assert [f.split("'")[1] for f in found] == ["10.53", "5 seeds", "3 of 5", "12 %"]


def _record(folder: Path, loss: str, bins: int | None, seed: int, mae: float) -> None:
    folder.mkdir(parents=True)
    record = {
        "experiment": "exp3_depth", "loss": loss, "bins": bins, "seed": seed, "status": "finished",
        "config": {"loss": {"name": loss, "bins": bins}, "trainer": {"max_epochs": 1}},
        "metrics": {"test/mae_depth_m": mae, "test/baseline_mae_depth_m": 17.0},
        "environment": {"device": "cpu"},
    }  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(record))


def test_inline_values_render_from_records_and_name_what_is_wrong(tmp_path: Path) -> None:
    for seed, mae in enumerate([8.0, 9.0, 20.0]):
        _record(tmp_path / "cpu" / "exp3_depth" / f"lmi{seed}", "lmi", 50, seed, mae)
    _record(tmp_path / "cpu" / "exp3_depth" / "ssim0", "ssim", None, 0, 7.0)
    lmi50 = ("cpu/exp3_depth", "loss.name=lmi,loss.bins=50", "test/mae_depth_m")
    assert cell_value(*lmi50, "mean", tmp_path) == "12.3"
    assert cell_value(*lmi50, "mean±std", tmp_path) == "12.3 ± 6.66"
    assert cell_value(*lmi50, "n", tmp_path) == "3"
    assert cell_value(*lmi50, "learned", tmp_path) == "2 of 3"  # 20 m is worse than the baseline's 17
    assert cell_value("cpu/exp3_depth", "loss.name=ssim", "test/mae_depth_m", "mean", tmp_path) == "7"
    text = "MAE <!-- v:cell:cpu/exp3_depth:loss.name=ssim:test/mae_depth_m:mean -->STALE<!-- /v --> m"
    assert update_values(text, tmp_path) == text.replace("STALE", "7")
    assert render_value("rule:alpha") == "0.05" and render_value("rule:power") == "80 %"
    _record(tmp_path / "cpu" / "exp3_depth" / "ssim1", "ssim", None, 1, 7.5)
    compare = "compare:cpu/exp3_depth:loss.name=lmi,loss.bins=50:loss.name=ssim:test/mae_depth_m"
    effect = render_value(compare, tmp_path)
    assert effect.startswith("Δ = 5.08 [-11.4, 21.5]") and "p = 0.317" in effect  # scipy: 0.3169
    with pytest.raises(ValueError, match="no finished run"):
        cell_value("cpu/exp3_depth", "loss.name=l1", "test/mae_depth_m", "mean", tmp_path)
    with pytest.raises(ValueError, match="unknown stat"):
        cell_value(*lmi50, "median", tmp_path)
    with pytest.raises(ValueError, match="start it with claim:, cell:, compare: or rule:"):
        render_value("bogus:1")


def test_benchmark_csvs_carry_the_machine_and_render_as_a_table(tmp_path: Path) -> None:
    import csv

    from experiments.reporting.render import render_block
    from scripts.bench_mige import write_csvs

    out = tmp_path / "benchmarks" / "mige"
    rows = [{"M": 64, "fast_s": 0.001, "naive_s": 0.01}, {"M": 2048, "fast_s": 2.0, "naive_s": float("nan")}]
    write_csvs(out, rows, {"jsd": 0.5, "mige": 0.25}, d=64, repeats=3, step_repeats=5)
    ssge = list(csv.DictReader((out / "ssge.csv").open()))
    assert ssge[0]["naive / fast"] == "10.0" and ssge[1]["naive (s)"] == "not run"
    assert all(row["device"] and row["threads"] and row["torch"] and row["load"] for row in ssge)
    steps = list(csv.DictReader((out / "training_step.csv").open()))
    assert [row["ratio to jsd"] for row in steps] == ["1.00", "0.50"]
    table = render_block("csv/benchmarks/mige/training_step.csv", tmp_path / "runs")
    assert table.splitlines()[0].startswith("| objective | ms per step | ratio to jsd |")
    assert "| mige | 250.0 | 0.50 |" in table
    assert "No records yet" in render_block("csv/benchmarks/none.csv", tmp_path / "runs")


def test_a_setting_sweep_selects_rows_word_by_word() -> None:
    from experiments.reporting.setting_sweep import _selected

    assert _selected("lmi batch_size=4", "lmi batch") and _selected("lmi N=50 lr=0.003", "lmi N=50")
    assert not _selected("lmi N=3 batch_size=8", "lmi batch") and not _selected("mine_ib x=1", "mi")
    assert _selected("ssim lr=0.003", "ssim") and not _selected("ssim_l2 lr=0.003", "ssim")


def test_a_failed_run_is_shown_as_failed_not_as_missing(tmp_path: Path) -> None:
    from experiments.reporting.results import assemble, load_runs, load_unfinished, to_markdown
    from experiments.reporting.tables import TABLES

    _record(tmp_path / "lmi0", "lmi", 11, 0, 9.0)
    _record(tmp_path / "lmi1", "lmi", 11, 1, 9.5)
    record = json.loads((tmp_path / "lmi1" / "metrics.json").read_text())
    record.update(status="failed", error_type="RuntimeError", metrics={})
    (tmp_path / "lmi1" / "metrics.json").write_text(json.dumps(record))
    table = TABLES["deepmi-exp3-depth"]
    cells = assemble(table, load_runs(tmp_path), load_unfinished(tmp_path))
    assert cells[("lmi", "exp3/mae_depth_m")].failed == 1
    assert "| lmi | **9 (1)** + 1 failed / 0.27 | 1 failed |" in to_markdown(table, cells)


def test_pages_with_their_own_generator_are_what_it_prints() -> None:
    """results/mi_benchmark.md is written whole by scripts/bench_estimators.py; its --check compares."""
    import subprocess
    import sys

    from experiments.reporting.pages import OWN_GENERATOR, PAGES

    own = [(p, m["command"]) for p in PAGES if p.is_file() and (m := OWN_GENERATOR.search(p.read_text()))]
    assert own, "expected at least results/mi_benchmark.md"
    for page, command in own:
        proc = subprocess.run(
            [sys.executable, str(REPO_ROOT / command), "--check"], capture_output=True, text=True
        )
        assert proc.returncode == 0, f"{page.name} is stale: run python {command}\n{proc.stdout}{proc.stderr}"
