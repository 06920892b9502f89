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


def dataset_config(path: Path) -> dict:
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    config = (checkpoint.get("hyper_parameters") or {}).get("config")
    if config is None or "dataset" not in config:
        raise SystemExit(f"{path}: no run config stored in the checkpoint (was it written by run.py?)")
    return config["dataset"]


@torch.no_grad()
def predictions(checkpoints: list[tuple[str, Path]], index: int) -> tuple[dict, dict[str, torch.Tensor]]:
    """The test item (from the checkpoints' shared dataset config) and each checkpoint's disparity."""
    configs = [dataset_config(path) for _, path in checkpoints]
    for (label, path), config in zip(checkpoints, configs, strict=True):
        if config != configs[0]:
            raise SystemExit(
                f"{label} ({path}) was trained on another dataset config than {checkpoints[0][0]}: "
                "the rows would show different images; compare runs of one dataset"
            )
    dataset = instantiate(OmegaConf.create(configs[0]))(split="test")
    if not 0 <= index < len(dataset):
        raise SystemExit(f"--index {index}: the test split has {len(dataset)} item(s)")
    item = dataset[index]
    if "disparity" not in item:
        raise SystemExit(f"{type(dataset).__name__} has no ground-truth disparity to compare against")
    preds = {}
    for label, path in checkpoints:
        module = StereoDepthModule.load_from_checkpoint(path)
        preds[label] = module.disparity_px(item["left"][None])[0, 0]
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
