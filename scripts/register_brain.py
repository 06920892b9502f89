"""Recover a known 3D affine displacement of the MNI152 grey-matter map from the T1 template.

    python scripts/register_brain.py          # every loss, 3 displacements, 2 mm voxels (~7 min CPU)
    python scripts/register_brain.py --trials 5 --base-mm 4  # 4 mm voxels (~2 min CPU)
    python scripts/register_brain.py --trials 1 --losses mi-linear l2 --base-mm 8

The grey-matter probability map (moving) is displaced by a random affine (rotations, translations
and per-axis scales drawn uniformly in +-``--max-deg`` degrees, +-``--max-mm`` mm, +-``--max-pct``
percent) and registered back onto the T1 template (fixed) by a plain torch loop: a 9-parameter
affine (3 rotations, 3 translations, 3 scales) applied with ``affine_grid`` / ``grid_sample``,
Adam, a coarse-to-fine pyramid of average-pooled volumes and a brain mask (grey + white matter
> 0.1 on the fixed grid). The intensity relation between T1 and grey matter is not monotonic
(grey matter is bright in the map and mid-grey in T1; white matter the reverse), so L2 and NCC
have a biased optimum and MI is needed. SimpleITK's Mattes MI registration (its own optimizer
and pyramid) is the classical reference when SimpleITK is installed.

The error of a recovered transform A is that of the residual R = D A (D: the displacement, both
in mm about the volume centre; R = identity when A undoes D): its rotation angle (degrees), its
translation (mm) and the mean displacement of the 8 corners of the brain's bounding box (mm).
Times are this process's CPU seconds per registration; "peak MiB" is the extra peak memory of one
forward+backward step (warp + loss) at the finest level (torch.profiler, as scripts/bench_losses.py).
The templates ship in nilearn's wheel (no download).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from deepmi.losses import L2Loss, LMILoss, MILoss, NMILoss

LossFn = Callable[[Tensor, Tensor, Tensor], Tensor]
TORCH_LOSSES = ("mi-linear", "mi-gaussian", "mi-bspline", "nmi", "lmi", "monai-mi", "l2", "ncc")
ALL_LOSSES = (*TORCH_LOSSES, "sitk-mattes")


def load_volumes(base_mm: int) -> tuple[Tensor, Tensor, Tensor, float]:
    """T1 (fixed), grey matter (moving) and the brain mask, ``(1, 1, D, H, W)`` at ``base_mm`` voxels.

    nilearn's 2 mm templates, cropped to a multiple of 8 voxels (so that every pyramid level
    keeps the same centre), then average-pooled by ``base_mm / 2``.
    """
    from nilearn import datasets

    if base_mm % 2:
        raise SystemExit(f"--base-mm must be a multiple of the templates' 2 mm, got {base_mm}")
    images = [
        datasets.load_mni152_template(resolution=2),
        datasets.load_mni152_gm_template(resolution=2),
        datasets.load_mni152_wm_template(resolution=2),
    ]
    vols = []
    for img in images:
        v = torch.from_numpy(img.get_fdata()).float().clamp(0, 1)
        v = v.permute(2, 1, 0)  # (x, y, z) voxel axes -> (D, H, W) = (z, y, x): grid x is W
        crop = [n - n % 8 for n in v.shape]
        v = v[: crop[0], : crop[1], : crop[2]][None, None]
        vols.append(F.avg_pool3d(v, base_mm // 2) if base_mm > 2 else v)
    t1, gm, wm = vols
    mask = (gm + wm) > 0.1
    return t1, gm, mask, float(base_mm)


def half_extent_mm(shape: torch.Size, spacing: float) -> Tensor:
    """mm per normalised unit along grid x, y, z (= W, H, D) with align_corners=True."""
    return torch.tensor([(shape[4] - 1) / 2, (shape[3] - 1) / 2, (shape[2] - 1) / 2]) * spacing


def affine_mm(p: Tensor) -> Tensor:
    """4x4 affine in mm about the centre from ``p`` = (3 rotations in degrees, 3 translations in mm,
    3 scales in percent): ``x -> R diag(s) x + t``."""
    a, b, c = torch.deg2rad(p[:3]).unbind()
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    rx = torch.stack([one, zero, zero, zero, a.cos(), -a.sin(), zero, a.sin(), a.cos()]).view(3, 3)
    ry = torch.stack([b.cos(), zero, b.sin(), zero, one, zero, -b.sin(), zero, b.cos()]).view(3, 3)
    rz = torch.stack([c.cos(), -c.sin(), zero, c.sin(), c.cos(), zero, zero, zero, one]).view(3, 3)
    linear = rz @ ry @ rx @ torch.diag(1 + p[6:9] / 100)
    top = torch.cat([linear, p[3:6].view(3, 1)], 1)
    return torch.cat([top, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=p.dtype)], 0)


def warp(vol: Tensor, a_mm: Tensor, spacing: float) -> Tensor:
    """``vol`` sampled at ``a_mm(x)`` for every output voxel x (trilinear, zeros outside)."""
    s = half_extent_mm(vol.shape, spacing).to(a_mm)
    theta = (a_mm[:3, :3] * s.view(1, 3) / s.view(3, 1)).float()  # S^-1 A S in normalised units
    shift = (a_mm[:3, 3] / s).float()
    grid = F.affine_grid(torch.cat([theta, shift.view(3, 1)], 1)[None], list(vol.shape), align_corners=True)
    return F.grid_sample(vol, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def corners_mm(mask: Tensor, spacing: float) -> Tensor:
    """The 8 corners of the mask's bounding box, ``(8, 3)`` in mm about the centre, (x, y, z) order."""
    idx = mask[0, 0].nonzero().float()  # (n, 3) in (D, H, W)
    lo, hi = idx.min(0).values.flip(0), idx.max(0).values.flip(0)  # -> (W, H, D) = (x, y, z)
    centre = torch.tensor([(mask.shape[4] - 1) / 2, (mask.shape[3] - 1) / 2, (mask.shape[2] - 1) / 2])
    pts = torch.stack([torch.where(torch.tensor(bits).bool(), hi, lo) for bits in _corner_bits()])
    return (pts - centre) * spacing


def _corner_bits() -> list[tuple[int, int, int]]:
    return [(i, j, k) for i in (0, 1) for j in (0, 1) for k in (0, 1)]


def transform_errors(residual: Tensor, corners: Tensor) -> tuple[float, float, float]:
    """Rotation angle (deg), translation (mm) and mean corner displacement (mm) of a residual affine."""
    r = residual.double()
    u, _, vh = torch.linalg.svd(r[:3, :3])
    rot = u @ vh  # the rotation of the polar decomposition
    # the angle from both its cosine and its sine: acos alone loses precision near 0
    skew = rot - rot.T
    sin = torch.stack([skew[2, 1], skew[0, 2], skew[1, 0]]).norm() / 2
    angle = torch.atan2(sin, (torch.trace(rot) - 1) / 2)
    homog = torch.cat([corners.double(), torch.ones(len(corners), 1, dtype=torch.double)], 1)
    moved = homog @ r.T
    corner = (moved[:, :3] - corners.double()).norm(dim=1).mean()
    return math.degrees(angle.item()), r[:3, 3].norm().item(), corner.item()


def random_displacement(g: torch.Generator, max_deg: float, max_mm: float, max_pct: float) -> Tensor:
    limits = torch.tensor([max_deg] * 3 + [max_mm] * 3 + [max_pct] * 3)
    return (torch.rand(9, generator=g, dtype=torch.float64) * 2 - 1) * limits


def ncc_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Negative Pearson correlation of the masked voxels."""
    a, b = pred[mask], target[mask]
    a, b = a - a.mean(), b - b.mean()
    return -(a * b).sum() / (a.norm() * b.norm()).clamp_min(1e-12)


def make_loss(name: str, bins: int) -> LossFn:
    """``loss(warped_moving, fixed, mask) -> scalar`` for a loss name of :data:`TORCH_LOSSES`."""
    modules = {
        "mi-linear": MILoss(bins),
        "mi-gaussian": MILoss(bins, kernel="gaussian"),
        "mi-bspline": MILoss(bins, kernel="bspline"),
        "nmi": NMILoss(bins),
        "lmi": LMILoss(bins),
        "l2": L2Loss(),
    }
    if name in modules:
        module = modules[name]
        return lambda pred, target, mask: module(pred, target, mask=mask)
    if name == "ncc":
        return ncc_loss
    if name == "monai-mi":
        from monai.losses import GlobalMutualInformationLoss

        peer = GlobalMutualInformationLoss(kernel_type="gaussian", num_bins=bins)
        # MONAI takes no mask: hand it the masked voxels as one (1, K) sample
        return lambda pred, target, mask: peer(pred[mask].view(1, -1), target[mask].view(1, -1))
    raise ValueError(f"unknown loss {name!r}; choose from {', '.join(ALL_LOSSES)}")


def pyramid(vol: Tensor, factor: int, is_mask: bool = False) -> Tensor:
    if factor == 1:
        return vol
    pooled = F.avg_pool3d(vol.float(), factor)
    return pooled > 0.5 if is_mask else pooled


def register_torch(
    loss: LossFn,
    fixed: Tensor,
    moving: Tensor,
    mask: Tensor,
    spacing: float,
    levels: list[int],
    iters: list[int],
    lrs: list[float],
) -> Tensor:
    """Adam on the 9 parameters of :func:`affine_mm`, coarse to fine; returns the 4x4 affine in mm."""
    p = torch.zeros(9, dtype=torch.float64, requires_grad=True)
    for factor, steps, lr in zip(levels, iters, lrs, strict=True):
        f, m, k = pyramid(fixed, factor), pyramid(moving, factor), pyramid(mask, factor, True)
        opt = torch.optim.Adam([p], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            loss(warp(m, affine_mm(p), spacing * factor), f, k).backward()
            opt.step()
    return affine_mm(p.detach())


def register_sitk(
    fixed: Tensor, moving: Tensor, mask: Tensor, spacing: float, levels: list[int], bins: int
) -> Tensor:
    """SimpleITK's Mattes MI with its regular-step gradient descent over a 9-parameter
    ScaleVersor3D transform, on the same pyramid levels; returns the 4x4 affine in mm."""
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)

    def image(v: Tensor, pixel: int) -> sitk.Image:
        img = sitk.Cast(sitk.GetImageFromArray(v[0, 0].numpy()), pixel)  # numpy (D, H, W) -> sitk (x, y, z)
        img.SetSpacing((spacing,) * 3)
        img.SetOrigin(tuple(-(n - 1) / 2 * spacing for n in img.GetSize()))
        return img

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=bins)
    reg.SetMetricSamplingStrategy(reg.NONE)
    reg.SetMetricFixedMask(image(mask.to(torch.uint8), sitk.sitkUInt8))
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=1e-3, numberOfIterations=150, relaxationFactor=0.5
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(levels)
    reg.SetSmoothingSigmasPerLevel([0.5 * (f - 1) for f in levels])
    transform = sitk.ScaleVersor3DTransform()
    reg.SetInitialTransform(transform, inPlace=True)
    reg.Execute(image(fixed, sitk.sitkFloat32), image(moving, sitk.sitkFloat32))
    out = torch.eye(4, dtype=torch.float64)
    out[:3, :3] = torch.tensor(transform.GetMatrix(), dtype=torch.float64).view(3, 3)
    centre = torch.tensor(transform.GetCenter(), dtype=torch.float64)
    out[:3, 3] = torch.tensor(transform.GetTranslation(), dtype=torch.float64) + centre - out[:3, :3] @ centre
    return out


def step_peak_mib(loss: LossFn, fixed: Tensor, moving: Tensor, mask: Tensor, spacing: float) -> float:
    """Extra peak memory of one forward+backward (warp + loss) at the finest level."""
    try:
        from scripts.bench_losses import peak_extra_bytes
    except ImportError:  # run as a file: scripts/ is not a package on sys.path
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_losses import peak_extra_bytes

    p = torch.zeros(9, dtype=torch.float64, requires_grad=True)

    def step() -> None:
        loss(warp(moving, affine_mm(p), spacing), fixed, mask).backward()

    return peak_extra_bytes(step, torch.device("cpu")) / 2**20


def summarise(rows: dict[str, list[tuple[float, ...]]], mib: dict[str, float]) -> str:
    head = "| loss | rotation error deg | translation error mm | mean corner error mm | CPU s | peak MiB |"
    lines = [head, "|---|---|---|---|---|---|"]
    for name, errs in rows.items():
        cols = list(zip(*errs, strict=True))

        def cell(values: tuple[float, ...], digits: int = 2) -> str:
            return f"{statistics.mean(values):.{digits}f} (max {max(values):.{digits}f})"

        mem = f"{mib[name]:.0f}" if name in mib else "-"
        cpu = f"{statistics.mean(cols[3]):.1f}" if len(cols) > 3 else "-"
        lines.append(f"| {name} | {cell(cols[0])} | {cell(cols[1])} | {cell(cols[2])} | {cpu} | {mem} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--losses", nargs="+", default=list(ALL_LOSSES), choices=ALL_LOSSES)
    ap.add_argument("--trials", type=int, default=3, help="random displacements (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--base-mm", type=int, default=2, help="finest voxel size in mm, a multiple of 2 (default 2)"
    )
    ap.add_argument("--levels", type=int, nargs="+", default=[4, 2, 1], help="pyramid pooling factors")
    ap.add_argument("--iters", type=int, nargs="+", default=[100, 60, 30], help="Adam steps per level")
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.5, 0.2, 0.1], help="Adam step per level")
    ap.add_argument("--bins", type=int, default=32)
    ap.add_argument("--max-deg", type=float, default=6.0)
    ap.add_argument("--max-mm", type=float, default=6.0)
    ap.add_argument("--max-pct", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory column")
    ap.add_argument("--out", default="outputs/register_brain", help="folder for table.md")
    args = ap.parse_args(argv)
    if not len(args.levels) == len(args.iters) == len(args.lrs):
        raise SystemExit("--levels, --iters and --lrs need one value per pyramid level")
    losses = list(args.losses)
    if "sitk-mattes" in losses:
        try:
            import SimpleITK  # noqa: F401
        except ImportError:
            print("SimpleITK not installed: no sitk-mattes row (pip install SimpleITK)", file=sys.stderr)
            losses.remove("sitk-mattes")
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    fixed, gm, mask, spacing = load_volumes(args.base_mm)
    corners = corners_mm(mask, spacing)
    g = torch.Generator().manual_seed(args.seed)
    displacements = [
        random_displacement(g, args.max_deg, args.max_mm, args.max_pct) for _ in range(args.trials)
    ]
    rows: dict[str, list[tuple[float, ...]]] = {"(no registration)": []}
    rows.update({name: [] for name in losses})
    with tqdm(total=len(displacements) * len(losses), desc="registrations", file=sys.stderr) as bar:
        for d in displacements:
            d_mm = affine_mm(d)
            moving = warp(gm, d_mm, spacing)
            rows["(no registration)"].append(transform_errors(d_mm, corners))
            for name in losses:
                t0 = time.process_time()
                if name == "sitk-mattes":
                    a_mm = register_sitk(fixed, moving, mask, spacing, args.levels, args.bins)
                else:
                    loss = make_loss(name, args.bins)
                    a_mm = register_torch(
                        loss, fixed, moving, mask, spacing, args.levels, args.iters, args.lrs
                    )
                cpu = time.process_time() - t0
                rows[name].append((*transform_errors(d_mm @ a_mm, corners), cpu))
                bar.update()
    mib = {}
    if not args.no_memory:
        moving = warp(gm, affine_mm(displacements[0]), spacing)
        mib = {
            n: step_peak_mib(make_loss(n, args.bins), fixed, moving, mask, spacing)
            for n in losses
            if n in TORCH_LOSSES
        }
    table = summarise(rows, mib)
    header = (
        f"MNI152 2009 T1 (fixed) <- grey-matter map (moving), {tuple(fixed.shape[2:])} voxels "
        f"of {spacing:g} mm, "
        f"brain mask {mask.float().mean().item():.0%} of the voxels; {args.trials} random displacements "
        f"(seed {args.seed}; +-{args.max_deg:g} deg, +-{args.max_mm:g} mm, +-{args.max_pct:g} % per axis); "
        f"pyramid x{args.levels}, Adam steps {args.iters}, lr {args.lrs}; {args.bins} bins; "
        f"threads={torch.get_num_threads()}; mean (max) over the displacements"
    )
    text = f"{header}\n\n{table}\n"
    print("\n" + text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text)
    print(f"wrote {out / 'table.md'}")
    return text


if __name__ == "__main__":
    main()
