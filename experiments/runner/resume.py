"""Whether a run folder or checkpoint may be continued, skipped or evaluated as this config's run.

Resuming (``ckpt_path``) compares the config stored inside the checkpoint itself, so a folder
holding only an lmi ``last.ckpt`` cannot be finished and recorded as ``loss=l2``; checkpoints
without one (older code) fall back to the folder's ``checkpoints/run_config.json`` or record. A
checkpoint is read (and a damaged one named) before anything in the folder is written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from experiments.runner.checkpointing import LAST, read_checkpoint, stored_config
from experiments.runner.fingerprint import differences, result_config
from experiments.runner.record import RUN_CONFIG_FILE, read_record

log = logging.getLogger(__name__)


class ConfigMismatchError(ValueError):
    """A folder or checkpoint that holds a run of another result-relevant config."""


def resolve_ckpt_path(cfg: DictConfig, output_dir: Path) -> str | None:
    """'last' -> this run folder's last checkpoint if one exists (else a fresh start)."""
    if cfg.get("ckpt_path") != "last":
        return cfg.get("ckpt_path")
    last = output_dir / "checkpoints" / LAST
    if last.exists():
        log.info("resuming from %s", last)
        return str(last)
    log.info("ckpt_path=last but %s does not exist yet: starting fresh", last)
    return None


def check_same_run(cfg: DictConfig, old_config: dict[str, Any] | None, where: Path, action: str) -> None:
    """Refuse to resume or skip a folder or checkpoint whose run had another result-relevant config."""
    if old_config is None:
        return
    changed = differences(result_config(old_config), result_config(cfg))
    if changed:
        raise ConfigMismatchError(
            f"{where} holds a run with another config, so it cannot be {action}:\n  "
            + "\n  ".join(changed)
            + "\nRun in a new folder (drop hydra.run.dir / hydra.sweep.dir, or pick another), or delete "
            "that folder to start over there."
        )


def folder_run_config(output_dir: Path) -> dict[str, Any] | None:
    """The config the checkpoint in output_dir was trained with (saved beside it), else the record's."""
    try:
        return json.loads((output_dir / RUN_CONFIG_FILE).read_text())["config"]
    except (OSError, json.JSONDecodeError, KeyError):
        record = read_record(output_dir)
        return record.get("config") if record else None


def check_resume(cfg: DictConfig, output_dir: Path, ckpt_path: str) -> None:
    """Read the checkpoint (a damaged one is named with its fix) and refuse one of another config."""
    checkpoint = read_checkpoint(ckpt_path)
    config = stored_config(checkpoint)
    if config is None and Path(ckpt_path).resolve().parent == (output_dir / "checkpoints").resolve():
        config = folder_run_config(output_dir)
    check_same_run(cfg, config, Path(ckpt_path), "resumed")


def finished_record(
    cfg: DictConfig, folder: Path, action: str = "skipped as finished"
) -> dict[str, Any] | None:
    """The finished record in folder (a run folder or a kept record's), if any.

    One of another result-relevant config is refused, never taken for this run.
    """
    record = read_record(folder)
    if record is None or record.get("status") != "finished":
        return None
    check_same_run(cfg, record.get("config"), folder, action)
    log.info("%s already holds this run's finished record: not training it again", folder)
    return record
