"""A table across sibling record folders that differ in one config setting (a tuned learning rate,
say), with the columns of a paper table: each row is a loss (with its bin count when that is not
the default) and the setting's value, so tuning one loss's knob is read beside another's.

RESULTS.md embeds one as ``<!-- make_tables: sweep/<name> -->``, ``name`` a key of SETTING_SWEEPS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from experiments.reporting.results import (
    assemble,
    baseline_cells,
    config_value,
    default_bins,
    load_runs,
    scale_summary,
    to_markdown,
)
from experiments.reporting.tables import TABLES


@dataclass(frozen=True)
class SettingSweep:
    title: str
    folders: tuple[str, ...]  # below results/runs; one Hydra sweep each
    key: str  # the dotted config key whose value joins each row's label
    table: str  # a key of TABLES: whose columns (and baselines) to show
    only: tuple[str, ...] = ()  # keep the rows whose label starts with one of these ("ssim", "lmi N=50")


SETTING_SWEEPS: dict[str, SettingSweep] = {
    "exp1-batch-size": SettingSweep(
        title="Exp1 at paper scale: the batch size, for L1, L_MI and L_LMI",
        folders=("paper/exp1_bar", "paper_bs4/exp1_bar", "paper_bs16/exp1_bar"),
        key="dataset_module.batch_size",
        table="deepmi-exp1-bar",
        only=("l1 batch", "mi batch", "lmi batch"),
    ),
    "exp3-heldout-lr": SettingSweep(
        title="Exp3 on the held-out validation scenes: SSIM's learning rate beside L_LMI's bin count",
        folders=(
            "cpu_heldout/exp3_depth",
            "cpu_heldout_ssim_lr3e-4/exp3_depth",
            "cpu_heldout_ssim_lr3e-3/exp3_depth",
            "cpu_heldout_ssim_lr1e-2/exp3_depth",
        ),
        key="module.optimizer.lr",
        table="deepmi-exp3-depth",
    ),
    "exp3-test-lr": SettingSweep(
        title="Exp3 on the test scenes: SSIM at the validated learning rate beside L_LMI at N = 50",
        folders=("cpu/exp3_depth", "cpu_ssim_lr3e-3/exp3_depth"),
        key="module.optimizer.lr",
        table="deepmi-exp3-depth",
        only=("ssim", "lmi N=50"),
    ),
}


def run_label(run: dict[str, Any], label_keys: Sequence[str] = ()) -> str:
    """The loss, with its bin count when that is not the loss's default, then ``key=value`` for
    each of ``label_keys`` (named by their last component): "lmi N=25 lr=0.001"."""
    loss, bins = run.get("loss", "?"), run.get("bins")
    label = loss if bins == default_bins(loss) else f"{loss} N={bins}"
    for key in label_keys:
        label += f" {key.rsplit('.', 1)[-1]}={config_value(run, key)}"
    return label


def _selected(label: str, prefix: str) -> bool:
    """Does a row label start with ``prefix`` word by word: the loss name exactly, each later word
    as a prefix ("lmi batch" selects "lmi batch_size=4", not "lmi N=3 batch_size=8" nor "mine")?"""
    words, wanted = label.split(), prefix.split()
    if len(words) < len(wanted) or words[0] != wanted[0]:
        return False
    return all(w.startswith(p) for w, p in zip(words[1:], wanted[1:], strict=False))


def _number(text: str) -> tuple[float, str]:
    try:
        return float(text), text
    except ValueError:
        return float("inf"), text


def label_order(label: str) -> tuple[str, int, tuple[tuple[float, str], ...]]:
    """Losses alphabetically; a loss's default bin count first, then its other counts ascending;
    then the label keys' values, numerically where they are numbers."""
    loss, _, rest = label.partition(" ")
    bins, _, keys = rest.removeprefix("N=").partition(" ") if rest.startswith("N=") else ("", "", rest)
    values = tuple(_number(pair.partition("=")[2]) for pair in keys.split())
    return loss, int(bins) if bins.isdigit() else -1, values


def render_setting_sweep(name: str, records: Path) -> str:
    """The markdown of SETTING_SWEEPS[name] from the records below ``records``."""
    if name not in SETTING_SWEEPS:
        raise ValueError(f"unknown setting sweep {name!r}; use one of {list(SETTING_SWEEPS)}")
    sweep = SETTING_SWEEPS[name]
    runs = []
    for folder in sweep.folders:  # one folder at a time: the same seed sits in several sweeps
        found = load_runs(records / folder, (sweep.key,)) if (records / folder).is_dir() else []
        for run in found:
            # the row is the label; a label is no loss file, so its "default bins" is None
            label = run_label(run, (sweep.key,))
            if not sweep.only or any(_selected(label, prefix) for prefix in sweep.only):
                runs.append({**run, "loss": label, "bins": None})
    if not runs:
        return "No records yet.\n"
    base = TABLES[sweep.table]
    rows = tuple(sorted({run["loss"] for run in runs}, key=label_order))
    table = replace(base, name=sweep.title, row_field="setting", rows=rows, fixed={}, extra_rows=())
    folders = ", ".join(f"`results/runs/{f}`" for f in sweep.folders)
    return "\n".join([
        f"### {sweep.title}",
        "",
        f"Each cell: mean ± std (number of seeds); best per column in bold. Records: {folders}.",
        "",
        to_markdown(table, assemble(table, runs), baseline_cells(table, runs)),
        "",
        "Scale of the runs:",
        *scale_summary(table, runs),
        "",
    ])  # fmt: skip
