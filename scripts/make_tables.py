"""Assemble paper tables from a folder of runs: `python scripts/make_tables.py RUNS_DIR`.

Writes <out>/<table>.md and <out>/<table>.csv for every table with at least one run below
RUNS_DIR; each cell is "ours mean ± std (n seeds) / paper", best of ours per column in bold,
followed by the scale of the runs, which of the paper's per-column claims hold, and which cells
are missing with the command that fills them.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments.results import (  # noqa: E402
    assemble,
    claims,
    load_runs,
    missing_cells,
    scale_summary,
    to_markdown,
)
from experiments.tables import TABLES  # noqa: E402
from experiments.toy_summary import toy_markdown, toy_rows  # noqa: E402

FIGURE_TABLES = ("mige-fig1",)


def write_table(name: str, runs: list[dict], out_dir: Path) -> Path:
    table = TABLES[name]
    cells = assemble(table, runs)
    parts = [
        f"### {table.name}",
        "",
        "Each cell: ours mean ± std (number of seeds) / the paper's value; best of ours per column in bold.",
        "",
        to_markdown(table, cells),
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
    md = out_dir / f"{name}.md"
    md.write_text("\n".join(parts))
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


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs_dir", type=Path, help="folder searched recursively for metrics.json")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUNS_DIR/tables)")
    names = [*TABLES, *FIGURE_TABLES]
    parser.add_argument("--tables", nargs="*", default=names, choices=names)
    args = parser.parse_args(argv)
    if not args.runs_dir.is_dir():
        parser.error(f"{args.runs_dir} is not a folder of runs")
    runs = load_runs(args.runs_dir)
    out_dir = args.out or args.runs_dir / "tables"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in args.tables:
        if name == "mige-fig1":
            if any(r.get("experiment") == "mige_toy" for r in runs):
                written.append(write_toy_table(runs, out_dir))
                print(written[-1].read_text())
            continue
        experiments = {c.experiment for c in TABLES[name].columns}
        if any(r.get("experiment") in experiments for r in runs):
            written.append(write_table(name, runs, out_dir))
            print(written[-1].read_text())
    if not written:
        print(f"no finished runs below {args.runs_dir}", file=sys.stderr)
    return written


if __name__ == "__main__":
    main()
