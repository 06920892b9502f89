"""Disparity and depth for your own stereo pair from a trained Exp3 checkpoint (DeepMI Sec. 5.3).

    python scripts/predict_depth.py CKPT left.png right.png --out-dir pred/ [--focal-baseline 389.6]

The network (Godard et al.'s design, as in the paper) predicts disparity from the left image alone;
the right image is used to report how well it reconstructs the left view (the photometric check
the training loss optimised). The left image is converted to grey, resized to the size the model
was trained at, and the predicted disparity is resized back and rescaled to the input's width.
Writes disparity.png (colour map), disparity.npy (pixels of the input image) and, with
--focal-baseline (focal length in pixels times the baseline in metres, at the input's resolution;
e.g. KITTI's 721.5 px x 0.54 m = 389.6), depth.png and depth.npy (metres).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deepmi.models.warp import warp_right_to_left
from experiments.tasks.stereo_depth import StereoDepthModule


def read_grey(path: Path) -> torch.Tensor:
    """(1, 1, H, W) float image in [0, 1] from any file imageio reads.

    Integer images are scaled by their type's full range (255 for 8-bit, 65535 for 16-bit PNGs), not
    by their maximum, so a dark 16-bit pair stays dark and a pair keeps its relative brightness; a
    float image must already lie in [0, 1].
    """
    import imageio.v3 as iio

    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        raw = np.asarray(iio.imread(path))
    except Exception as error:  # imageio's message is about plugins, not about the file
        raise ValueError(
            f"{path} cannot be read as an image ({type(error).__name__}); give a PNG, JPEG or TIFF file"
        ) from error
    if raw.ndim == 3:
        raw = raw[..., :3]
    if raw.ndim not in (2, 3) or raw.size == 0:
        raise ValueError(f"{path}: expected a grey or colour image, got an array of shape {raw.shape}")
    if np.issubdtype(raw.dtype, np.integer):
        image = raw.astype(np.float64) / np.iinfo(raw.dtype).max
    elif np.issubdtype(raw.dtype, np.floating):
        image = raw.astype(np.float64)
        if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
            raise ValueError(
                f"{path}: a float image must hold values in [0, 1], got {image.min():.4g} to "
                f"{image.max():.4g}; save it as 8- or 16-bit PNG, or rescale it to [0, 1]"
            )
    else:
        raise ValueError(f"{path}: pixel type {raw.dtype} is not an image type (integers or floats)")
    if image.ndim == 3:
        image = image.mean(-1)
    return torch.from_numpy(image.astype(np.float32))[None, None]


def predict(module: StereoDepthModule, left: torch.Tensor, right: torch.Tensor) -> tuple[np.ndarray, float]:
    """(disparity in input pixels, mean |warp(right) - left|) at the input's resolution."""
    config = module.hparams["config"]["dataset"]
    size = (int(config["height"]), int(config["width"]))
    height, width = left.shape[-2:]
    with torch.no_grad():
        small = F.interpolate(left, size=size, mode="bilinear", align_corners=False)
        disparity = module.disparity_px(small) * (width / size[1])
        disparity = F.interpolate(disparity, size=(height, width), mode="bilinear", align_corners=False)
        error = float((warp_right_to_left(right, disparity) - left).abs().mean())
    return disparity[0, 0].numpy(), error


def save_map(path: Path, values: np.ndarray, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 8 * values.shape[0] / values.shape[1] + 0.6))
    shown = ax.imshow(values, cmap="magma")
    ax.set_axis_off()
    fig.colorbar(shown, ax=ax, orientation="horizontal", fraction=0.05, pad=0.02, label=label)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", type=Path, help="last.ckpt of an exp3_depth run")
    parser.add_argument("left", type=Path)
    parser.add_argument("right", type=Path)
    parser.add_argument("--out-dir", type=Path, default=Path("prediction"))
    parser.add_argument("--focal-baseline", type=float, default=None, help="focal (px) x baseline (m)")
    args = parser.parse_args(argv)
    module = StereoDepthModule.load_from_checkpoint(args.checkpoint)
    left, right = read_grey(args.left), read_grey(args.right)
    if left.shape != right.shape:
        parser.error(f"left {tuple(left.shape[-2:])} and right {tuple(right.shape[-2:])} differ in size")
    disparity, error = predict(module, left, right)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    written = {
        "disparity.npy": args.out_dir / "disparity.npy",
        "disparity.png": args.out_dir / "disparity.png",
    }
    np.save(written["disparity.npy"], disparity)
    save_map(written["disparity.png"], disparity, "disparity (px)")
    print(
        f"disparity {disparity.min():.2f}-{disparity.max():.2f} px; mean |warp(right) - left| = {error:.4f}"
    )
    if args.focal_baseline is not None:
        depth = args.focal_baseline / np.clip(disparity, 1e-6, None)
        depth = np.clip(depth, module.min_depth, module.max_depth)
        written["depth.npy"], written["depth.png"] = args.out_dir / "depth.npy", args.out_dir / "depth.png"
        np.save(written["depth.npy"], depth)
        save_map(written["depth.png"], depth, "depth (m)")
        print(f"depth {depth.min():.2f}-{depth.max():.2f} m")
    print("wrote", ", ".join(str(p) for p in written.values()))
    return written


if __name__ == "__main__":
    main()
