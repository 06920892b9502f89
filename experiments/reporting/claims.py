"""The claims table of RESULTS.md: one row per claim of both papers, decided from the records.

``results/claims.yaml`` (hand-kept, no measured numbers) maps each claim to a table column and a
folder of records; this module loads those records, checks the claim with the significance test
of ``verdicts.judge_best`` and renders the row: the paper's number, ours, the verdict, the effect
with its 95 % interval and p, where and when the runs ran, and a link to the detail page. Prose on
the results pages quotes a claim through ``claim_value`` (``<!-- v:claim:<id>:<field> -->``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from experiments import REPO_ROOT
from experiments.reporting.record_dates import run_dates
from experiments.reporting.results import (
    _fmt,
    assemble,
    check_column,
    format_values,
    load_runs,
    load_unfinished,
    paper_numbers,
    with_run_rows,
)
from experiments.reporting.tables import TABLES
from experiments.reporting.toy_summary import toy_rows
from experiments.reporting.verdicts import Arm, Verdict, judge_best

CLAIMS_FILE = REPO_ROOT / "results" / "claims.yaml"
RECORDS = REPO_ROOT / "results" / "runs"
# loss / objective names as the papers print them
LABELS = {
    "l1": "L1", "l2": "L2", "ssim": "SSIM", "ssim_l2": "SSIM+L2", "mi": "L_MI", "lmi": "L_LMI",
    "vib": "VIB", "mine_ib": "MINE-IB", "mige_ib": "MIGE-IB", "mige": "MIGE", "mine": "MINE",
    "mine_f": "MINE-f", "jsd": "JSD", "jsd_pm": "JSD+PM", "infonce": "infoNCE", "infonce_pm": "infoNCE+PM",
}  # fmt: skip


def label(row: str, table: str | None = None) -> str:
    """'L_LMI', or 'N = 11' for a row of a bin-count table."""
    if table is not None and TABLES[table].row_field == "bins":
        return f"N = {row}"
    return LABELS.get(row, row)


@dataclass(frozen=True)
class Claim:
    id: str
    detail: str
    data: str
    table: str | None = None
    column: str | None = None
    records: str | None = None
    kind: str = "best"
    dim: int | None = None
    missing: dict[str, str] = field(default_factory=dict)
    name: str | None = None  # the row's title when the table column alone does not say it

    @property
    def title(self) -> str:
        if self.name:
            return self.name
        if self.kind == "toy":
            return f"MIGE Fig. 1, d = {self.dim}: MIGE's dI/dρ error below MINE's and MINE-f's"
        table = TABLES[self.table]
        column = next(c for c in table.columns if c.key == self.column)
        paper, _, number = table.paper_key.partition("_table")
        title = column.title
        if column.experiment == "exp3_depth":
            title = f"{title if title.startswith('Exp3') else 'Exp3 ' + title}, {self.data}"
        return f"{'MIGE' if paper == 'mige' else 'DeepMI'} Table {number}: {title}"


@dataclass(frozen=True)
class Outcome:
    """A claim checked against its records."""

    claim: Claim
    paper: str  # the paper's number for the claimed row, and its runner-up
    verdict: Verdict | None
    runs: list[dict[str, Any]]
    status: str  # the verdict, or "not run here" / "no records yet"


def load_claims(path: Path = CLAIMS_FILE) -> list[Claim]:
    entries = yaml.safe_load(path.read_text())
    known = set(Claim.__dataclass_fields__)
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) - known:
            unknown = sorted(set(entry) - known) if isinstance(entry, dict) else entry
            raise ValueError(f"{path}: a claim has unknown keys {unknown}; allowed: {sorted(known)}")
    claims = [Claim(**entry) for entry in entries]
    ids = [c.id for c in claims]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{path}: claim ids must be unique, got {ids}")
    for claim in claims:
        if claim.kind == "best" and (claim.table not in TABLES or not claim.column):
            raise ValueError(f"{path}: claim {claim.id!r} names an unknown table {claim.table!r}")
    return claims


@cache
def _runs(folder: str, records: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    path = records / folder
    if not path.is_dir():
        return [], []
    return load_runs(path), load_unfinished(path)


def _paper_text(claim: Claim) -> str:
    """The paper's best row and number in the claim's column, and its runner-up ("figure only")."""
    if claim.kind == "toy":
        return "figure only"
    table = TABLES[claim.table]
    numbers = paper_numbers()[table.paper_key]
    if claim.column not in numbers["columns"]:
        return "—"
    index = numbers["columns"].index(claim.column)
    lower = numbers["lower_is_better"].get(claim.column, False)
    values = [(row[index], name) for name, row in numbers["rows"].items() if row[index] is not None]
    ranked = sorted(values, reverse=not lower)
    best = ranked[0][0]
    tied = [name for value, name in ranked if value == best]
    rest = [(v, n) for v, n in ranked if v != best]
    text = f"{' / '.join(label(n, claim.table) for n in tied)} {_fmt(best)}"
    if rest:
        text += f" (next: {label(rest[0][1], claim.table)} {_fmt(rest[0][0])})"
    return text


def _toy_verdict(claim: Claim, runs: list[dict[str, Any]]) -> Verdict | None:
    """MIGE's gradient RMSE per seed against the better of MINE and MINE-f (by mean), at one d."""
    rows = toy_rows(runs)
    mige = rows.get(("grad_rmse", "mige", claim.dim), [])
    rivals = [(e, rows.get(("grad_rmse", e, claim.dim), [])) for e in ("mine", "mine_f")]
    rivals = [(e, v) for e, v in rivals if v]
    if not mige or not rivals:
        return None
    name, values = min(rivals, key=lambda item: statistics.fmean(item[1]))
    ours_best = statistics.fmean(mige) <= statistics.fmean(values)
    return judge_best(Arm("mige", tuple(mige)), Arm(name, tuple(values)), ours_best, lower_is_better=True)


def check(claim: Claim, records: Path = RECORDS) -> Outcome:
    """The claim against its records: a verdict, or why there is none."""
    paper = _paper_text(claim)
    if claim.records is None:
        return Outcome(claim, paper, None, [], "not run here")
    runs, unfinished = _runs(claim.records, records)
    if claim.kind == "toy":
        mine = [r for r in runs if r.get("experiment") == "mige_toy"]
        verdict = _toy_verdict(claim, mine)
        return Outcome(claim, paper, verdict, mine, verdict.outcome if verdict else "no records yet")
    table = with_run_rows(TABLES[claim.table], runs)
    column = next(c for c in table.columns if c.key == claim.column)
    mine = [r for r in runs if r.get("experiment") == column.experiment]
    if not mine:
        return Outcome(claim, paper, None, [], "no records yet")
    result = check_column(table, assemble(table, runs, unfinished), column)
    verdict = result.verdict if result else None
    status = verdict.outcome if verdict else (result.note if result else "—")
    return Outcome(claim, paper, verdict, mine, status)


def _arm_text(side: Arm, table: str | None) -> str:
    text = f"{label(side.name, table)} {format_values(list(side.values))}"
    if side.learned and side.successes < len(side.values):
        text += f", {side.successes} of {len(side.values)} learned"
    return text


def device_label(runs: list[dict[str, Any]]) -> str:
    """'Intel Xeon, 1 thr' style: the CPU (or GPU) model and thread counts the runs recorded."""
    names = set()
    for run in runs:
        env = run.get("environment") or {}
        device = str(env.get("device", "?")).replace("(R)", "").replace(" Processor", "")
        device = device.split(" (")[0].removeprefix("CPU ").strip()
        device = "CPU model not recorded" if device == "cpu" else device
        threads = env.get("torch_threads")
        names.add(f"{device}, {threads} thr" if threads else device)
    return "; ".join(sorted(names)) or "—"


def _scale(outcome: Outcome) -> str:
    runs = outcome.runs
    if not runs:
        return outcome.claim.missing.get("cost", "—") if outcome.claim.missing else "—"
    config = runs[0].get("config") or {}
    epochs = (config.get("trainer") or {}).get("max_epochs")
    scale = runs[0].get("debug") or "paper"
    parts = [f"{scale} scale", outcome.claim.data]
    if epochs and outcome.claim.kind != "toy":
        parts.append(f"{epochs} epochs")
    return "; ".join(parts) + f"; {device_label(runs)}; {run_dates(runs)}"


@cache
def outcomes(records: Path = RECORDS, path: Path = CLAIMS_FILE) -> dict[str, Outcome]:
    """Every claim checked once per process (pages quote the same claims many times)."""
    return {claim.id: check(claim, records) for claim in load_claims(path)}


def claims_table(records: Path = RECORDS, path: Path = CLAIMS_FILE) -> str:
    """Markdown: claim | paper | ours (claimed row) | rival here | verdict | effect | ran on | detail."""
    lines = [
        "| claim | paper | ours: the paper's best | ours: its rival | verdict | effect, 95 % CI, p "
        "| scale, data, device, dates | detail |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for outcome in outcomes(records, path).values():
        claim, v = outcome.claim, outcome.verdict
        table = claim.table if claim.kind == "best" else None
        ours = _arm_text(v.claimed, table) if v else "—"
        rival = _arm_text(v.rival, table) if v else "—"
        verdict = f"**{v.outcome}**" if v else outcome.status
        effect = v.effect() if v else "—"
        if v and v.outcome == "undecided" and v.test == "welch":
            needed = f"{v.seeds_needed} seeds/arm for 80 % power" if v.seeds_needed else "a tie at any n"
            effect += f"; {needed}"
        link = f"[{Path(claim.detail).stem}]({claim.detail})"
        cells = [claim.title, outcome.paper, ours, rival, verdict, effect, _scale(outcome), link]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def not_run_list(records: Path = RECORDS, path: Path = CLAIMS_FILE) -> str:
    """Markdown bullets: each claim not run here, why, the command that would settle it, its cost."""
    lines = []
    for claim in load_claims(path):
        if claim.records is not None or not claim.missing:
            continue
        m = claim.missing
        settle = f"Settle with `{m['command']}` ({m['cost']})."
        lines.append(f"- **{claim.title}** ({claim.data}): {m['why']}. {settle}")
    return "\n".join(lines) + "\n" if lines else "Every claim has records here.\n"


def summary_counts(records: Path = RECORDS, path: Path = CLAIMS_FILE) -> dict[str, int]:
    """How many claims hold, do not hold, are undecided, or have no runs here."""
    counts: dict[str, int] = {}
    for outcome in outcomes(records, path).values():
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


def claim_value(claim_id: str, fieldname: str, records: Path = RECORDS, path: Path = CLAIMS_FILE) -> str:
    """One value of a checked claim, for prose: claimed / rival (row and mean ± std), verdict, effect,
    p, paper."""
    checked = outcomes(records, path)
    if claim_id not in checked:
        raise ValueError(f"no claim {claim_id!r} in {path.name}; known: {sorted(checked)}")
    outcome = checked[claim_id]
    v = outcome.verdict
    table = outcome.claim.table if outcome.claim.kind == "best" else None
    values = {
        "paper": outcome.paper,
        "verdict": outcome.status,
        "claimed": _arm_text(v.claimed, table) if v else "—",
        "rival": _arm_text(v.rival, table) if v else "—",
        "effect": v.effect() if v else "—",
        "p": (f"{v.p:.3f}" if v.p >= 0.001 else "< 0.001") if v and v.p is not None else "—",
    }
    if fieldname not in values:
        raise ValueError(f"unknown claim field {fieldname!r}; use one of {sorted(values)}")
    return values[fieldname]
