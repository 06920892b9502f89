"""Paper tables as files: markdown + CSV per table, and the generated blocks of RESULTS.md."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from experiments import REPO_ROOT
from experiments.reporting.claims import claims_table, not_run_list, summary_counts
from experiments.reporting.pages import update_values
from experiments.reporting.results import (
    assemble,
    baseline_cells,
    claims,
    load_runs,
    load_unfinished,
    missing_cells,
    scale_summary,
    to_markdown,
    with_run_rows,
)
from experiments.reporting.setting_sweep import render_setting_sweep
from experiments.reporting.tables import TABLES
from experiments.reporting.toy_summary import toy_markdown, toy_rows

FIGURE_TABLES = ("mige-fig1",)


def render_table(
    name: str, runs: list[dict], unfinished: list[dict] = (), cells: dict | None = None, where: str = ""
) -> str:
    """The markdown of one paper table from run records (what the results pages embed); ``where``
    names the records folder in the heading, so headings stay unique across pages."""
    table = with_run_rows(TABLES[name], runs)
    cells = assemble(table, runs, unfinished) if cells is None else cells
    parts = [
        f"### {table.name}" + (f" (records: {where})" if where else ""),
        "",
        "Each cell: ours mean ± std (number of seeds) / the paper's value; best of ours per column in bold.",
        "",
        to_markdown(table, cells, baseline_cells(table, runs)),
        "",
        "Scale of our runs:",
        *scale_summary(table, runs),
        "",
        "The paper's best per column, checked against ours:",
        *claims(table, cells),
        "",
    ]
    missing = missing_cells(table, cells, runs)
    if missing:
        parts += ["Missing cells (rows with fewer seeds than the table's runs, or none):", *missing, ""]
    return "\n".join(parts)


def write_table(name: str, runs: list[dict], out_dir: Path, unfinished: list[dict] = ()) -> Path:
    table = with_run_rows(TABLES[name], runs)
    cells = assemble(table, runs, unfinished)
    md = out_dir / f"{name}.md"
    md.write_text(render_table(name, runs, unfinished, cells))
    with (out_dir / f"{name}.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([table.row_field, "column", "mean", "std", "n", "paper"])
        for (row, key), cell in cells.items():
            writer.writerow([row, key, cell.mean, cell.std, len(cell.values), cell.paper])
    return md


def write_toy_table(runs: list[dict], out_dir: Path) -> Path:
    """MIGE Fig. 1's errors against the closed form, as markdown and CSV."""
    md = out_dir / "mige-fig1.md"
    md.write_text(
        f"### MIGE Fig. 1: error of each estimator against the closed form\n\n{toy_markdown(runs)}\n"
    )
    with (out_dir / "mige-fig1.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["quantity", "estimator", "d", "values"])
        for (quantity, estimator, d), values in sorted(toy_rows(runs).items()):
            writer.writerow([quantity, estimator, d, " ".join(f"{v:.6g}" for v in values)])
    return md


RECORDS = REPO_ROOT / "results" / "runs"
BLOCK = re.compile(r"(<!-- make_tables: (?P<key>[\w./-]+) -->\n)(?P<body>.*?)(<!-- /make_tables -->)", re.S)


ABLATIONS = REPO_ROOT / "results" / "ablation"


def render_ablation(name: str, folder: Path = ABLATIONS) -> str:
    """A markdown table of every CSV results/ablation/<name>*.csv (rows of scripts/ablate_exp1_head.py)."""
    rows = [row for path in sorted(folder.glob(f"{name}*.csv")) for row in csv.DictReader(path.open())]
    if not rows:
        return "No records yet.\n"
    baselines = {(row["baseline_mae_tx"], row["baseline_mae_theta"]) for row in rows}
    if len(baselines) != 1:
        raise ValueError(
            f"{name}: rows from different test sets ({baselines}); keep one data setting per name"
        )
    tx, theta = (float(v) for v in baselines.pop())
    lines = [
        f"Baseline (predict the identity warp) on the same test pairs: MAE_tx {tx:.2f} px, "
        f"MAE_θ {theta:.2f} deg. Every trial: {rows[0]['steps']} steps of batch 8.",
        "",
        "| pooling | last-layer init | output | optimizer | loss | MAE_tx (px) | MAE_θ (deg) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        pool = "global average" if row["pool"] == "1" else f"{row['pool']} grid, flattened"
        cells = [f"{float(row[k]):.2f}" for k in ("mae_tx", "mae_theta")]
        good = float(row["mae_tx"]) < 0.5 * tx and float(row["mae_theta"]) < 0.5 * theta
        cells = [f"**{c}**" for c in cells] if good else cells
        setting = [pool, row["init"], row["output"], row["optimizer"], row["loss"]]
        lines.append(f"| {' | '.join(setting + cells)} |")
    lines += ["", "Bold: both errors below half the baseline's.", ""]
    return "\n".join(lines)


def render_csv(path: Path) -> str:
    """A CSV under results/ as a markdown table, its header as the column titles."""
    if not path.is_file():
        shown = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        return f"No records yet ({shown} is missing).\n"
    rows = list(csv.reader(path.open()))
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines) + "\n"


def render_block(key: str, records: Path = RECORDS) -> str:
    """The generated text for a block: "<scale>/<table>" (records below records/<scale>),
    "sweep/<name>", "ablation/<name>", "claims/table" / "claims/not-run" / "claims/counts", or
    "csv/<path below results/>"."""
    scale, _, name = key.partition("/")
    if scale == "claims":
        if name == "table":
            return claims_table(records)
        if name == "not-run":
            return not_run_list(records)
        if name == "counts":
            counts = summary_counts(records)
            plural = {"holds": "hold", "does not hold": "do not hold"}
            order = ("holds", "does not hold", "undecided", "no records yet", "not run here")
            parts = [f"{counts[k]} {k if counts[k] == 1 else plural.get(k, k)}" for k in order if k in counts]
            return f"Of {sum(counts.values())} claims: {', '.join(parts)}.\n"
        raise ValueError(f"unknown claims block {key!r}; use claims/table, claims/not-run or claims/counts")
    if scale == "csv":
        return render_csv(records.parent / name)
    if scale == "ablation":
        return render_ablation(name, records.parent / "ablation")
    if scale == "sweep":
        return render_setting_sweep(name, records)
    folder = records / scale
    if name not in (*TABLES, *FIGURE_TABLES):
        raise ValueError(f"unknown table {name!r} in block {key!r}; use one of {[*TABLES, *FIGURE_TABLES]}")
    runs = load_runs(folder) if folder.is_dir() else []
    for run in runs:  # commands printed under the tables name folders relative to the repository
        if Path(run["path"]).is_relative_to(REPO_ROOT):
            run["path"] = str(Path(run["path"]).relative_to(REPO_ROOT))
    if name == "mige-fig1":
        return toy_markdown(runs) + "\n" if runs else "No records yet.\n"
    return render_table(name, runs, load_unfinished(folder) if folder.is_dir() else [], where=scale)


def update_results(path: Path, records: Path = RECORDS, check: bool = False) -> list[str]:
    """Regenerate every `<!-- make_tables: scale/table -->` block of a markdown file from the records.

    With check=True nothing is written; returns the keys of the blocks that are out of date.
    """
    text = path.read_text()
    stale: list[str] = []

    def replace(match: re.Match) -> str:
        body = render_block(match["key"], records)
        if body != match["body"]:
            stale.append(match["key"])
        return match.group(1) + body + match.group(4)

    new = BLOCK.sub(replace, text)
    valued = update_values(new, records)
    if valued != new:
        stale.append("inline values")
    new = valued
    if not check and new != text:
        path.write_text(new)
    return stale
