"""Which loss registers images across an intensity remapping? kornia's ImageRegistrator with each loss.

scikit-image's ``camera`` (area-downsampled to ``--size``, in [0, 1]) is registered to a copy moved
by a known similarity (12 deg, scale 1.08, shift (6, -4) px at 128 px, scaled with ``--size``). The
copy is shown as is, inverted (1 - I) or with a gamma (I^3). Each loss drives
``kornia.geometry.ImageRegistrator`` (similarity model, Adam) through
:class:`deepmi.registration.RegistrationLoss`. Error: mean |warped source - true moved image| (the
copy with the *original* intensities) over the pixels both warps cover; "no registration" is the
same error for the unwarped source.

    python scripts/registration_invariance.py --out registration_table.md

prints a markdown table (rows: losses, columns: targets) and writes it to ``--out``. Every iteration
runs (``--tolerance 0``; kornia's 1e-4 would stop each level after a few steps). ``--masked`` uses
:class:`deepmi.registration.MaskedImageRegistrator`. Deterministic (no random numbers; seeded
anyway); ``--threads`` fixes torch's intra-op threads. Full run: ~2 min of CPU on one thread.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from kornia.geometry import ImageRegistrator
from kornia.geometry.transform import get_rotation_matrix2d, warp_affine

from deepmi.losses import LOSSES
from deepmi.losses.registry import loss_arguments
from deepmi.registration import MaskedImageRegistrator, RegistrationLoss

ANGLE_DEG = 12.0
SCALE = 1.08
SHIFT_PX_AT_128 = (6.0, -4.0)  # (x, y) in pixels of a 128 x 128 image

TARGETS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "same": lambda im: im,
    "inverted (1 - I)": lambda im: 1 - im,
    "gamma (I^3)": lambda im: im**3,
}
# every registered image loss; the histogram ones are those that take a number of bins
HISTOGRAM_LOSSES = tuple(name for name in LOSSES if "bins" in loss_arguments(name))
LOST = "lost"  # the estimate moved the source off the frame: no pixel left to compare
LOSS_LABELS = {"l1": "L1", "l2": "L2", "ssim": "SSIM", "ssim_l2": "SSIM + L2", "mi": "L_MI", "lmi": "L_LMI"}


def camera(size: int) -> torch.Tensor:
    """scikit-image's camera (512 x 512, uint8) as a (1, 1, size, size) float in [0, 1], area-downsampled."""
    from skimage.data import camera as skimage_camera  # only the example needs scikit-image

    im = torch.from_numpy(skimage_camera()).float().div(255)[None, None]
    return F.interpolate(im, size=(size, size), mode="area")


def move(im: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The known similarity applied to ``im`` (zeros outside) and the mask of pixels it covers."""
    h, w = im.shape[-2:]
    centre = torch.tensor([[(w - 1) / 2, (h - 1) / 2]])
    m = get_rotation_matrix2d(centre, torch.tensor([ANGLE_DEG]), torch.full((1, 2), SCALE))
    m[0, :, 2] += torch.tensor(SHIFT_PX_AT_128) * (w / 128)
    moved = warp_affine(im, m, (h, w))
    covered = warp_affine(torch.ones_like(im), m, (h, w)) > 0.9
    return moved, covered


def error(warped: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor) -> float:
    return (warped - truth).abs().masked_select(valid).mean().item()


def register(
    loss_fn: RegistrationLoss, src: torch.Tensor, dst: torch.Tensor, args: argparse.Namespace
) -> ImageRegistrator:
    cls = MaskedImageRegistrator if args.masked else ImageRegistrator
    reg = cls(
        "similarity",
        loss_fn=loss_fn,
        pyramid_levels=args.levels,
        lr=args.lr,
        num_iterations=args.iterations,
        tolerance=args.tolerance,
    )
    reg.register(src, dst)
    return reg


def loss_rows(losses: Sequence[str], bins: Sequence[int]) -> list[tuple[str, RegistrationLoss]]:
    rows = []
    for name in losses:
        if name in HISTOGRAM_LOSSES:
            rows += [(f"{LOSS_LABELS[name]} (N={n})", RegistrationLoss(name, bins=n)) for n in bins]
        else:
            rows.append((LOSS_LABELS[name], RegistrationLoss(name)))
    return rows


def run(args: argparse.Namespace) -> str:
    torch.manual_seed(args.seed)
    src = camera(args.size)
    moved, covered = move(src)
    targets = {name: f(moved) for name, f in TARGETS.items()}
    header = ["loss", *targets]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] + ["---:"] * len(targets)) + " |",
        "| no registration | " + " | ".join([f"{error(src, moved, covered):.3f}"] * len(targets)) + " |",
    ]
    for label, loss_fn in loss_rows(args.losses, args.bins):
        if args.masked and label.startswith("SSIM"):
            lines.append(f"| {label} | " + " | ".join(["n/a"] * len(targets)) + " |")  # needs the grid
            continue
        cells = []
        for dst in targets.values():
            reg = register(loss_fn, src, dst, args)
            with torch.no_grad():
                warped = reg.warp_src_into_dst(src)
                valid = covered & (reg.warp_src_into_dst(torch.ones_like(src)) > 0.9)
            err = error(warped, moved, valid)
            cells.append(f"{err:.3f}" if math.isfinite(err) else LOST)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="markdown file the table is written to")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    p.add_argument("--iterations", type=int, default=200, help="Adam steps per pyramid level (default 200)")
    p.add_argument("--levels", type=int, default=3, help="pyramid levels (default 3)")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 1e-2)")
    p.add_argument("--bins", type=int, nargs="+", default=[8, 16, 32], help="N for mi/lmi (default 8 16 32)")
    p.add_argument(
        "--losses",
        nargs="+",
        default=list(LOSSES),
        choices=list(LOSSES),
        help="losses to compare (default: all)",
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="kornia's early stop on successive losses (kornia: 1e-4); 0 (default) runs every iteration",
    )
    p.add_argument(
        "--masked",
        action="store_true",
        help="MaskedImageRegistrator: losses see only covered pixels (SSIM rows n/a)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> str:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start, cpu = time.perf_counter(), time.process_time()
    table = run(args)
    print(table, end="")
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"\n({wall:.1f} s wall, {cpu:.1f} s CPU, {args.threads} thread(s))")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    return table


if __name__ == "__main__":
    main()
