"""MIGE Fig. 1 in numbers: each estimator's error against the closed form, averaged over seeds.

The figure itself (mige_toy.png, one per run) shows the curves; this table is what RESULTS.md
quotes: the root mean square error over the rho grid of dI/drho (and of I where the estimator
gives one), per dimension d, as mean ± std over the runs' seeds.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

from experiments.reporting.record_dates import run_dates
from experiments.reporting.results import format_values

ESTIMATORS = ("mine", "mine_f", "mige")
METRIC = re.compile(r"^(grad_rmse|mi_rmse)/(\w+)/d(\d+)$")


def _cell(values: list[float]) -> str:
    return format_values(values) or "—"


def toy_rows(runs: list[dict[str, Any]]) -> dict[tuple[str, str, int], list[float]]:
    """(quantity, estimator, d) -> one value per run; quantity is grad_rmse or mi_rmse."""
    rows: dict[tuple[str, str, int], list[float]] = {}
    for run in runs:
        if run.get("experiment") != "mige_toy":
            continue
        for key, value in run.get("metrics", {}).items():
            match = METRIC.match(key)
            if match:
                quantity, estimator, d = match.groups()
                rows.setdefault((quantity, estimator, int(d)), []).append(float(value))
    return rows


def toy_markdown(runs: list[dict[str, Any]]) -> str:
    """Markdown: one row per d, columns the estimators' gradient (and MI) RMSE; best gradient in bold."""
    rows = toy_rows(runs)
    dims = sorted({d for _, _, d in rows})
    header = ["d", *(f"dI/drho RMSE {e}" for e in ESTIMATORS), *(f"I RMSE {e}" for e in ESTIMATORS[:2])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for d in dims:
        grads = {e: rows.get(("grad_rmse", e, d), []) for e in ESTIMATORS}
        best = min((statistics.fmean(v), e) for e, v in grads.items() if v)[1]
        cells = [f"**{_cell(v)}**" if e == best else _cell(v) for e, v in grads.items()]
        cells += [_cell(rows.get(("mi_rmse", e, d), [])) for e in ESTIMATORS[:2]]
        lines.append("| " + " | ".join([str(d), *cells]) + " |")
    seeds = sorted({r.get("seed") for r in runs if r.get("experiment") == "mige_toy"}, key=str)
    config = next(r["config"] for r in runs if r.get("experiment") == "mige_toy")
    module = config.get("module", {})
    toy_runs = [r for r in runs if r.get("experiment") == "mige_toy"]
    wall = sum(r.get("wall_time_s", 0) for r in toy_runs)
    devices = sorted({str((r.get("environment") or {}).get("device", "?")) for r in toy_runs})
    lines += [
        "",
        f"Scale: {module.get('n_rhos')} values of rho in [{module.get('rho_min')}, {module.get('rho_max')}], "
        f"{module.get('n_samples')} samples per rho for MIGE, MINE/MINE-f trained {module.get('mine_steps')} "
        f"steps of batch {module.get('mine_batch')} per rho; seeds {seeds}; "
        f"total wall time {wall / 60:.1f} min; device {', '.join(devices)}; run dates {run_dates(toy_runs)}.",
    ]
    return "\n".join(lines)
