"""A run's record, ``metrics.json``: how the run ended, and nothing it did not do.

``status`` is one of

* ``running``: written when the run claims its folder, so a killed run (SIGKILL) never leaves an
  older result behind;
* ``finished``: fit ran to the end and the test ran (``metrics``); ``flag_worse_than_baseline``
  lists test metrics on which a trivial predictor did better;
* ``diverged``: a NaN or inf in training (``diverged_at_step``, ``stop_reason``);
* ``stopped``: a signal (``stop_signal``: SIGTERM, SIGINT) or a limit (``trainer.max_time``, a
  callback) ended fit early; ``stop_reason`` says which and where the run resumes from;
* ``failed``: any other exception (``error_type``, ``error``).

Evaluating a checkpoint (``train=false``) writes ``evaluation.json`` with status ``evaluated``
instead, so it never replaces a training record. A ``finished`` record is never overwritten by a
later run in its folder (experiments.runner.train refuses such a run). ``run.py`` exits 0 only for
``finished`` and ``evaluated`` (:func:`exit_code`).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
EVALUATION_FILE = "evaluation.json"
RUN_CONFIG_FILE = "checkpoints/run_config.json"
STATUSES = ("running", "finished", "diverged", "stopped", "failed", "evaluated")
# process exit codes by status (a signal stop exits 128 + the signal number, as a shell reports it)
EXIT_CODES = {"finished": 0, "evaluated": 0, "failed": 1, "diverged": 3, "stopped": 4, "running": 1}


def exit_code(record: dict[str, Any]) -> int:
    signum = record.get("stop_signal_number")
    if record.get("status") == "stopped" and signum:
        return 128 + int(signum)
    return EXIT_CODES.get(record.get("status", "failed"), 1)


def read_record(folder: Path, name: str = METRICS_FILE) -> dict[str, Any] | None:
    """The record in folder (any status), if there is a readable one."""
    try:
        record = json.loads((Path(folder) / name).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def write_record(folder: Path, record: dict[str, Any], name: str = METRICS_FILE) -> Path:
    """Write atomically (a kill mid-write leaves the previous record whole)."""
    path = Path(folder) / name
    tmp = path.with_name(f".{name}.partial")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    tmp.replace(path)
    return path


def describe_run(cfg: DictConfig) -> dict[str, Any]:
    """The fields a table builder needs to place this run in a table cell."""
    loss = cfg.get("loss")
    return {
        "experiment": cfg.experiment_name,
        "loss": loss.name if loss is not None else None,
        "bins": loss.get("bins") if loss is not None else None,
        "seed": cfg.seed,
        "debug": HydraConfig.get().runtime.choices.get("debug") if HydraConfig.initialized() else None,
    }


def error_fields(error: BaseException) -> dict[str, Any]:
    """``failed``'s fields: the exception's type and message (its cause's too when it wraps one)."""
    fields: dict[str, Any] = {"error_type": type(error).__name__, "error": str(error)}
    cause = error.__cause__
    if cause is not None and str(cause) not in str(error):
        fields["error_cause"] = f"{type(cause).__name__}: {cause}"
    return fields


# substrings of test metric names for which higher is better; every other metric is an error
HIGHER_IS_BETTER = ("iou", "acc", "delta")  # "acc" covers accuracy and DIM's test/acc_<level>


def higher_is_better(name: str) -> bool:
    return any(part in name for part in HIGHER_IS_BETTER)


def baselines_of(metrics: dict[str, float], name: str) -> dict[str, float]:
    """The trivial baselines logged for test metric ``name``: test/baseline_<name> or
    test/baseline_<label>_<name> (several for Exp2: mask everywhere, mask nowhere), by label."""
    found = {}
    for key, value in metrics.items():
        rest = key.removeprefix("test/baseline_")
        if key.startswith("test/baseline_") and (rest == name or rest.endswith(f"_{name}")):
            found["baseline" if rest == name else rest.removesuffix(f"_{name}")] = value
    return found


def worse_than_baseline(metrics: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Test metrics on which a trivial baseline did better than the trained model (the
    record's ``flag_worse_than_baseline``), with the value and the best baseline's."""
    flags = {}
    for key, value in metrics.items():
        if not key.startswith("test/") or key.startswith("test/baseline_"):
            continue
        name = key.removeprefix("test/")
        higher = higher_is_better(name)
        for label, baseline in baselines_of(metrics, name).items():
            if not (math.isfinite(value) and math.isfinite(baseline)):
                continue
            if (value < baseline) if higher else (value > baseline):
                flags[name] = {"value": value, "baseline": baseline, "baseline_name": label}
                break
    return flags


def summarize(metrics: dict[str, float]) -> str:
    """One line per test metric, with the trivial baseline's value beside it where the module logs one."""
    lines = ["test metrics (trivial baseline in brackets):"]
    flags = worse_than_baseline(metrics)
    for key, value in metrics.items():
        if key.startswith("test/baseline_") or not key.startswith("test/"):
            continue
        name = key.removeprefix("test/")
        baselines = [f"{label} {v:.4g}" for label, v in baselines_of(metrics, name).items()]
        line = f"  {name:<16} {value:.4g}" + (f"  [{', '.join(baselines)}]" if baselines else "")
        lines.append(line + ("  WORSE THAN THE TRIVIAL BASELINE" if name in flags else ""))
    return "\n".join(lines)


# A divergence is an outcome of the method (the tables count it as a failed seed), so its record is
# kept like a finished one; a stopped or failed run did not end, it resumes or is rerun, so it is not.
KEPT_STATUSES = ("finished", "diverged")
# small per-run outputs kept with the record (curves, toy tables); never checkpoints or images
KEPT_SUFFIXES = (".csv",)
KEPT_MAX_BYTES = 256_000
DATA_PLACEHOLDER = "$DEEPMI_DATA"  # what a committed record says for a data root outside the repo


def keep_record(cfg: DictConfig, output_dir: Path, records_dir: Path, name: str) -> Path:
    """Copy a finished or diverged run's metrics.json (and its small CSV curves) to records_dir/<name>/.

    records_dir is meant to be tracked by git (results/runs/<scale>/<experiment>), so the copy has
    the repository's absolute root replaced by "." and a data folder outside it by
    "$DEEPMI_DATA", and nothing machine-specific beyond the environment block that says which
    device produced it.
    """
    target = records_dir / name
    target.mkdir(parents=True, exist_ok=True)
    text = redact_paths((output_dir / METRICS_FILE).read_text(), cfg)
    (target / METRICS_FILE).write_text(text)
    for path in output_dir.iterdir():
        if path.suffix in KEPT_SUFFIXES and path.stat().st_size <= KEPT_MAX_BYTES:
            (target / path.name).write_bytes(path.read_bytes())
    log.info("record kept in %s", target)
    return target


def redact_paths(text: str, cfg: DictConfig) -> str:
    """This machine's absolute folders in a record's text, replaced by names any machine can read."""
    root = str(Path(cfg.paths.root_dir).resolve())
    data = str(Path(cfg.paths.data_dir).resolve())
    if not Path(data).is_relative_to(root):  # DEEPMI_DATA elsewhere (under the root, "./data" is right)
        text = text.replace(data, DATA_PLACEHOLDER)
    return text.replace(root, ".")
