"""Read a folder of runs (metrics.json files) and assemble the paper tables from them."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from experiments import CONFIG_DIR
from experiments.reporting.config_drift import drift_overrides, runner_configs
from experiments.reporting.record_dates import run_dates
from experiments.reporting.tables import BASELINES, Column, Table
from experiments.reporting.verdicts import Arm, Verdict, judge_best
from experiments.runner.fingerprint import key_under

PAPER_NUMBERS = Path(__file__).resolve().with_name("paper_numbers.yaml")


def _records(runs_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(path, record) for every readable metrics.json below runs_dir, in path order."""
    records = []
    for path in sorted(Path(runs_dir).rglob("metrics.json")):
        try:
            records.append((path, json.loads(path.read_text())))
        except (OSError, json.JSONDecodeError):
            continue
    return records


def load_unfinished(runs_dir: Path) -> list[dict[str, Any]]:
    """Records below runs_dir that ended as diverged, stopped or failed (shown as such in the tables)."""
    unfinished = ("diverged", "stopped", "failed")
    return [record for _, record in _records(runs_dir) if record.get("status") in unfinished]


def load_runs(runs_dir: Path, distinct_by: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every finished run below runs_dir (unfinished or unreadable ones are skipped).

    Runs of the same (experiment, loss, bins, seed) count once: Table 1's default-bins L_LMI run
    and Table 2's explicit loss.bins=11 run are the same configuration. ``distinct_by``: dotted
    config keys that tell runs apart too (a learning rate swept in one folder).
    """
    runs, seen = [], set()
    for path, record in _records(runs_dir):
        record["path"] = str(path.parent)  # also names the record in config_value's error
        key = tuple(record.get(k) for k in ("experiment", "loss", "bins", "seed"))
        key += tuple(str(config_value(record, k)) for k in distinct_by)
        if record.get("status") == "finished" and key not in seen:
            seen.add(key)
            runs.append(record)
    return runs


def config_value(record: dict[str, Any], dotted_key: str) -> Any:
    """The value at ``a.b.c`` of a record's resolved config (``model.max_disparity``); a missing
    key is an error naming it and the record."""
    node: Any = record.get("config", {})
    for part in dotted_key.split("."):
        if not isinstance(node, dict) or part not in node:
            where = record.get("path", "the record")
            raise ValueError(f"{where} has no {dotted_key!r} in its config (missing {part!r})")
        node = node[part]
    return node


@cache
def default_bins(loss: str) -> int | None:
    path = CONFIG_DIR / "loss" / f"{loss}.yaml"
    return yaml.safe_load(path.read_text()).get("bins") if path.exists() else None


@cache
def paper_numbers() -> dict[str, Any]:
    return yaml.safe_load(PAPER_NUMBERS.read_text())


@dataclass
class Cell:
    values: list[float]
    paper: float | None
    diverged: int = 0  # runs of this cell that ended with a non-finite loss (no metrics)
    stopped: int = 0  # runs stopped before their last epoch (time limit, interrupt)
    at_baseline: int = 0  # finished runs that did not beat the best trivial baseline
    learned: list[float] = field(default_factory=list)  # values of the runs that did beat it
    beats: list[bool] = field(default_factory=list)  # per value: did its run beat the baseline?
    failed: int = 0  # runs that ended with an exception (no metrics)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0


def _row_matches(table: Table, row: str, run: dict[str, Any]) -> bool:
    if any(run.get(key) != value for key, value in table.fixed.items()):
        return False
    if table.row_field == "bins":
        return str(run.get("bins")) == row
    # rows keyed by loss: a histogram loss counts at its default bin count only (Table 1)
    return run.get("loss") == row and run.get("bins") == default_bins(row)


def with_run_rows(table: Table, runs: list[dict[str, Any]]) -> Table:
    """A bin-count table with a row for every N the runs used beyond the paper's four (e.g. N = 50),
    in numeric order; other tables as they are. Rows come from the runs so that a finer N than the
    paper tried is shown, not silently dropped."""
    if table.row_field != "bins":
        return table
    experiments = {c.experiment for c in table.columns}
    run_bins = {
        str(run["bins"])
        for run in runs
        if run.get("experiment") in experiments
        and run.get("bins") is not None
        and all(run.get(key) == value for key, value in table.fixed.items())
    }
    extra = tuple(sorted(run_bins - set(table.rows), key=int))
    if not extra:
        return table
    return replace(table, rows=tuple(sorted((*table.rows, *extra), key=int)), extra_rows=extra)


def assemble(
    table: Table, runs: list[dict[str, Any]], unfinished: list[dict[str, Any]] = ()
) -> dict[tuple[str, str], Cell]:
    """(row, column key) -> our values over seeds, the paper's value, and the runs that failed."""
    paper = paper_numbers()[table.paper_key]
    cells = {}
    for row in table.rows:
        paper_row = paper["rows"].get(row) or [None] * len(paper["columns"])
        for column in table.columns:
            mine = [
                run
                for run in runs
                if run.get("experiment") == column.experiment
                and column.metric in run.get("metrics", {})
                and math.isfinite(run["metrics"][column.metric])
                and _row_matches(table, row, run)
            ]
            values = [run["metrics"][column.metric] * column.scale for run in mine]
            lower = lower_is_better(table, column)
            beats = [_beats_baseline(run, column, lower) for run in mine]
            learned = [v for v, beat in zip(values, beats, strict=True) if beat]
            known = column.key in paper["columns"]  # the paper may report only some columns
            paper_value = paper_row[paper["columns"].index(column.key)] if known else None
            failed = [
                r
                for r in unfinished
                if r.get("experiment") == column.experiment and _row_matches(table, row, r)
            ]
            diverged = sum(r.get("status") == "diverged" for r in failed)
            crashed = sum(r.get("status") == "failed" for r in failed)
            at_baseline = len(values) - len(learned)
            cells[(row, column.key)] = Cell(
                values, paper_value, diverged, len(failed) - diverged - crashed, at_baseline, learned, beats,
                crashed,
            )
    return cells


def _beats_baseline(run: dict[str, Any], column: Column, lower: bool) -> bool:
    """Does the run's value beat every trivial baseline logged beside it (True if none is logged)?"""
    value = run["metrics"][column.metric]
    baselines = trivial_baselines(run, column.metric).values()
    return all(value < baseline if lower else value > baseline for baseline in baselines)


def trivial_baselines(run: dict[str, Any], metric: str) -> dict[str, float]:
    """Baseline title -> the value the run's record logged for ``metric`` (with or without "test/")."""
    name = metric.removeprefix("test/")
    patterns = BASELINES.get(run.get("experiment", ""), {})
    found = {title: (run.get("metrics") or {}).get(p.format(metric=name)) for title, p in patterns.items()}
    return {title: value for title, value in found.items() if value is not None}


def baseline_cells(table: Table, runs: list[dict[str, Any]]) -> dict[tuple[str, str], Cell]:
    """(baseline title, column key) -> the baseline's value in each run of the column's experiment.

    The data (hence the baseline) is fixed across the runs of one scale, so the values agree; a
    spread here would mean runs of different scales were mixed.
    """
    cells: dict[tuple[str, str], Cell] = {}
    for column in table.columns:
        metric = column.metric.removeprefix("test/")
        for title, pattern in BASELINES.get(column.experiment, {}).items():
            key = pattern.format(metric=metric)
            values = [
                run["metrics"][key] * column.scale
                for run in runs
                if run.get("experiment") == column.experiment and key in run.get("metrics", {})
            ]
            cells.setdefault((title, column.key), Cell([], None)).values.extend(values)
    return cells


def lower_is_better(table: Table, column: Column) -> bool:
    paper = paper_numbers()[table.paper_key]["lower_is_better"]
    return bool(paper[column.key]) if column.key in paper else column.lower_is_better


def best_row(table: Table, cells: dict, column: Column, ours: bool) -> str | None:
    """The row with the best value in a column, ours (mean) or the paper's."""
    scored = [
        (cells[(row, column.key)].mean if ours else cells[(row, column.key)].paper, row) for row in table.rows
    ]
    scored = [(value, row) for value, row in scored if value is not None]
    if not scored:
        return None
    pick = min if lower_is_better(table, column) else max
    return pick(scored)[1]


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.1f}"


def format_values(values: list[float]) -> str | None:
    """ "mean ± std (n seeds)", or "value (1)" for one seed (no spread to show); None for no values."""
    cell = Cell(values, None)
    if cell.mean is None:
        return None
    if len(values) == 1:
        return f"{_fmt(cell.mean)} (1)"
    return f"{_fmt(cell.mean)} ± {_fmt(cell.std)} ({len(values)})"


def _bimodal_note(cell: Cell) -> str:
    """'k of n at baseline; the other m: mean ± std' (the mean over the seeds that learned)."""
    note = f"{cell.at_baseline} of {len(cell.values)} at baseline"
    if cell.learned:
        note += f"; the other {len(cell.learned)}: {format_values(cell.learned)}"
    return note


def to_markdown(table: Table, cells: dict, baselines: dict | None = None) -> str:
    """Each cell: ours mean ± std (n seeds) / paper; the best of ours per column in bold.

    Then one italic row per trivial baseline (same metric code, same test split), so a reader sees
    at a glance whether a cell beats chance.
    """
    header = [table.row_field, *(c.title for c in table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {c.key: best_row(table, cells, c, ours=True) for c in table.columns}
    # columns the paper reports no number for (e.g. Exp3's abs rel) show ours alone
    has_paper = {
        c.key: any(cells[(row, c.key)].paper is not None for row in table.rows) for c in table.columns
    }
    for row in table.rows:
        entries = [row]
        for column in table.columns:
            cell = cells[(row, column.key)]
            ended = cell.diverged or cell.stopped or cell.failed
            ours = format_values(cell.values) or ("" if ended else "not run")
            if best[column.key] == row and cell.mean is not None:
                ours = f"**{ours}**"
            if cell.at_baseline:  # bimodal cells: count the failed seeds and give the others' own mean
                ours = f"{ours} [{_bimodal_note(cell)}]"
            outcomes = ((cell.diverged, "diverged"), (cell.stopped, "stopped"), (cell.failed, "failed"))
            failures = [f"{n} {what}" for n, what in outcomes if n]
            if failures:
                ours = f"{ours} + {', '.join(failures)}" if ours else ", ".join(failures)
            entries.append(f"{ours} / {_fmt(cell.paper)}" if has_paper[column.key] else ours)
        lines.append("| " + " | ".join(entries) + " |")
    titles = dict.fromkeys(title for (title, _), cell in (baselines or {}).items() if cell.values)
    for title in titles:
        entries = [f"*baseline: {title}*"]
        for column in table.columns:
            cell = (baselines or {}).get((title, column.key))
            entries.append(f"*{_fmt(cell.mean)}*" if cell is not None and cell.values else "—")
        lines.append("| " + " | ".join(entries) + " |")
    return "\n".join(lines)


def arm(row: str, cell: Cell) -> Arm:
    """A cell as one arm of a significance test: its per-seed values and which beat the baseline."""
    return Arm(row, tuple(cell.values), tuple(cell.beats))


@dataclass(frozen=True)
class ColumnClaim:
    """The paper's claim "these rows are best in this column" (several when the paper ties), checked."""

    column: Column
    paper_best: tuple[str, ...]
    ours_best: str | None
    verdict: Verdict | None  # None: not run here, or nothing to compare with
    note: str = ""


def check_column(table: Table, cells: dict, column: Column) -> ColumnClaim | None:
    """Decide the paper's best-row claim of one column with the test of ``verdicts.judge_best``.

    The claimed row is the paper's best (of the tied rows, the one we rank highest). Against it
    stands our best other row when ours disagrees, else the runner-up outside the paper's tied
    rows. None when the paper gives no number in this column.
    """
    paper_best = best_row(table, cells, column, ours=False)
    if paper_best is None:
        return None
    best_value = cells[(paper_best, column.key)].paper
    tied = tuple(r for r in table.rows if cells[(r, column.key)].paper == best_value)
    ours_best = best_row(table, cells, column, ours=True)
    run = [r for r in table.rows if cells[(r, column.key)].mean is not None]
    lower = lower_is_better(table, column)
    ranked = sorted(run, key=lambda r: cells[(r, column.key)].mean, reverse=not lower)
    claimed_run = [r for r in ranked if r in tied]
    if not claimed_run:
        return ColumnClaim(column, tied, ours_best, None, "not run here")
    claimed = claimed_run[0]
    others = [r for r in ranked if r not in tied]
    if not others:
        return ColumnClaim(column, tied, ours_best, None, "no other row run here")
    rival = others[0]
    verdict = judge_best(
        arm(claimed, cells[(claimed, column.key)]),
        arm(rival, cells[(rival, column.key)]),
        claimed_is_ours_best=ours_best in tied,
        lower_is_better=lower,
    )
    return ColumnClaim(column, tied, ours_best, verdict)


def verdict_line(check: ColumnClaim) -> str:
    """'- title: lmi best — **holds** (lmi 1.1 (2) vs l1 3.1 (2); Δ = ... [..], p = ...)'."""
    who = " / ".join(check.paper_best)
    head = f"- {check.column.title}: {who} best"
    if check.verdict is None:
        return f"{head}; {check.note}."
    v = check.verdict
    sides = f"{v.claimed.name} {_cell_text(v.claimed)} vs {v.rival.name} {_cell_text(v.rival)}"
    detail = v.effect()
    if v.outcome == "undecided" and v.test != "none":  # (with no test, the reason is the detail)
        detail += f"; {v.reason}"
        if v.seeds_needed is not None:
            detail += f"; 80 % power needs {v.seeds_needed} seeds per arm"
        elif v.test == "welch":
            detail += "; no realistic number of seeds separates them"
    return f"{head} — **{v.outcome}** ({sides}; {detail})."


def _cell_text(side: Arm) -> str:
    return format_values(list(side.values)) or "—"


def claims(table: Table, cells: dict) -> list[str]:
    """Per column, the paper's best-row claim with its test (docs/verdicts.md); then the cells whose
    seeds did not all beat the trivial baseline."""
    statements = [verdict_line(check) for c in table.columns if (check := check_column(table, cells, c))]
    for column in table.columns:
        failed = [(row, cells[(row, column.key)]) for row in table.rows]
        failed = [(row, cell) for row, cell in failed if cell.at_baseline]
        if failed:
            mixed = any(cell.learned for _, cell in failed)
            statements.append(
                f"- {column.title}: seeds that did not beat the trivial baseline: "
                + "; ".join(f"{row} {_bimodal_note(cell)}" for row, cell in failed)
                + (" (bimodal cells: their means mix failures and successes)." if mixed else ".")
            )
    return statements


def _sweep_overrides(table: Table, rows: list[str]) -> list[str]:
    """The Hydra overrides that select these rows of the table."""
    if table.row_field == "bins":
        return [f"{key}={value}" for key, value in table.fixed.items()] + [f"loss.bins={','.join(rows)}"]
    return [f"loss={','.join(rows)}"]


def _one_cell(table: Table, runs: list[dict[str, Any]]) -> list[str]:
    """The overrides of one run's cell (its loss, bins and seed), to compose a fill command as Hydra
    would; ``[]`` when there is no record to take them from."""
    if not runs:
        return []
    run = runs[0]
    cell = [f"loss={run.get('loss')}", f"seed={run.get('seed', 0)}"]
    if table.row_field == "bins" and run.get("bins") is not None:
        cell.append(f"loss.bins={run['bins']}")
    return cell


# overrides a fill command sets itself (or that differ per row and seed)
_OWN_OVERRIDES = ("experiment", "dataset", "debug", "loss", "loss.bins", "seed")


def _common_overrides(runs: list[dict[str, Any]]) -> list[str]:
    """Overrides every run of ``runs`` shares beyond the table's own, read from the record folders'
    names (Hydra's ``<key>=<value>,...``), e.g. ``trainer.max_epochs=20`` of a budget probe, so a
    fill command runs the missing cells at the same setting."""
    shared: dict[str, str] | None = None
    for record in runs:
        if "path" not in record:
            return []
        parts = dict(p.split("=", 1) for p in Path(record["path"]).name.split(",") if "=" in p)
        mine = {k: v for k, v in parts.items() if k not in _OWN_OVERRIDES}
        shared = mine if shared is None else {k: v for k, v in shared.items() if mine.get(k) == v}
    return [f"{k}={v}" for k, v in sorted((shared or {}).items())]


def _run_folder(record: dict[str, Any]) -> Path:
    """Where the run itself lived (its checkpoints), which differs from a copied record's folder."""
    output_dir = ((record.get("config") or {}).get("paths") or {}).get("output_dir")
    return Path(output_dir) if output_dir else Path(record["path"])


def _dataset_override(experiment: str, runs: list[dict[str, Any]]) -> list[str]:
    """``dataset=<name>`` when the runs used another dataset than the experiment's default.

    Records keep the resolved dataset config, not its name: the name is the configs/dataset file
    with the same ``_target_`` (e.g. Exp3 on middlebury_motorcycle rather than synthetic_stereo).
    """
    targets = {((r.get("config") or {}).get("dataset") or {}).get("_target_") for r in runs}
    if len(targets) != 1 or None in targets:
        return []
    target = targets.pop()
    names = [
        path.stem
        for path in sorted((CONFIG_DIR / "dataset").glob("*.yaml"))
        if (yaml.safe_load(path.read_text()) or {}).get("_target_") == target
    ]
    if len(names) != 1 or names[0] == _default_dataset(experiment):
        return []
    return [f"dataset={names[0]}"]


def _default_dataset(experiment: str) -> str | None:
    """The dataset an experiment runs on without a dataset= override (its own, else config.yaml's)."""
    dataset = None
    for path, key in (
        (CONFIG_DIR / "config.yaml", "dataset"),
        (CONFIG_DIR / "experiment" / f"{experiment}.yaml", "override /dataset"),
    ):
        for entry in yaml.safe_load(path.read_text()).get("defaults", []):
            if isinstance(entry, dict) and key in entry:
                dataset = entry[key]
    return dataset


def missing_cells(table: Table, cells: dict, runs: list[dict[str, Any]]) -> list[str]:
    """Per experiment: rows run with fewer seeds than the table's runs use, and the command to fill them.

    The command reuses the seeds and the debug scale of the runs already there, so re-running it
    (finished cells are skipped with skip_if_finished=true) completes the table at the same scale.
    """
    mine = [r for r in runs if any(r.get("experiment") == c.experiment for c in table.columns)]
    if not mine:  # nothing to take the scale, dataset and folders from: a bare command would mislead
        experiments = ", ".join(dict.fromkeys(c.experiment for c in table.columns))
        return [f"- {experiments}: no runs yet; the commands given with this table fill it."]
    seeds = sorted({r.get("seed") for r in mine if r.get("seed") is not None}) or [0]
    debugs = {r.get("debug") for r in mine}
    debug = debugs.pop() if len(debugs) == 1 else None
    # each experiment's sweep folder (where checkpoints are) and, for records copied into the
    # repository, the folder of records: new runs go next to the others in both
    sweep_dirs = {r["experiment"]: _run_folder(r).parent for r in mine if "path" in r}
    records_dirs = {
        r["experiment"]: Path(r["path"]).parent
        for r in mine
        if "path" in r and _run_folder(r) != Path(r["path"])
    }
    lines = []
    for experiment in dict.fromkeys(c.experiment for c in table.columns):
        keys = [c.key for c in table.columns if c.experiment == experiment]
        # a diverged seed is an outcome, not a gap: it counts as run (and is named)
        diverged = {row: max(cells[(row, key)].diverged for key in keys) for row in table.rows}
        counts = {row: max(len(cells[(row, key)].values) for key in keys) for row in table.rows}
        # a row beyond the paper's is only missing where it was run at all (N = 50 of Exp3 alone)
        short = [
            row
            for row in table.rows
            if counts[row] + diverged[row] < len(seeds)
            and (row not in table.extra_rows or counts[row] + diverged[row] > 0)
        ]
        if not short:
            continue
        failed = {row: f", {diverged[row]} diverged" if diverged[row] else "" for row in short}
        detail = ", ".join(f"{row} ({counts[row]} of {len(seeds)} seeds{failed[row]})" for row in short)
        theirs = [r for r in mine if r.get("experiment") == experiment]
        dataset = _dataset_override(experiment, theirs)
        setting = [*([f"debug={debug}"] if debug else []), *_common_overrides(theirs)]
        today = [f"experiment={experiment}", *dataset, *_one_cell(table, theirs), *setting]
        command = [
            "python run.py -m", f"experiment={experiment}", *dataset, *_sweep_overrides(table, short),
            f"seed={','.join(map(str, seeds))}", *setting, *drift_overrides(theirs, today),
        ]  # fmt: skip
        if sweep_dirs:
            known = sweep_dirs.get(experiment) or next(iter(sweep_dirs.values())).parent / experiment
            command.append(f"hydra.sweep.dir={known}")
        if records_dirs:  # an experiment with no record yet gets a sibling of the others' folders
            known = records_dirs.get(experiment) or next(iter(records_dirs.values())).parent / experiment
            command.append(f"records_dir={known}")
        command += ["skip_if_finished=true", "ckpt_path=last"]
        lines.append(f"- {experiment}: {detail}. Fill with `{' '.join(command)}`")
    return lines


def scale_summary(table: Table, runs: list[dict[str, Any]]) -> list[str]:
    """One line per experiment: data sizes, epochs, seeds, debug mode, device, wall time."""
    lines = []
    for experiment in dict.fromkeys(c.experiment for c in table.columns):
        mine = [r for r in runs if r.get("experiment") == experiment]
        if not mine:
            lines.append(f"- {experiment}: no runs")
            continue
        config = mine[0]["config"]
        data = config.get("dataset") or {}
        sizes = ", ".join(f"{k}={data[k]}" for k in ("n_train", "n_test", "height", "width") if k in data)
        if "seed" in data:  # the data's own seed (scenes, crops), not the run's: e.g. held-out scenes
            sizes += f", data seed={data['seed']}"
        seeds = sorted({r.get("seed") for r in mine}, key=str)
        devices = sorted({str((r.get("environment") or {}).get("device", "?")) for r in mine})
        wall = sum(r.get("wall_time_s", 0) for r in mine)
        lines.append(
            f"- {experiment}: {len(mine)} runs; {sizes}; epochs={config['trainer'].get('max_epochs')}; "
            f"seeds={seeds}; debug={mine[0].get('debug')}; device={', '.join(devices)}; "
            f"total wall time {wall / 60:.1f} min; run dates {run_dates(mine)}"
        )
        mixed = mixed_settings(mine)
        if mixed:
            lines.append(f"  - **not one setting**: the runs differ in {'; '.join(mixed)}")
    return lines


# what a scale is made of: every run of one table's experiment should agree on these
_SCALE_KEYS = (
    "dataset", "model", "trainer.max_epochs", "dataset_module.batch_size", "lr_by_loss", "ema_decay",
)  # fmt: skip


def mixed_settings(runs: list[dict[str, Any]]) -> list[str]:
    """``key (value: n runs, ...)`` for each scale key (data, model, epochs, batch, per-loss lr)
    on which runs written by the runner disagree, e.g. an ablation's record left among a table's."""
    configs = runner_configs(runs)
    mixed = []
    for key in sorted(set().union(*configs) if configs else ()):
        if not key_under(key, _SCALE_KEYS):
            continue
        counts: dict[str, int] = {}
        for config in configs:
            value = repr(config.get(key, "<absent>"))
            counts[value] = counts.get(value, 0) + 1
        if len(counts) > 1:
            mixed.append(f"{key} ({', '.join(f'{v}: {n}' for v, n in counts.items())})")
    return mixed
