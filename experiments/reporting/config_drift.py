"""Overrides that bring today's configs back to the setting some records ran under.

A table's fill command must run the missing cells under the config of the runs already in the
table. Defaults change (a dataset's crops per epoch, a model's bound for one dataset), so the
command line of the old runs is not enough: this composes the fill command as Hydra would today
and names every result-relevant key (experiments.runner.fingerprint) on which all the records
agree with each other but not with today's config.
"""

from __future__ import annotations

import json
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from experiments import CONFIG_DIR
from experiments.runner.fingerprint import key_under, result_config

# set per row or per seed by the fill command itself
_PER_CELL = ("seed", "dataset_module.shuffle_seed", "loss")


def composed_result_config(overrides: list[str]) -> dict[str, Any]:
    """The result-relevant config `python run.py <overrides>` would run today (flattened)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.paths.output_dir = "unused"  # ${hydra:runtime.output_dir} needs a running app
    return result_config(cfg)


def override_value(value: Any) -> str:
    """A value in Hydra's override grammar (numbers, booleans, null, lists, plain strings)."""
    if isinstance(value, str):
        plain = value.replace(".", "").replace("_", "").replace("-", "").isalnum()
        return value if plain else json.dumps(value)
    if isinstance(value, list):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    return json.dumps(value)


def runner_configs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The flattened result configs of the records the runner wrote (they carry a
    ``config_fingerprint``); hand-made or partial records say nothing about a setting."""
    return [result_config(r["config"]) for r in records if r.get("config_fingerprint") and r.get("config")]


def drift_overrides(records: list[dict[str, Any]], overrides: list[str]) -> list[str]:
    """``key=value`` for each key where every record has ``value`` and ``overrides`` compose to
    something else (records from :func:`runner_configs` only)."""
    configs = runner_configs(records)
    if not configs:
        return []
    today = composed_result_config(overrides)
    missing = object()
    drift = []
    for key in sorted(set().union(*configs)):
        if key_under(key, _PER_CELL):
            continue
        values = [c.get(key, missing) for c in configs]
        if any(v is missing or v != values[0] for v in values) or today.get(key, missing) == values[0]:
            continue
        prefix = "" if key in today else "+"  # a key today's configs no longer have
        drift.append(f"{prefix}{key}={override_value(values[0])}")
    return drift
