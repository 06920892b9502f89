"""Read a run config written by older code as today's code would have written it.

Run folders and checkpoints keep the resolved config of their run (checkpoints/run_config.json,
metrics.json, a checkpoint's hyper-parameters). Resuming or skipping a folder compares that config
with the new one (experiments.runner.fingerprint), and ``TaskModule.load_from_checkpoint`` builds
the module from it; both go through :func:`upgrade_config`, so runs from before a layout change
still resume, skip and load. The changes so far:

* modules moved from ``experiments/<name>.py`` into tasks/, datasets/, runner/ and reporting/;
  a ``_target_`` naming an old module path is rewritten to the new one;
* loss configs gained ``_target_`` (the loss class) and lost ``family`` (now the class's
  attribute). An old loss block (``family``, no ``_target_``) gets the keys that today's
  configs/loss/<name>.yaml adds (``_target_``, ``_partial_``, the fixed ``bound`` and
  ``prior_matching`` of the DIM critics, ...) and drops the keys it no longer has: ``family``,
  and the critics' ``x_dim``, which the task now derives from the encoder. Arguments both have
  (bins, beta, ...) are kept as the old run had them, so a changed argument is still a change;
* keys added to configs/config.yaml later (``ADDED_KEYS``) get the value that reproduces what
  older runs did (``ema_decay: null``: they evaluated the raw weights).
"""

from __future__ import annotations

import copy
from typing import Any

from omegaconf import OmegaConf

from experiments import CONFIG_DIR

_OLD_MODULES = {
    "tasks": ("base", "bar_alignment", "mask_prediction", "stereo_depth", "infomax", "bottleneck",
              "mige_toy", "schedules"),
    "datasets": ("datamodule", "real_datasets"),
    "runner": ("train", "checkpointing", "config_checks", "curves", "divergence", "fingerprint"),
    "reporting": ("results", "tables", "toy_summary"),
}  # fmt: skip
MOVED_MODULES = {
    f"experiments.{name}": f"experiments.{package}.{name}"
    for package, names in _OLD_MODULES.items()
    for name in names
}


def _moved_target(target: str) -> str:
    module, _, attribute = target.rpartition(".")
    return f"{MOVED_MODULES[module]}.{attribute}" if module in MOVED_MODULES else target


def _upgrade_targets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _moved_target(v) if k == "_target_" and isinstance(v, str) else _upgrade_targets(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_upgrade_targets(v) for v in value]
    return value


def _upgrade_loss(loss: dict[str, Any]) -> dict[str, Any]:
    if "_target_" in loss or "family" not in loss:
        return loss
    path = CONFIG_DIR / "loss" / f"{loss.get('name')}.yaml"
    if not path.exists():  # a loss that no longer exists: keep the block, it will differ from any new one
        return {k: v for k, v in loss.items() if k != "family"}
    current = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    kept = {k: v for k, v in loss.items() if k in current}
    return {**kept, **{k: v for k, v in current.items() if k not in loss}}


# top-level keys added after runs were recorded, with the value that means "as before"
ADDED_KEYS: dict[str, Any] = {"ema_decay": None}


def upgrade_config(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a resolved run config in today's layout (unchanged if it already is)."""
    upgraded = _upgrade_targets(copy.deepcopy(config))
    for key, value in ADDED_KEYS.items():
        upgraded.setdefault(key, value)
    if isinstance(upgraded.get("loss"), dict):
        upgraded["loss"] = _upgrade_loss(upgraded["loss"])
    return upgraded
