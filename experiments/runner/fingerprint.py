"""What makes two runs the same run: a fingerprint of the config keys that can change a result.

Resuming (``ckpt_path=last``) or skipping (``skip_if_finished=true``) a run folder is only right
when the folder's run had the same result-relevant config; otherwise an lmi checkpoint could be
continued, or an lmi result relabelled, under ``loss=l2``. Keys that only say where files go or
how progress is shown are left out, so moving data or changing the logger keeps the fingerprint.
Configs written by older code are first read in today's layout (experiments.runner.legacy).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from experiments.runner.legacy import upgrade_config

# Dotted keys (and everything below them) that never change what a run computes.
IGNORED_KEYS = (
    "paths",
    "logger",
    "callbacks",
    "checkpoint",
    "records_dir",
    "curve_every_n_epochs",
    "ckpt_path",
    "skip_if_finished",
    "wandb_group",
    # which loss families the experiment accepts: a check before the run, not an input to it
    "loss_family",
    "test",
    "train",
    "trainer.default_root_dir",
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "trainer.max_time",
    "dataset.root",
    "dataset.progress",
    "dataset.download",
    "dataset.base_url",
    "dataset_module.num_workers",
)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat if flat or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: value}


def key_under(key: str, roots: tuple[str, ...]) -> bool:
    """Whether the dotted ``key`` is one of ``roots`` or lies below one (``model.widths`` under ``model``)."""
    return any(key == root or key.startswith(f"{root}.") for root in roots)


def result_config(cfg: DictConfig | dict[str, Any]) -> dict[str, Any]:
    """The resolved config flattened to dotted keys, without the keys that cannot change a result."""
    container = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    container = upgrade_config({k: v for k, v in container.items() if k != "hydra"})
    return {k: v for k, v in _flatten(container).items() if not key_under(k, IGNORED_KEYS)}


def fingerprint(cfg: DictConfig | dict[str, Any]) -> str:
    text = json.dumps(result_config(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(old: dict[str, Any], new: dict[str, Any], limit: int = 8) -> list[str]:
    """'key: old -> new' for result-relevant keys that differ (both flattened by result_config)."""
    keys = sorted(set(old) | set(new))
    missing = object()
    lines = [
        f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}"
        for k in keys
        if old.get(k, missing) != new.get(k, missing)
    ]
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])
