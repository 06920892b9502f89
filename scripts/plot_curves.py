"""Per-epoch test curves of a folder of run records, one line per run, coloured by loss.

    python scripts/plot_curves.py results/runs/paper/ib_mnist --out results/figures/ib_mnist_curves.png

Reads every `<run>/curve.csv` (written by runs with curve_every_n_epochs > 0, e.g. MIGE Table 2's
MNIST runs) with the loss and seed from the `metrics.json` beside it; unfinished runs that left a
curve (in their run folder) can be plotted the same way.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path


def read_curves(folder: Path) -> list[dict]:
    curves = []
    for path in sorted(folder.rglob("curve.csv")):
        rows = list(csv.DictReader(path.open()))
        if not rows:
            continue
        record_path = path.with_name("metrics.json")
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        metric = next(k for k in rows[0] if k not in ("epoch", "step"))
        curves.append({
            "label": f"{record.get('loss', path.parent.name)} seed {record.get('seed', '?')}",
            "loss": record.get("loss", path.parent.name),
            "status": record.get("status", "unknown"),
            "metric": metric,
            "epochs": [int(r["epoch"]) for r in rows],
            "values": [float(r[metric]) for r in rows],
        })  # fmt: skip
    return curves


def plot(curves: list[dict], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = sorted({c["loss"] for c in curves})
    colours = {loss: plt.get_cmap("tab10")(i) for i, loss in enumerate(losses)}
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for curve in curves:
        style = "-" if curve["status"] == "finished" else ":"
        ax.plot(
            curve["epochs"],
            curve["values"],
            style,
            color=colours[curve["loss"]],
            label=curve["label"],
            lw=1.2,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(curves[0]["metric"].replace("_", " "))
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="searched recursively for curve.csv")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--title", default="test error per epoch (dotted: unfinished runs)")
    args = parser.parse_args(argv)
    curves = read_curves(args.folder)
    if not curves:
        parser.error(f"no curve.csv below {args.folder}; runs write one with curve_every_n_epochs=1")
    return plot(curves, args.out, args.title)


if __name__ == "__main__":
    main()
