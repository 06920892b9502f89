"""Assemble paper tables from a folder of runs: `python scripts/make_tables.py RUNS_DIR`.

    python scripts/make_tables.py --results RESULTS.md [--check]

The first writes <out>/<table>.md and <out>/<table>.csv for every table with at least one run below
RUNS_DIR; each cell is "ours mean ± std (n seeds) / paper", best of ours per column in bold,
followed by the scale of the runs, which of the paper's per-column claims hold, and which cells
are missing with the command that fills them. The second regenerates every
`<!-- make_tables: <scale>/<table> -->` block of RESULTS.md from the committed records in
results/runs/<scale>/ (a test checks that RESULTS.md is up to date).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.reporting.render import FIGURE_TABLES, update_results, write_table, write_toy_table
from experiments.reporting.results import load_runs, load_unfinished
from experiments.reporting.tables import TABLES


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs_dir", type=Path, nargs="?", help="folder searched recursively for metrics.json")
    parser.add_argument(
        "--results", type=Path, default=None,
        help="regenerate the make_tables blocks of this markdown file (e.g. RESULTS.md) from results/runs",
    )  # fmt: skip
    parser.add_argument("--check", action="store_true", help="with --results: exit 1 if a block is stale")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUNS_DIR/tables)")
    names = [*TABLES, *FIGURE_TABLES]
    parser.add_argument("--tables", nargs="*", default=names, choices=names)
    args = parser.parse_args(argv)
    if args.results is not None:
        stale = update_results(args.results, check=args.check)
        verb = "out of date" if args.check else "regenerated"
        print(f"{args.results}: {len(stale)} block(s) {verb}: {', '.join(stale) or 'none'}")
        if args.check and stale:
            sys.exit(1)
        return []
    if args.runs_dir is None:
        parser.error("give RUNS_DIR, or --results RESULTS.md")
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
            written.append(write_table(name, runs, out_dir, load_unfinished(args.runs_dir)))
            print(written[-1].read_text())
    if not written:
        print(f"no finished runs below {args.runs_dir}", file=sys.stderr)
    return written


if __name__ == "__main__":
    main()
