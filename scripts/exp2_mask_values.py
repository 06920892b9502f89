"""Where do an Exp2 network's mask values sit, inside and outside the cut-out rectangle?

    python scripts/exp2_mask_values.py --ckpt L_LMI=runs/.../checkpoints/last.ckpt --ckpt L1=...

Exp2's IoU at threshold t (DeepMI Table 1) counts the pixels with M_s < t. A loss compares
I_s * M_s with I_t, so where the source is black (I_s ~ 0) the product, hence the loss, does not
depend on M_s at all: the mask is unidentifiable there, and any value it takes is the network's
extrapolation. This prints, per checkpoint and over the whole test split, the share of pixels
outside the rectangle called dissimilar at each threshold (false positives) and how dark the
source is at those pixels, so a low IoU at high thresholds can be traced to such pixels; and the
IoU at each threshold over the identifiable pixels only (I_s > 1/32, the rest left out of both
the prediction and the truth): the score a loss could reach if black pixels did not count.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from experiments.tasks.mask_prediction import THRESHOLDS, MaskPredictionModule, dissimilar_region

# a source pixel at or below this is "black": I_s * M_s moves by at most this much whatever M_s is
DARK = 1 / 32


@torch.no_grad()
def mask_value_summary(
    predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], items: Iterable[dict[str, torch.Tensor]]
) -> dict[str, float]:
    """False-positive shares per threshold, the share of them on black source pixels, and the IoU
    over the identifiable (not black) pixels, pooled over the items like the test's IoU.

    ``predict(source, target)`` maps (1, C, H, W) images to the (1, 1, H, W) mask; ``items`` are
    test items with ``source``, ``target`` and the true ``mask`` (1 inside the rectangle).
    """
    outside_masks, outside_sources, inside_masks = [], [], []
    lit_intersection = dict.fromkeys(THRESHOLDS, 0)
    lit_union = dict.fromkeys(THRESHOLDS, 0)
    for item in items:
        mask = predict(item["source"][None], item["target"][None])[0, 0]
        truth = item["mask"][0] > 0.5
        lit = item["source"][0] > DARK
        for t in THRESHOLDS:
            predicted = dissimilar_region(mask, t) & lit
            lit_intersection[t] += int((predicted & truth).sum())
            lit_union[t] += int(((predicted | truth) & lit).sum())
        outside_masks.append(mask[~truth])
        outside_sources.append(item["source"][0][~truth])
        inside_masks.append(mask[truth])
    outside, source, inside = torch.cat(outside_masks), torch.cat(outside_sources), torch.cat(inside_masks)
    summary = {"dark_share_outside": float((source <= DARK).float().mean())}
    for t in THRESHOLDS:
        false_positive = dissimilar_region(outside, t)
        summary[f"fp_share_{t:.2f}"] = float(false_positive.float().mean())
        summary[f"fp_dark_share_{t:.2f}"] = (
            float((source[false_positive] <= DARK).float().mean()) if false_positive.any() else float("nan")
        )
        summary[f"tp_share_{t:.2f}"] = float(dissimilar_region(inside, t).float().mean())
        summary[f"iou_lit_{t:.2f}"] = lit_intersection[t] / lit_union[t] if lit_union[t] else float("nan")
    return summary


def _fp_cell(share: float, dark_share: float) -> str:
    return f"{share:.2%}" + ("" if math.isnan(dark_share) else f" ({dark_share:.0%})")


def to_markdown(rows: dict[str, dict[str, float]]) -> str:
    """One line per checkpoint: false positives (share of outside pixels) and their dark share."""
    header = ["checkpoint", *(f"FP < {t} (dark share)" for t in THRESHOLDS), "recall < 0.5"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, s in rows.items():
        cells = [_fp_cell(s[f"fp_share_{t:.2f}"], s[f"fp_dark_share_{t:.2f}"]) for t in THRESHOLDS]
        lines.append("| " + " | ".join([label, *cells, f"{s['tp_share_0.50']:.2%}"]) + " |")
    some = next(iter(rows.values()))
    lines.append(
        f"\nFP < t: share of the pixels outside the rectangle with M_s < t; (dark share): of those, how "
        f"many have a black source (I_s <= 1/{round(1 / DARK)}; {some['dark_share_outside']:.1%} of all "
        "outside pixels are). recall < 0.5: share of the rectangle's pixels with M_s < 0.5."
    )
    return "\n".join(lines)


def iou_markdown(rows: dict[str, dict[str, float]]) -> str:
    """One line per checkpoint: IoU at each threshold over the identifiable pixels only."""
    header = ["checkpoint", *(f"IoU_{t} (I_s > 1/{round(1 / DARK)})" for t in THRESHOLDS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, s in rows.items():
        lines.append("| " + " | ".join([label, *(f"{s[f'iou_lit_{t:.2f}']:.3f}" for t in THRESHOLDS)]) + " |")
    return "\n".join(lines)


def _labelled(spec: str) -> tuple[str, Path]:
    label, sep, path = spec.partition("=")
    if not sep or not label or not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"--ckpt {spec!r}: write LABEL=PATH to an existing checkpoint")
    return label, Path(path)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", type=_labelled, action="append", required=True, help="LABEL=PATH")
    parser.add_argument(
        "--out", type=Path, default=None,
        help="also write the rows as CSV (with CPU, threads, torch version) for a results page, "
        "e.g. results/exp2/mask_values_30ep.csv",
    )  # fmt: skip
    args = parser.parse_args(argv)
    rows = {}
    for label, path in args.ckpt:
        module = MaskPredictionModule.load_from_checkpoint(path).eval()
        dataset_config = (module.hparams.get("config") or {}).get("dataset")
        if dataset_config is None:
            parser.error(f"{path}: no run config stored in the checkpoint (was it written by run.py?)")
        dataset = instantiate(OmegaConf.create(dataset_config))(split="test")
        rows[label] = mask_value_summary(module, (dataset[i] for i in range(len(dataset))))
    text = to_markdown(rows) + "\n\n" + iou_markdown(rows)
    print(text)
    if args.out is not None:
        write_csv(rows, args.out)
        print(f"wrote {args.out}")
    return text


def write_csv(rows: dict[str, dict[str, float]], out: Path) -> None:
    """The summaries as CSV, rounded for a page, each row stamped with the machine that made it."""
    from experiments.runner.environment import environment_info

    out.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(next(iter(rows.values())))
    env = environment_info()  # what a run record says of its machine
    machine = {"device": env["device"], "threads": env["torch_threads"], "torch": env["torch"]}
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["checkpoint", *keys, *machine])
        for label, summary in rows.items():
            writer.writerow([label, *(f"{summary[k]:.4g}" for k in keys), *machine.values()])


if __name__ == "__main__":
    main()
