"""The real photographs bundled with scikit-image and scikit-learn, and augmented random crops of them.

Used as image content by the mask-prediction (Exp2) and synthetic-stereo (Exp3) data. Everything
loads offline from the installed packages; scikit-image/scikit-learn are imported lazily.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Natural photographs only: the microscopy, astronomy (mostly black), document and synthetic
# images that scikit-image also ships would make poor "ordinary grayscale images".
SKIMAGE_PHOTOS = (
    "astronaut", "camera", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "coins",
    "moon", "stereo_motorcycle",
)  # fmt: skip
# Plus scikit-learn's load_sample_images(): china and flower.


def _to_gray(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    scale = 255.0 if image.dtype == np.uint8 else 1.0
    image = image.astype(np.float64) / scale
    if image.ndim == 3:
        # ITU-R BT.709 luma, as skimage.color.rgb2gray, without importing skimage.color.
        image = image[..., :3] @ np.array([0.2125, 0.7154, 0.0721])
    return np.clip(image, 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=1)
def load_photos() -> dict[str, np.ndarray]:
    """Name -> grayscale float32 (h, w) image in [0, 1]; loaded once per process.

    Photos that a given scikit-image version cannot load offline are skipped with a warning.
    """
    photos: dict[str, np.ndarray] = {}
    try:
        import skimage.data as skdata
    except ImportError:  # pragma: no cover - scikit-image is a declared dependency
        skdata = None
    for name in SKIMAGE_PHOTOS:
        try:
            image = getattr(skdata, name)()
            if name == "stereo_motorcycle":
                name, image = "motorcycle", image[0]  # the left view; the right one is the same scene
            photos[name] = _to_gray(image)
        except Exception as err:  # noqa: BLE001 - any loader failure just drops that photo
            warnings.warn(f"skipping skimage photo {name!r}: {err}", stacklevel=2)
    try:
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
        for path, image in zip(bunch.filenames, bunch.images, strict=True):
            photos[path.replace("\\", "/").rsplit("/", 1)[-1].split(".")[0]] = _to_gray(image)
    except Exception as err:  # noqa: BLE001
        warnings.warn(f"skipping scikit-learn sample images: {err}", stacklevel=2)
    if len(photos) < 4:
        raise ValueError(
            f"Only {len(photos)} bundled photographs could be loaded ({sorted(photos)}); install "
            "scikit-image (with its data files) and scikit-learn."
        )
    return photos


@dataclass(frozen=True)
class CropParams:
    """One augmented crop: photo, similarity transform (output px -> photo px) and photometry."""

    photo: str
    centre_x: float
    centre_y: float
    scale: float  # output pixels per photo pixel
    angle: float  # degrees
    flip: bool
    gamma: float
    contrast: float
    brightness: float


@dataclass(frozen=True)
class Augment:
    """Ranges of the random augmentation (defaults documented in docs/data.md)."""

    zoom: float = 3.0  # scale drawn log-uniformly in [s_lo, zoom * s_lo], s_lo = max(s_fit, min_scale)
    min_scale: float = 0.0  # output px per photo px; > 0 avoids strong minification of small crops
    max_angle: float = 8.0  # degrees
    flip: float = 0.5  # probability of a horizontal flip
    gamma: tuple[float, float] = (0.7, 1.4)  # log-uniform
    contrast: tuple[float, float] = (0.7, 1.3)
    brightness: tuple[float, float] = (-0.1, 0.1)


DEFAULT_AUGMENT = Augment()


def draw_crop(
    rng: np.random.Generator, height: int, width: int, augment: Augment = DEFAULT_AUGMENT
) -> CropParams:
    """Draw one crop of ``height x width`` output pixels that lies entirely inside its photo."""
    photos = load_photos()
    names = sorted(photos)
    name = names[rng.integers(len(names))]
    ph, pw = photos[name].shape
    angle = float(rng.uniform(-augment.max_angle, augment.max_angle))
    cos, sin = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    # Smallest scale at which the rotated output rectangle fits in the photo (pixel centres 0..w-1).
    fit = max((width * cos + height * sin) / (pw - 2), (width * sin + height * cos) / (ph - 2))
    scale = max(fit, augment.min_scale) * math.exp(rng.uniform(0.0, math.log(augment.zoom)))
    half_x = (width * cos + height * sin) / (2 * scale)
    half_y = (width * sin + height * cos) / (2 * scale)
    return CropParams(
        photo=name,
        centre_x=float(rng.uniform(half_x, pw - 1 - half_x)),
        centre_y=float(rng.uniform(half_y, ph - 1 - half_y)),
        scale=scale,
        angle=angle,
        flip=bool(rng.random() < augment.flip),
        gamma=float(math.exp(rng.uniform(*np.log(augment.gamma)))),
        contrast=float(rng.uniform(*augment.contrast)),
        brightness=float(rng.uniform(*augment.brightness)),
    )


def _crop_affine(crop: CropParams, height: int, width: int, photo_shape: tuple[int, int]) -> np.ndarray:
    """2x3 map from normalised output coordinates to normalised photo coordinates (align_corners=True)."""
    rad = math.radians(crop.angle)
    cos, sin = math.cos(rad), math.sin(rad)
    flip = -1.0 if crop.flip else 1.0
    ph, pw = photo_shape
    # output pixel offsets from the centre (x, y) = (u * (W-1)/2, v * (H-1)/2) for normalised (u, v);
    # photo pixel = R (flip * x, y) / scale + centre; normalised photo = 2 * pixel / (size - 1) - 1.
    to_pixels = np.diag([flip * (width - 1) / 2.0, (height - 1) / 2.0])
    rotate = np.array([[cos, sin], [-sin, cos]]) / crop.scale
    to_normal = np.diag([2.0 / (pw - 1), 2.0 / (ph - 1)])
    linear = to_normal @ rotate @ to_pixels
    offset = to_normal @ np.array([crop.centre_x, crop.centre_y]) - 1.0
    return np.concatenate([linear, offset[:, None]], axis=1)


def render_crops(crops: list[CropParams], height: int, width: int) -> np.ndarray:
    """Render crops as a (n, height, width) float32 array in [0, 1] (bilinear, photometry applied)."""
    photos = load_photos()
    out = np.empty((len(crops), height, width), dtype=np.float32)
    rows = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    cols = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    by_photo: dict[str, list[int]] = {}
    for i, crop in enumerate(crops):
        by_photo.setdefault(crop.photo, []).append(i)
    for name, idx in by_photo.items():
        photo = torch.from_numpy(photos[name])[None, None]
        # All crops of one photo in one grid_sample call: their grids stacked along the rows.
        # (Built with numpy broadcasting: much faster than torch's affine_grid on CPU.)
        grid = np.empty((len(idx), height, width, 2), dtype=np.float32)
        for k, i in enumerate(idx):
            a = _crop_affine(crops[i], height, width, photos[name].shape).astype(np.float32)
            for c in range(2):
                grid[k, ..., c] = (a[c, 0] * cols + a[c, 2]) + a[c, 1] * rows
        grid = torch.from_numpy(grid).reshape(1, len(idx) * height, width, 2)
        sampled = F.grid_sample(photo, grid, mode="bilinear", padding_mode="border", align_corners=True)
        out[idx] = sampled.reshape(len(idx), height, width).numpy()
    gamma = np.array([c.gamma for c in crops], dtype=np.float32)[:, None, None]
    contrast = np.array([c.contrast for c in crops], dtype=np.float32)[:, None, None]
    brightness = np.array([c.brightness for c in crops], dtype=np.float32)[:, None, None]
    out = np.power(np.clip(out, 0.0, 1.0), gamma)
    mean = out.mean(axis=(1, 2), keepdims=True)
    return np.clip((out - mean) * contrast + mean + brightness, 0.0, 1.0)


def random_crops(
    rngs: list[np.random.Generator], height: int, width: int, augment: Augment = DEFAULT_AUGMENT
) -> np.ndarray:
    """One augmented random crop per generator: (len(rngs), height, width) float32 in [0, 1]."""
    if height < 2 or width < 2:
        raise ValueError(f"Crops must be at least 2x2 pixels; got {height}x{width}.")
    return render_crops([draw_crop(rng, height, width, augment) for rng in rngs], height, width)
