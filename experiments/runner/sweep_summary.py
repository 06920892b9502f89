"""At the end of a multirun: every job that did not finish, by folder and reason, and a failing exit code.

run.py records a job's failure in its folder and lets the sweep go on (one NaN job must not cost
the others); this Hydra callback then lists the jobs whose record is not ``finished`` (or
``evaluated``), so the sweep's last lines, not a scroll-back, say what to rerun, and exits
non-zero so that a scheduler sees that not every job finished.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments.runner.record import EVALUATION_FILE, read_record

log = logging.getLogger(__name__)


def unfinished_jobs(sweep_dir: Path) -> list[tuple[Path, str, str]]:
    """(folder, status, reason) of each job folder under sweep_dir whose record did not finish."""
    rows = []
    for hydra_dir in sorted(sweep_dir.rglob(".hydra")):
        folder = hydra_dir.parent
        record = read_record(folder) or read_record(folder, EVALUATION_FILE)
        if record is None:
            rows.append((folder, "no record", "failed before the run started: see its log"))
        elif record.get("status") not in ("finished", "evaluated"):
            reason = record.get("stop_reason") or record.get("error") or ""
            rows.append((folder, str(record.get("status")), str(reason).splitlines()[0] if reason else ""))
    return rows


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = unfinished_jobs(sweep_dir)
        if not rows:
            print(f"sweep finished: every job in {sweep_dir} has a finished record", flush=True)
            return
        lines = [f"{len(rows)} job(s) in {sweep_dir} did not finish:"]
        lines += [f"  {status:<9} {folder.name}: {reason}" for folder, status, reason in rows]
        lines.append("continue a stopped or failed one with: python run.py resume='<its folder>'")
        print("\n".join(lines), flush=True)
        raise SystemExit(1)
