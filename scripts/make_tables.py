"""Assemble paper tables from a folder of runs: `python scripts/make_tables.py RUNS_DIR`.

    python scripts/make_tables.py --pages [--check]
    python scripts/make_tables.py --results RESULTS.md [--check]

The first writes <out>/<table>.md and <out>/<table>.csv for every table with at least one run below
RUNS_DIR; each cell is "ours mean ± std (n seeds) / paper", best of ours per column in bold,
followed by the scale of the runs, which of the paper's per-column claims hold, and which cells
are missing with the command that fills them. The second regenerates every results page (RESULTS.md,
README.md's findings, results/*.md): each `<!-- make_tables: KEY -->` block and each inline
`<!-- v:KEY -->` value, from the committed records in results/runs/ (tests/test_pages.py checks
that the pages are up to date and that their prose holds no hand-typed measured number). The third
does the same for one page.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.reporting.pages import pages, untied_numbers
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
    parser.add_argument("--pages", action="store_true", help="regenerate every results page")
    parser.add_argument(
        "--check", action="store_true", help="with --pages / --results: write nothing, exit 1 if stale"
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUNS_DIR/tables)")
    names = [*TABLES, *FIGURE_TABLES]
    parser.add_argument("--tables", nargs="*", default=names, choices=names)
    args = parser.parse_args(argv)
    if args.pages or args.results is not None:
        any_stale = False
        for page in pages() if args.pages else [args.results]:
            stale = update_results(page, check=args.check)
            any_stale = any_stale or bool(stale)
            verb = "out of date" if args.check else "regenerated"
            print(f"{page}: {len(stale)} part(s) {verb}: {', '.join(stale) or 'none'}")
            untied = untied_numbers(page.read_text())
            if untied:
                print(f"{page}: numbers in prose that no record prints:\n  " + "\n  ".join(untied))
        if args.check and any_stale:
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
