"""Synthetic rectified stereo pairs with dense ground truth, a stand-in for DeepMI Exp3 (Sec. 5.3).

Each scene is a set of planar layers, every one textured with an augmented crop of the bundled
photographs (:mod:`deepmi.data.photos`): a fronto-parallel far wall (45-80 m), a ground plane
(disparity growing towards the bottom, as a road seen from a car), optional building facades
on the left/right (vertical planes along the street, disparity growing towards the image
border), and a few rectangles/ellipses standing on the ground (fronto-parallel or yawed,
3.5-40 m). A layer's disparity is affine in the LEFT image, d = a u + b v + c, and its texture
is attached to left-image coordinates.

Convention (rectified, as Godard et al.): a point at left column u is seen in the right image
at column u - d, d > 0. Depth = focal * baseline / d with KITTI's calibration scaled to the
working width: focal = 721.5377 * width / 1242 px (372 px at 640), baseline 0.54 m; square
pixels.

Rendering is exact per layer: the left view evaluates every layer at the pixel, the right view
inverts each layer's affine map, u_l = (u_r + b v + c) / (1 - a), and samples its texture
there (linear along the row). A z-buffer keeps the nearest layer (largest disparity) at every
pixel of each view, so occlusions are handled without the holes of forward splatting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from deepmi.data.cache import cached_arrays, check_split, sample_rng, to_uint8
from deepmi.data.photos import Augment, draw_crop, load_photos, render_crops

_VERSION = 1
KITTI_FOCAL = 721.5377  # px, rectified focal of KITTI's colour cameras at full width
KITTI_WIDTH = 1242
KITTI_BASELINE = 0.54  # m, as Godard et al.
MIN_DEPTH = 3.0  # m, nearest allowed object point
MAX_LAYERS = 10  # far wall, ground, two facades, up to six objects
_TEXTURE = Augment(min_scale=1.0)  # never minify: small objects keep photo-like, alias-free texture


def kitti_focal(width: int) -> float:
    """KITTI's focal length in pixels, scaled to an image ``width`` pixels wide."""
    return KITTI_FOCAL * width / KITTI_WIDTH


@dataclass
class _Layer:
    """A planar layer: disparity d = a u + b v + c over a support inside a left-image region."""

    plane: tuple[float, float, float]
    region: tuple[int, int, int, int]  # x0, x1, y0, y1 (inclusive) in left coordinates
    halfplanes: list[tuple[float, float, float]] = field(default_factory=list)  # al*u + be*v + ga >= 0
    ellipse: tuple[float, float, float, float] | None = None  # uc, vc, rx, ry
    texture: np.ndarray | None = None  # (y1 - y0 + 1, x1 - x0 + 1) float32

    def disparity(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        a, b, c = (np.float32(x) for x in self.plane) if isinstance(u, np.ndarray) else self.plane
        return a * u + b * v + c

    def support(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        x0, x1, y0, y1 = self.region
        inside = (u >= x0) & (u <= x1) & (v >= y0) & (v <= y1)
        for al, be, ga in self.halfplanes:
            inside &= al * u + be * v + ga >= 0
        if self.ellipse is not None:
            uc, vc, rx, ry = self.ellipse
            inside &= ((u - uc) / rx) ** 2 + ((v - vc) / ry) ** 2 <= 1.0
        return inside

    def sample(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Texture at (u, v), v integer, linear in u; clamped at the region border."""
        x0, _, y0, _ = self.region
        tex = self.texture
        x = np.clip(u - x0, 0.0, tex.shape[1] - 1.0)
        i0 = np.minimum(x.astype(np.int64), tex.shape[1] - 2)  # regions are >= 2 columns wide
        w = (x - i0).astype(np.float32)
        flat = np.clip(v.astype(np.int64) - y0, 0, tex.shape[0] - 1) * tex.shape[1] + i0
        left = tex.ravel().take(flat)  # take on the flat texture: much faster than 2-D fancy indexing
        return left + w * (tex.ravel().take(flat + 1) - left)


def _sample_scene(
    rng: np.random.Generator, height: int, width: int, focal: float, baseline: float
) -> list[_Layer]:
    """Random layered street-like scene (geometry only; textures are attached afterwards)."""
    cx = (width - 1) / 2.0
    horizon = height * rng.uniform(0.40, 0.50)
    cam_height = rng.uniform(1.5, 1.8)
    wide = width - 1 + 4 * width  # generous right bound; regions are tightened later
    layers = []

    # Far wall: fronto-parallel, covers everything.
    far = rng.uniform(45.0, 80.0)
    layers.append(_Layer(plane=(0.0, 0.0, focal * baseline / far), region=(0, wide, 0, height - 1)))

    # Ground: Z = f h / (v - horizon) => d = B (v - horizon) / h, plus a small lateral slope (banked road).
    slope_v = baseline / cam_height
    slope_u = rng.uniform(-0.004, 0.004)
    ground = (slope_u, slope_v, -slope_v * horizon - slope_u * cx)
    top = max(0, math.floor(horizon - abs(slope_u) * (wide + cx) / slope_v) - 1)
    layers.append(_Layer(plane=ground, region=(0, wide, top, height - 1), halfplanes=[ground]))

    # Facades: vertical planes at lateral distance x_w, from the ground up to height h_b.
    for side in (-1.0, 1.0):
        if rng.random() < 0.5:
            continue
        x_w, h_b = rng.uniform(4.0, 12.0), rng.uniform(5.0, 20.0)
        # d = B * side * (u - cx) / x_w > 0 on its side; the roof line v = horizon + (h - h_b) |u - cx| / x_w.
        plane = (side * baseline / x_w, 0.0, -side * baseline * cx / x_w)
        k = (cam_height - h_b) / x_w
        roof = (-side * k, 1.0, -horizon + side * k * cx)  # v - horizon - k * side * (u - cx) >= 0
        x0, x1 = (0, math.floor(cx)) if side < 0 else (math.ceil(cx), wide)
        layers.append(_Layer(plane=plane, region=(x0, x1, 0, height - 1), halfplanes=[plane, roof]))

    # Objects standing on the ground.
    for _ in range(rng.integers(2, 7)):
        depth = math.exp(rng.uniform(math.log(3.5), math.log(40.0)))
        uc = rng.uniform(0.0, width - 1.0)
        size_w = math.exp(rng.uniform(math.log(0.4), math.log(4.5)))
        size_h = rng.uniform(1.0, 3.5)
        yaw = math.radians(rng.uniform(-40.0, 40.0)) if rng.random() < 0.5 else 0.0
        # Plane through (X0, Z0) turned by yaw: d(u) = f B (1 - tan(yaw) (u - cx) / f) / (Z0 - X0 tan(yaw)).
        x_obj, t = (uc - cx) * depth / focal, math.tan(yaw)
        denom = depth - x_obj * t
        a = -baseline * t / denom
        plane = (a, 0.0, focal * baseline / denom - a * cx)
        half_w = 0.5 * focal * size_w * math.cos(yaw) / depth
        bottom = horizon + focal * cam_height / depth
        top = bottom - focal * size_h / depth
        d_ends = [plane[0] * x + plane[2] for x in (uc - half_w, uc + half_w)]
        if (
            denom <= 0
            or a >= 0.5
            or min(d_ends) <= layers[0].plane[2]
            or max(d_ends) > focal * baseline / MIN_DEPTH
        ):
            continue  # too oblique (behind the wall or nearer than MIN_DEPTH at one end): drop it
        region = (
            max(0, math.floor(uc - half_w)),
            math.ceil(uc + half_w),
            max(0, math.floor(top)),
            min(height - 1, math.ceil(bottom)),
        )
        if region[2] > region[3] or region[0] > region[1]:
            continue
        if rng.random() < 0.6:
            halfplanes = [
                (1.0, 0.0, -(uc - half_w)),
                (-1.0, 0.0, uc + half_w),
                (0.0, 1.0, -top),
                (0.0, -1.0, bottom),
            ]
            layers.append(_Layer(plane=plane, region=region, halfplanes=halfplanes))
        else:
            ellipse = (uc, 0.5 * (top + bottom), half_w, 0.5 * (bottom - top))
            layers.append(_Layer(plane=plane, region=region, ellipse=ellipse))
    return layers


def _tighten_regions(layers: list[_Layer], width: int, height: int) -> None:
    """Clip each region's right end to the last left column the right view can see (u_r = W - 1)."""
    for layer in layers:
        a, b, c = layer.plane
        reach = max((width - 1 + b * v + c) / (1.0 - a) for v in (0, height - 1))
        x0, x1, y0, y1 = layer.region
        layer.region = (x0, max(x0 + 1, min(x1, max(width - 1, math.ceil(reach) + 1))), y0, y1)


def _render(layers: list[_Layer], height: int, width: int, right: bool) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffered (intensity, layer index) of the left (right=False) or right view."""
    disp = np.full((height, width), -np.inf, dtype=np.float32)
    label = np.zeros((height, width), dtype=np.uint8)
    image = np.zeros((height, width), dtype=np.float32)
    for index, layer in enumerate(layers):
        x0, x1, y0, y1 = layer.region
        a, b, c = layer.plane
        if right:  # right columns reached by the region: u_r = u_l - d(u_l), extremes at corners
            corners = [(x - layer.disparity(x, y)) for x in (x0, x1) for y in (y0, y1)]
            c0, c1 = max(0, math.floor(min(corners))), min(width - 1, math.ceil(max(corners)))
        else:
            c0, c1 = x0, min(x1, width - 1)
        r0, r1 = max(0, y0), min(height - 1, y1)
        if c0 > c1 or r0 > r1:
            continue
        # float32 is ample here (columns < 2**14); the stored disparity is rebuilt in float64.
        u = np.arange(c0, c1 + 1, dtype=np.float32)[None, :]
        v = np.arange(r0, r1 + 1, dtype=np.float32)[:, None]
        if right:
            u = (u + np.float32(b) * v + np.float32(c)) * np.float32(
                1.0 / (1.0 - a)
            )  # left column seen at u_r
        u = np.broadcast_to(u, (r1 - r0 + 1, c1 - c0 + 1))
        d = layer.disparity(u, v).astype(np.float32, copy=False)
        window = (slice(r0, r1 + 1), slice(c0, c1 + 1))
        win = layer.support(u, v) & (d > disp[window])
        if not win.any():
            continue
        np.copyto(disp[window], d, where=win)
        np.copyto(label[window], np.uint8(index), where=win)
        np.copyto(image[window], layer.sample(u, np.broadcast_to(v, u.shape)), where=win)
    return image, label


def planes_to_disparity(label: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """Dense left disparity (…, H, W) float32 from per-pixel layer indices and (…, L, 3) planes [a, b, c]."""
    label = np.asarray(label).astype(np.int64)
    planes = np.asarray(planes, dtype=np.float64)
    height, width = label.shape[-2:]
    n_layers = planes.shape[-2]
    flat = planes.reshape(-1, n_layers, 3)
    # Flat indices of each pixel's plane row: np.take is much faster than 3-D fancy indexing.
    index = label.reshape(-1, height, width) + n_layers * np.arange(len(flat))[:, None, None]
    a, b, c = (flat[..., k].ravel().take(index) for k in range(3))
    u = np.arange(width, dtype=np.float64)
    v = np.arange(height, dtype=np.float64)[:, None]
    return (a * u + b * v + c).astype(np.float32).reshape(label.shape)


def _visible(label_left: np.ndarray, label_right: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """1 where the left pixel's surface point is seen in the right image (both pixels around u - d)."""
    height, width = label_left.shape
    u_r = np.arange(width)[None, :] - disparity
    lo = np.floor(u_r).astype(np.int64)
    hi = np.ceil(u_r).astype(np.int64)
    inside = (lo >= 0) & (hi <= width - 1)
    rows = np.arange(height)[:, None]
    lo_c, hi_c = np.clip(lo, 0, width - 1), np.clip(hi, 0, width - 1)
    same = (label_right[rows, lo_c] == label_left) & (label_right[rows, hi_c] == label_left)
    return (inside & same).astype(np.uint8)


def render_stereo_scene(
    rng: np.random.Generator, height: int, width: int, focal: float, baseline: float
) -> dict[str, np.ndarray]:
    """One scene: float32 ``left``/``right`` in [0, 1] and ``disparity`` (px), uint8 ``layer`` (left),
    ``planes`` (MAX_LAYERS, 3) (NaN rows unused), uint8 ``visible``."""
    layers = _sample_scene(rng, height, width, focal, baseline)
    _tighten_regions(layers, width, height)
    shapes = [(y1 - y0 + 1, x1 - x0 + 1) for x0, x1, y0, y1 in (layer.region for layer in layers)]
    for layer, (h, w) in zip(layers, shapes, strict=True):
        h2 = max(h, 2)  # crops need two rows; a one-row region uses the first
        layer.texture = render_crops([draw_crop(rng, h2, w, _TEXTURE)], h2, w)[0, :h]
    left, label_left = _render(layers, height, width, right=False)
    right, label_right = _render(layers, height, width, right=True)
    planes = np.full((MAX_LAYERS, 3), np.nan)
    planes[: len(layers)] = [layer.plane for layer in layers]
    disparity = planes_to_disparity(label_left, planes)
    return {
        "left": left, "right": right, "disparity": disparity, "layer": label_left, "planes": planes,
        "visible": _visible(label_left, label_right, disparity),
    }  # fmt: skip


def _check(height: int, width: int, baseline: float) -> None:
    if height < 8 or width < 16:
        raise ValueError(f"Stereo images must be at least 8x16 pixels; got {height}x{width}.")
    if baseline <= 0:
        raise ValueError(f"baseline must be positive (metres); got {baseline}.")


def generate_synthetic_stereo(
    n: int,
    *,
    height: int = 192,
    width: int = 640,
    baseline: float = KITTI_BASELINE,
    seed: int = 0,
    split: str = "train",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Generate ``n`` stereo pairs of ``split``.

    Returns uint8 ``left``/``right`` (n, H, W) 0..255, float32 ``disparity`` (n, H, W) px of the
    left image, uint8 ``layer`` (n, H, W) and float64 ``planes`` (n, MAX_LAYERS, 3) from which
    the disparity is exactly rebuilt (:func:`planes_to_disparity`), uint8 ``visible`` (n, H, W)
    (1 where the left pixel is seen in the right image), and scalars ``focal`` (px), ``baseline`` (m).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}.")
    check_split(split)
    _check(height, width, baseline)
    focal = kitti_focal(width)
    keys = ("left", "right", "layer", "visible")
    out = {k: np.empty((n, height, width), dtype=np.uint8) for k in keys}
    out["planes"] = np.empty((n, MAX_LAYERS, 3))
    out["disparity"] = np.empty((n, height, width), dtype=np.float32)
    for i in tqdm(range(n), desc=f"synthetic stereo ({split})", disable=not progress):
        scene = render_stereo_scene(sample_rng(seed, split, i), height, width, focal, baseline)
        out["left"][i], out["right"][i] = to_uint8(scene["left"]), to_uint8(scene["right"])
        for key in ("layer", "visible", "planes", "disparity"):
            out[key][i] = scene[key]
    out["focal"], out["baseline"] = np.float64(focal), np.float64(baseline)
    return out


class SyntheticStereoDataset(Dataset):
    """Synthetic rectified pairs: ``{"left", "right", "disparity", "depth", "visible"}`` (1, H, W)
    float32 and scalar ``"focal"`` (px), ``"baseline"`` (m).

    ``disparity`` is of the LEFT image in pixels (left u -> right u - d), ``depth`` =
    focal * baseline / disparity in metres (dense, 3.5-80 m), ``visible`` is 1 where the left
    pixel is not occluded in (nor out of) the right view. Default 1000 train / 200 test pairs at
    192 x 640. Cached under ``root`` (``None``: memory only) as uint8 images plus layer indices
    and plane coefficients, from which disparity is rebuilt exactly.
    """

    def __init__(
        self,
        root: str | Path | None = "data",
        split: str = "train",
        n_train: int = 1000,
        n_test: int = 200,
        height: int = 192,
        width: int = 640,
        baseline: float = KITTI_BASELINE,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        check_split(split)
        _check(height, width, baseline)
        n = n_train if split == "train" else n_test
        config = dict(n=n, height=height, width=width, baseline=baseline, seed=seed, split=split)
        # Everything that shapes the data goes into the cache key, the photo set included.
        params = dict(config, version=_VERSION, texture=repr(_TEXTURE), photos=sorted(load_photos()))

        def generate() -> dict[str, np.ndarray]:
            pairs = generate_synthetic_stereo(**config, progress=progress)
            keep = ("left", "right", "layer", "planes", "visible", "focal", "baseline")
            return {k: pairs[k] for k in keep}

        arrays = cached_arrays(root, "synthetic_stereo", params, generate)
        self.split = split
        self.left, self.right, self.layer = arrays["left"], arrays["right"], arrays["layer"]
        self.planes, self.visible = arrays["planes"], arrays["visible"]
        self.focal, self.baseline = float(arrays["focal"]), float(arrays["baseline"])

    def __len__(self) -> int:
        return len(self.left)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        disparity = torch.from_numpy(planes_to_disparity(self.layer[index], self.planes[index]))[None]
        return {
            "left": torch.from_numpy(self.left[index].astype(np.float32) / 255.0)[None],
            "right": torch.from_numpy(self.right[index].astype(np.float32) / 255.0)[None],
            "disparity": disparity,
            "depth": (self.focal * self.baseline) / disparity,
            "visible": torch.from_numpy(self.visible[index].astype(np.float32))[None],
            "focal": torch.tensor(self.focal, dtype=torch.float32),
            "baseline": torch.tensor(self.baseline, dtype=torch.float32),
        }
