"""Every seed's final test metric as a dot, one column of dots per loss (or bin count), with the
trivial baselines as dashed lines: a bimodal loss (some seeds learn, some stay at the baseline)
shows at a glance, where a table's mean ± std hides it.

    python scripts/plot_seeds.py results/runs/cpu/exp2_mask --metric test/iou_0.05 test/iou_0.50 \\
        --out results/figures/exp2_mask_seeds_cpu.png

Reads the finished records below each folder (metrics.json, as make_tables.py does); a histogram
loss at a bin count other than its default is its own column ("lmi N=25"). A hyper-parameter
sweep kept in sibling folders is compared by naming the key that differs:

    python scripts/plot_seeds.py results/runs/cpu_heldout/exp3_depth \\
        results/runs/cpu_heldout_ssim_lr3e-4/exp3_depth --label-key module.optimizer.lr \\
        --metric test/mae_depth_m --out results/figures/exp3_heldout_seeds.png

makes the columns "ssim lr=0.001", "ssim lr=0.0003", ...
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments.reporting.figures import save_png
from experiments.reporting.results import load_runs, trivial_baselines
from experiments.reporting.setting_sweep import label_order, run_label


def seed_values(
    runs: list[dict[str, Any]], metric: str, label_keys: Sequence[str] = ()
) -> dict[str, list[tuple[int, float]]]:
    """label -> [(seed, value)] for the runs that report ``metric``, labels in first-seen order."""
    values: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for run in runs:
        if metric in run.get("metrics", {}):
            values[run_label(run, label_keys)].append((run.get("seed", -1), run["metrics"][metric]))
    return {label: sorted(pairs) for label, pairs in values.items()}


def baselines(runs: list[dict[str, Any]], metric: str) -> dict[str, float]:
    """Trivial baseline title -> its value for ``metric`` (the same in every run of one split)."""
    found: dict[str, float] = {}
    for run in runs:
        for title, value in trivial_baselines(run, metric).items():
            found.setdefault(title, value)
    return found


def plot(
    runs: list[dict[str, Any]], metrics: list[str], out: Path, title: str, label_keys: Sequence[str] = ()
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics) + 1, 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        per_row = seed_values(runs, metric, label_keys)
        if not per_row:
            raise ValueError(f"no finished record reports {metric!r}")
        labels = sorted(per_row, key=label_order)
        for x, label in enumerate(labels):
            seeds = per_row[label]
            # spread the dots sideways by seed so equal values stay visible
            xs = [x + 0.08 * (i - (len(seeds) - 1) / 2) for i in range(len(seeds))]
            ax.scatter(xs, [v for _, v in seeds], s=18, color=plt.get_cmap("tab10")(x % 10), zorder=3)
        for (name, value), ls in zip(baselines(runs, metric).items(), ("--", ":", "-."), strict=False):
            ax.axhline(value, color="grey", ls=ls, lw=1, label=f"baseline: {name}")
        ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=8)
        ax.set_title(metric.removeprefix("test/"), fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    if names:  # records written before the baselines were measured have none
        fig.legend(
            handles, names, loc="lower center", ncol=len(names), fontsize=8, bbox_to_anchor=(0.5, -0.1)
        )
    fig.suptitle(title, fontsize=10)
    return save_png(fig, out)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", type=Path, nargs="+", help="searched recursively for metrics.json")
    parser.add_argument("--metric", nargs="+", required=True, help="metric keys, e.g. test/iou_0.05")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--title", default="final test metric per seed (dashed: trivial baselines)")
    parser.add_argument(
        "--label-key", nargs="+", default=[], metavar="KEY",
        help="config keys (dotted, e.g. module.optimizer.lr) whose values join each column's label",
    )  # fmt: skip
    args = parser.parse_args(argv)
    runs = []
    try:
        for folder in args.folders:  # one folder at a time: the same seed may sit in two sweeps
            found = load_runs(folder, args.label_key)
            if not found:
                parser.error(f"no finished run record (metrics.json) below {folder}")
            runs += found
        out = plot(runs, args.metric, args.out, args.title, args.label_key)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"wrote {out} ({len(runs)} runs)")
    return out


if __name__ == "__main__":
    main()
