"""Compare trained Exp3 checkpoints on one test view: true and predicted disparity, error maps.

    python scripts/disparity_panel.py --ckpt L1=runs/.../checkpoints/last.ckpt \
        --ckpt L_LMI=runs/.../checkpoints/last.ckpt --out results/figures/middlebury_l1_lmi.png

Every checkpoint is rebuilt from the config stored in it (``TaskModule.load_from_checkpoint``) and
predicts disparity for test item ``--index`` of the dataset that config names (e.g. the whole
left view of Middlebury Motorcycle); the checkpoints must share that dataset config, so every row
shows the same image. One row per checkpoint: left image, true disparity, predicted disparity,
|error| (DeepMI Exp3, Sec. 5.3), with EPE and bad-1/bad-3 per row.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from experiments.tasks.stereo_depth import StereoDepthModule, save_disparity_comparison


def _labelled(spec: str) -> tuple[str, Path]:
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        example = "L1=runs/x/checkpoints/last.ckpt"
        raise argparse.ArgumentTypeError(f"--ckpt {spec!r}: write LABEL=PATH, e.g. {example}")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"--ckpt {spec!r}: no checkpoint file at {path}")
    return label, Path(path)


def load_module(path: Path) -> StereoDepthModule:
    """The Exp3 module a checkpoint of run.py was trained as (its run config kept in hparams)."""
    try:
        module = StereoDepthModule.load_from_checkpoint(path)
    except TypeError as err:  # another task's module, or a checkpoint without a stored run config
        raise SystemExit(f"{path}: cannot rebuild an Exp3 module from it ({err})") from None
    if "dataset" not in (module.hparams.get("config") or {}):
        raise SystemExit(f"{path}: no run config stored in the checkpoint (was it written by run.py?)")
    return module


@torch.no_grad()
def predictions(checkpoints: list[tuple[str, Path]], index: int) -> tuple[dict, dict[str, torch.Tensor]]:
    """The test item (from the checkpoints' shared dataset config) and each checkpoint's disparity."""
    modules = {label: load_module(path) for label, path in checkpoints}
    configs = {label: module.hparams["config"]["dataset"] for label, module in modules.items()}
    first = checkpoints[0][0]
    for label, path in checkpoints:
        if configs[label] != configs[first]:
            raise SystemExit(
                f"{label} ({path}) was trained on another dataset config than {first}: "
                "the rows would show different images; compare runs of one dataset"
            )
    dataset = instantiate(OmegaConf.create(configs[first]))(split="test")
    if not 0 <= index < len(dataset):
        raise SystemExit(f"--index {index}: the test split has {len(dataset)} item(s)")
    item = dataset[index]
    if "disparity" not in item:
        raise SystemExit(f"{type(dataset).__name__} has no ground-truth disparity to compare against")
    preds = {label: module.disparity_px(item["left"][None])[0, 0] for label, module in modules.items()}
    return item, preds


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--ckpt", type=_labelled, action="append", required=True, help="LABEL=PATH, repeatable"
    )
    parser.add_argument("--index", type=int, default=0, help="test item to show (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--title", default="", help="figure title")
    args = parser.parse_args(argv)
    item, preds = predictions(args.ckpt, args.index)
    valid = item.get("valid")
    path = save_disparity_comparison(
        args.out, item["left"], item["disparity"], preds, None if valid is None else valid > 0, args.title
    )
    print(f"wrote {path}")
    return path


if __name__ == "__main__":
    main()
