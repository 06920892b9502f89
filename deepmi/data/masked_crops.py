"""Exp2 mask-prediction data (DeepMI Sec. 5.2): a photo crop I_s and a copy I_t with a zeroed rectangle.

I_s: an augmented random crop (random photo, scale, small rotation, horizontal flip, gamma,
contrast, brightness; :mod:`deepmi.data.photos`) of the bundled photographs, stored as uint8.
I_t = I_s * (1 - M): the rectangle (default 40 rows x 200 columns) is filled with zeros.

Mask convention: the stored mask M is 1 INSIDE the removed rectangle (the "dissimilar region")
and 0 elsewhere. The rectangle's position is uniform over the image, redrawn (up to
``max_tries`` times) while more than ``max_dark_fraction`` of the source pixels it would cover
are already near-black (< 0.05), since zeroing those would leave nothing to detect.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from deepmi.data.cache import cached_arrays, check_split, sample_rng, to_uint8
from deepmi.data.photos import DEFAULT_AUGMENT, Augment, draw_crop, load_photos, render_crops

_VERSION = 2
DARK_LEVEL = 0.05  # a pixel below this (about 13/255) counts as already black


def place_rectangle(
    image: np.ndarray,
    rng: np.random.Generator,
    rect_height: int,
    rect_width: int,
    max_dark_fraction: float = 0.5,
    max_tries: int = 20,
) -> tuple[int, int]:
    """(top, left) of a rectangle that is mostly not already black in ``image`` (see module doc).

    Falls back to the least-dark candidate if every try is too dark.
    """
    height, width = image.shape
    best, best_dark = (0, 0), np.inf
    for _ in range(max_tries):
        top = int(rng.integers(0, height - rect_height + 1))
        left = int(rng.integers(0, width - rect_width + 1))
        dark = float(np.mean(image[top : top + rect_height, left : left + rect_width] < DARK_LEVEL))
        if dark <= max_dark_fraction:
            return top, left
        if dark < best_dark:
            best, best_dark = (top, left), dark
    return best


def boxes_to_masks(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """(n, 4) int boxes [top, left, height, width] -> (n, H, W) uint8 masks, 1 inside the box."""
    boxes = np.asarray(boxes)
    masks = np.zeros((len(boxes), height, width), dtype=np.uint8)
    for mask, (top, left, bh, bw) in zip(masks, boxes, strict=True):
        mask[max(top, 0) : max(top + bh, 0), max(left, 0) : max(left + bw, 0)] = 1
    return masks


def _check(height: int, width: int, rect_height: int, rect_width: int, max_dark_fraction: float) -> None:
    if height < 2 or width < 2:
        raise ValueError(f"Images must be at least 2x2 pixels; got {height}x{width}.")
    if not (0 < rect_height <= height and 0 < rect_width <= width):
        raise ValueError(
            f"The {rect_height}x{rect_width} rectangle must fit in the {height}x{width} image; "
            "shrink rect_height/rect_width or enlarge the image."
        )
    if not 0 <= max_dark_fraction <= 1:
        raise ValueError(f"max_dark_fraction must lie in [0, 1]; got {max_dark_fraction}.")


def generate_masked_pairs(
    n: int,
    *,
    height: int = 192,
    width: int = 640,
    rect_height: int = 40,
    rect_width: int = 200,
    max_dark_fraction: float = 0.5,
    min_std: float = 0.04,
    seed: int = 0,
    split: str = "train",
    augment: Augment = DEFAULT_AUGMENT,
    max_tries: int = 20,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Generate ``n`` pairs of ``split``.

    A crop whose standard deviation is below ``min_std`` is redrawn (up to ``max_tries`` times).
    Returns uint8 ``source`` and ``target`` (n, H, W) in 0..255, ``mask`` (n, H, W) in {0, 1}
    (1 inside the zeroed rectangle) and ``box`` (n, 4) int32 [top, left, height, width].
    """
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}.")
    check_split(split)
    _check(height, width, rect_height, rect_width, max_dark_fraction)
    source = np.empty((n, height, width), dtype=np.uint8)
    box = np.empty((n, 4), dtype=np.int32)
    chunk = 50
    for start in tqdm(range(0, n, chunk), desc=f"masked crops ({split})", disable=not progress, unit="x50"):
        rngs = [sample_rng(seed, split, i) for i in range(start, min(start + chunk, n))]
        crops = to_uint8(
            render_crops([draw_crop(rng, height, width, augment) for rng in rngs], height, width)
        )
        for j, rng in enumerate(rngs):
            for _ in range(max_tries):  # a near-flat crop (sky, moon) leaves little to compare: redraw it
                if crops[j].std() >= min_std * 255:
                    break
                crops[j] = to_uint8(render_crops([draw_crop(rng, height, width, augment)], height, width))[0]
            top, left = place_rectangle(crops[j] / 255.0, rng, rect_height, rect_width, max_dark_fraction)
            box[start + j] = (top, left, rect_height, rect_width)
        source[start : start + len(rngs)] = crops
    mask = boxes_to_masks(box, height, width)
    return {"source": source, "target": source * (1 - mask), "mask": mask, "box": box}


def nearest_neighbour_correlation(images: np.ndarray, size: tuple[int, int] = (24, 80)) -> np.ndarray:
    """For each image, the largest Pearson correlation with any other image of the set.

    Images are block-averaged to ``size`` first (so small shifts still count as near-duplicates).
    Values near 1 flag near-duplicates; used to check that augmentation gives distinct samples.
    """
    images = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    if images.dim() != 3 or len(images) < 2:
        raise ValueError(f"Need an (n >= 2, H, W) array of images; got shape {tuple(images.shape)}.")
    small = torch.nn.functional.adaptive_avg_pool2d(images[:, None], size).flatten(1)
    small = small - small.mean(1, keepdim=True)
    small = small / small.norm(dim=1, keepdim=True).clamp_min(1e-12)
    corr = small @ small.T
    corr.fill_diagonal_(-1.0)
    return corr.max(1).values.numpy()


class MaskedCropsDataset(Dataset):
    """Exp2 pairs: ``{"source", "target", "mask"}`` (1, H, W) float32 and ``"box"`` (4,) int64.

    ``mask`` is 1 inside the zeroed rectangle, 0 elsewhere; target == source * (1 - mask).
    Paper setting: 1000 train / 500 test pairs. Cached under ``root`` (``None``: memory only);
    the cache stores source, mask and box, and the target is recomputed exactly from them.
    """

    def __init__(
        self,
        root: str | Path | None = "data",
        split: str = "train",
        n_train: int = 1000,
        n_test: int = 500,
        height: int = 192,
        width: int = 640,
        rect_height: int = 40,
        rect_width: int = 200,
        max_dark_fraction: float = 0.5,
        min_std: float = 0.04,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        check_split(split)
        _check(height, width, rect_height, rect_width, max_dark_fraction)
        n = n_train if split == "train" else n_test
        config = dict(
            n=n, height=height, width=width, rect_height=rect_height, rect_width=rect_width,
            max_dark_fraction=max_dark_fraction, min_std=min_std, seed=seed, split=split,
        )  # fmt: skip
        # Everything that shapes the data goes into the cache key, the photo set included.
        params = dict(config, version=_VERSION, augment=repr(DEFAULT_AUGMENT), photos=sorted(load_photos()))

        def generate() -> dict[str, np.ndarray]:
            pairs = generate_masked_pairs(**config, progress=progress)
            return {k: pairs[k] for k in ("source", "mask", "box")}

        arrays = cached_arrays(root, "masked_crops", params, generate)
        self.split = split
        self.source = arrays["source"]
        self.mask = arrays["mask"]
        self.box = torch.from_numpy(arrays["box"].astype(np.int64))

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        source = torch.from_numpy(self.source[index].astype(np.float32) / 255.0)[None]
        mask = torch.from_numpy(self.mask[index].astype(np.float32))[None]
        return {"source": source, "target": source * (1.0 - mask), "mask": mask, "box": self.box[index]}
