"""Give every committed run record the date it landed: ``python -m experiments.reporting.record_dates``.

Records written before the runner stamped ``ended_at`` carry no date, but each was committed under
results/runs/ within minutes of its run's end, so the date of the commit that added its
metrics.json is the run's date to the day. This writes it as ``record_date`` (YYYY-MM-DD, UTC) into
each record that has neither field; records not yet committed are left alone (run it again after
committing them). Pages then state the dates of the runs behind every table (``run_dates``).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from experiments import REPO_ROOT

RECORDS = REPO_ROOT / "results" / "runs"


def run_date(record: dict[str, Any]) -> str | None:
    """The run's date (YYYY-MM-DD): when it ended if the runner said so, else when it was committed."""
    ended = record.get("ended_at")
    return str(ended)[:10] if ended else record.get("record_date")


def run_dates(records: Iterable[dict[str, Any]]) -> str:
    """'2026-12-03' or '2026-12-03 to 2026-12-07' over the records, or 'date not recorded'."""
    dates = sorted({d for r in records if (d := run_date(r))})
    if not dates:
        return "date not recorded"
    return dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"


def commit_dates(folder: Path = RECORDS) -> dict[Path, str]:
    """metrics.json path -> the UTC date of the commit that first added it."""
    log = subprocess.run(
        ["git", "log", "--no-renames", "--diff-filter=A", "--date=format-local:%Y-%m-%d",
         "--format=@%cd", "--name-only", "--", str(folder)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    dates: dict[Path, str] = {}
    date = None
    for line in log.stdout.splitlines():
        if line.startswith("@"):
            date = line[1:]
        elif line.endswith("metrics.json") and date:
            dates[(REPO_ROOT / line).resolve()] = date
    return dates


def stamp(folder: Path = RECORDS) -> list[Path]:
    """Write ``record_date`` into every committed record below ``folder`` that has no date yet."""
    dates, written = commit_dates(folder), []
    for path in sorted(folder.rglob("metrics.json")):
        record = json.loads(path.read_text())
        if run_date(record) or path.resolve() not in dates:
            continue
        record["record_date"] = dates[path.resolve()]
        path.write_text(json.dumps(record, indent=2))  # as the runner writes it
        written.append(path)
    return written


if __name__ == "__main__":
    print(f"dated {len(stamp())} record(s) below {RECORDS.relative_to(REPO_ROOT)}")
