"""Per-epoch test curves of a folder of run records, one line per run, coloured by loss.

    python scripts/plot_curves.py results/runs/paper/ib_mnist --out results/figures/ib_mnist_curves.png
    python scripts/plot_curves.py results/runs/middlebury/exp3_depth --metric epe_px --out epe.png
    python scripts/plot_curves.py results/runs/cpu_30ep/exp2_mask --metric iou_0.40 --yscale linear \
        --out iou.png
    python scripts/plot_curves.py results/runs/middlebury_20ep/exp3_depth \
        results/runs/middlebury_20ep_ndisp/exp3_depth --label-key model.max_disparity --metric epe_px \
        --out ablation.png

Several folders can be drawn together; ``--label-key`` names the config setting that tells their
runs apart (an ablation), which then enters each label and colour.

Reads every `<run>/curve.csv` (written by runs with curve_every_n_epochs > 0, e.g. MIGE Table 2's
MNIST runs) with the loss and seed from the `metrics.json` beside it; unfinished runs that left a
curve (in their run folder) can be plotted the same way.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from experiments.reporting.figures import save_png
from experiments.reporting.results import config_value, trivial_baselines


def read_record(path: Path) -> dict:
    """The metrics.json beside a curve ({} if there is none); a malformed one is named."""
    if not path.exists():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{path} is not a readable run record ({exc}); delete it or rerun that run"
        ) from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} is not a run record (a JSON object); delete it or rerun that run")
    return {**record, "path": str(path)}


def read_curves(folder: Path, metric: str | None = None, label_key: str | None = None) -> list[dict]:
    """One entry per curve.csv below ``folder``: the column ``metric`` (default: the first one);
    with ``label_key``, the runs are grouped by the loss and that config setting (runs whose config
    has no such key, e.g. ``loss.bins`` of a loss without bins, by their loss alone)."""
    curves = []
    for path in sorted(folder.rglob("curve.csv")):
        rows = list(csv.DictReader(path.open()))
        if not rows:
            continue
        record = read_record(path.with_name("metrics.json"))
        columns = [k for k in rows[0] if k not in ("epoch", "step")]
        if metric is not None and metric not in columns:
            raise ValueError(f"{path} has no column {metric!r}; it has {', '.join(columns)}")
        name = metric or columns[0]
        group = record.get("loss", path.parent.name)
        if label_key is not None:
            try:
                group = f"{group} {label_key.split('.')[-1]}={config_value(record, label_key)}"
            except ValueError:
                pass  # checked over all runs in check_label_key: a key no run has is an error
        curves.append({
            "label": f"{group} seed {record.get('seed', '?')}",
            "group": group,
            "status": record.get("status", "unknown"),
            "metric": name,
            "baselines": trivial_baselines(record, name),
            "epochs": [int(r["epoch"]) for r in rows],
            "values": [float(r[name]) for r in rows],
            "config": record.get("config", {}),
        })  # fmt: skip
    return curves


def check_label_key(curves: list[dict], label_key: str | None) -> None:
    """A --label-key that no run's config has is a typo: name it (a key some runs lack is fine)."""
    if label_key is None or not curves:
        return
    for curve in curves:
        try:
            config_value({"config": curve["config"]}, label_key)
            return
        except ValueError:
            continue
    raise ValueError(f"no run's config has {label_key!r}; pick a dotted key of metrics.json's config")


def plot(curves: list[dict], out: Path, title: str, yscale: str = "log") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({c["group"] for c in curves})
    colours = {group: plt.get_cmap("tab10")(i) for i, group in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for curve in curves:
        style = "-" if curve["status"] == "finished" else ":"
        ax.plot(
            curve["epochs"],
            curve["values"],
            style,
            color=colours[curve["group"]],
            label=curve["label"],
            lw=1.2,
        )
    # one line per distinct trivial baseline (normally one per title: the runs share a test split)
    baselines = sorted({item for c in curves for item in c["baselines"].items()})
    for (name, value), ls in zip(baselines, ("--", ":", "-.", (0, (1, 3))) * 4, strict=False):
        ax.axhline(value, color="grey", ls=ls, lw=1, label=f"baseline: {name}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(curves[0]["metric"].replace("_", " "))
    ax.set_yscale(yscale)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    return save_png(fig, out)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", type=Path, nargs="+", help="searched recursively for curve.csv")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--metric", help="the curve.csv column to plot (default: the first)")
    parser.add_argument(
        "--label-key", help="a dotted config key that tells the runs apart, e.g. model.max_disparity"
    )
    parser.add_argument("--title", default="test metric per epoch (dotted: unfinished runs)")
    parser.add_argument(
        "--yscale", choices=("log", "linear"), default="log",
        help="log suits errors that shrink by factors; linear suits bounded scores such as IoU",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        curves = [c for folder in args.folders for c in read_curves(folder, args.metric, args.label_key)]
        check_label_key(curves, args.label_key)
    except ValueError as exc:
        parser.error(str(exc))
    if not curves:
        folders = ", ".join(map(str, args.folders))
        parser.error(f"no curve.csv below {folders}; runs write one with curve_every_n_epochs=1")
    out = plot(curves, args.out, args.title, args.yscale)
    print(f"wrote {out} ({len(curves)} curves)")
    return out


if __name__ == "__main__":
    main()
