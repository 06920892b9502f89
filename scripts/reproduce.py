"""Regenerate a paper table or figure with one command.

    python scripts/reproduce.py deepmi-table1 --scale smoke --seeds 0
    python scripts/reproduce.py all --scale paper --seeds 0 1 2 --launcher submitit_slurm \
        -- hydra.launcher.partition=gpu trainer=gpu

Each table is one Hydra multirun per experiment (losses or bins x seeds) into
RUNS/<scale>/<experiment>/<overrides>/ (checkpoints, logs), and each finished run's record
(metrics.json, small CSVs) is copied to results/runs/<scale>/<experiment>/<overrides>/, the
tracked folder RESULTS.md's tables are generated from (at --scale smoke, to RUNS/records/ instead,
which git ignores: plumbing runs, e.g. on a generated MNIST stand-in, never land in tracked
folders unless --records-dir says so). Runs are launched with skip_if_finished=true and
ckpt_path=last, so re-running the same command skips finished cells and resumes interrupted ones.
Then the table is assembled (scripts/make_tables.py) into RUNS/<scale>/tables/ and, with --wandb,
logged as a wandb Table (offline unless WANDB_MODE says otherwise). Jobs that did not finish
(failed, stopped; a diverged seed is an outcome the table counts) are listed at the end, the
table is still assembled from the others, and the command exits 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from experiments import REPO_ROOT as REPO
from experiments.reporting.render import write_table, write_toy_table
from experiments.reporting.results import load_runs
from experiments.reporting.tables import FIGURES, TABLES, Sweep
from experiments.runner.sweep_summary import unfinished_jobs

TARGETS = [*TABLES, *FIGURES]
SCALES = ("smoke", "cpu", "paper")
LAUNCHERS = ("basic", "joblib", "submitit_local", "submitit_slurm", "slurm_gpu")


def sweeps_for(target: str) -> list[Sweep]:
    return list(TABLES[target].sweeps) if target in TABLES else [FIGURES[target]]


def multirun_command(
    sweep: Sweep,
    target: str,
    scale: str,
    seeds: list[int],
    runs_dir: Path,
    launcher: str,
    extra: list[str],
    records_dir: Path | None = None,
) -> list[str]:
    command = [
        sys.executable, str(REPO / "run.py"), "-m",
        f"experiment={sweep.experiment}", *sweep.overrides,
        f"seed={','.join(map(str, seeds))}",
        f"hydra.sweep.dir={runs_dir / scale / sweep.experiment}",
        "skip_if_finished=true", "ckpt_path=last",
        f"wandb_group={target}",
    ]  # fmt: skip
    if records_dir is not None:
        command.append(f"records_dir={records_dir / scale / sweep.experiment}")
    if scale != "paper":
        command.append(f"debug={scale}")
    if launcher != "basic":
        command.append(f"hydra/launcher={launcher}")
    return command + extra


def log_to_wandb(target: str, markdown: Path, out_dir: Path) -> None:
    """The assembled table as a wandb Table in the target's group (one run per table)."""
    import csv

    import wandb

    rows = list(csv.reader(markdown.with_suffix(".csv").open()))
    run = wandb.init(
        project="deepmi", group=target, name=f"{target}-table", job_type="table",
        mode=os.environ.get("WANDB_MODE", "offline"), dir=str(out_dir),
    )  # fmt: skip
    try:
        run.log({"table": wandb.Table(columns=rows[0], data=rows[1:])})
    finally:
        wandb.finish()


def reproduce(target: str, args: argparse.Namespace) -> list[str]:
    """Run the target's sweeps and assemble its table; returns the jobs that did not finish."""
    started = time.perf_counter()
    unfinished: list[str] = []
    for sweep in sweeps_for(target):
        command = multirun_command(
            sweep, target, args.scale, args.seeds, args.runs_dir, args.launcher, args.extra, args.records_dir
        )
        print("$", " ".join(command), flush=True)
        if args.dry_run:
            continue
        if subprocess.run(command, cwd=REPO).returncode != 0:
            # a diverged seed is an outcome the table counts; a failed or stopped job is not
            rows = unfinished_jobs(args.runs_dir / args.scale / sweep.experiment)
            unfinished += [f"{status}: {folder}" for folder, status, _ in rows if status != "diverged"]
            if not rows:
                raise SystemExit(f"{target}: the sweep failed before any job ran (see the error above)")
    if args.dry_run:
        return unfinished
    out_dir = args.runs_dir / args.scale / "tables"
    out_dir.mkdir(parents=True, exist_ok=True)
    for sweep in sweeps_for(target):  # each cell's example panel, named by experiment and cell
        for panel in (args.runs_dir / args.scale / sweep.experiment).glob("*/examples.png"):
            figures = out_dir / "figures"
            figures.mkdir(exist_ok=True)
            shutil.copy(panel, figures / f"{sweep.experiment}-{panel.parent.name}.png")
    if target in TABLES:
        markdown = write_table(target, load_runs(args.runs_dir / args.scale), out_dir)
        print(markdown.read_text())
        if args.wandb:
            log_to_wandb(target, markdown, out_dir)
    else:
        for figure in (args.runs_dir / args.scale / FIGURES[target].experiment).rglob("*.png"):
            shutil.copy(figure, out_dir / f"{target}-{figure.parent.name}-{figure.name}")
        print(write_toy_table(load_runs(args.runs_dir / args.scale), out_dir).read_text())
    print(f"{target}: done in {(time.perf_counter() - started) / 60:.1f} min; outputs in {out_dir}")
    return unfinished


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", choices=[*TARGETS, "all"])
    parser.add_argument(
        "--scale", choices=SCALES, default="smoke", help="smoke: seconds; cpu: configs/debug/cpu.yaml; paper"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--launcher", choices=LAUNCHERS, default="basic", help="Hydra launcher for the sweeps"
    )
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs")
    parser.add_argument(
        "--records-dir", type=Path, default=None,
        help="where each finished run's metrics.json is copied for the repository (tables read it); "
        "default: results/runs (tracked) at --scale cpu and paper, RUNS_DIR/records (ignored) at smoke",
    )  # fmt: skip
    parser.add_argument("--no-records", action="store_true", help="keep records in the run folders only")
    parser.add_argument("--wandb", action="store_true", help="also log each table as a wandb Table")
    parser.add_argument("--dry-run", action="store_true", help="print the Hydra commands only")
    parser.epilog = "Overrides after -- go to every run, e.g. -- trainer=gpu dataset_module.batch_size=16"
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.extra = argv[split + 1 :]
    args.runs_dir = args.runs_dir.resolve()
    if args.records_dir is None:
        args.records_dir = args.runs_dir / "records" if args.scale == "smoke" else REPO / "results" / "runs"
    args.records_dir = None if args.no_records else args.records_dir.resolve()
    if args.records_dir is not None:
        print(f"records of finished runs go to {args.records_dir / args.scale}", flush=True)
    unfinished = []
    for target in TARGETS if args.target == "all" else [args.target]:
        unfinished += reproduce(target, args)
    if unfinished:
        print(f"{len(unfinished)} job(s) did not finish; rerun the same command to resume them:")
        print("\n".join(f"  {line}" for line in unfinished))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
