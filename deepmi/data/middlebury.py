"""Middlebury 2014 "Motorcycle": one real rectified stereo pair with dense ground-truth disparity,
for DeepMI's Exp3 on real images (Sec. 5.3, unsupervised stereo depth).

scikit-image ships the pair offline as ``skimage.data.stereo_motorcycle()`` (Scharstein et al.,
GCPR 2014): the left and right views and the left view's disparity, all downscaled 4x from the
benchmark's full size to 500 x 741 (``downscale_local_mean``), with ``inf`` where the disparity
is unknown (7.3% of the pixels). Its docstring gives the calibration at that size, the
benchmark's ``calib.txt`` divided by 4 (focal 3979.911 px, doffs 124.343 px, baseline 193.001 mm
at full size):

    focal = 994.978 px,  baseline = 0.193001 m,  doffs = 31.086 px,
    depth = focal * baseline / (disparity + doffs)       (Middlebury 2014's formula)

``doffs`` is the x-difference of the two principal points (the views were rectified with
different ones), so depth is NOT focal * baseline / disparity here; the true depths are
2.1-5.0 m. Convention (as the rest of the repo, and pinned by a warp test): the left pixel at
column u shows the scene point the right view shows at column u - d, d > 0.

It is ONE scene. Training on it is unsupervised (the photometric loss of the left view
reconstructed from the right one; the ground truth is never used for training), and the test
image is the same scene, as in the paper, which trains and reports on the same 87 KITTI pairs.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import Dataset

from deepmi.data.cache import check_split, sample_rng
from deepmi.data.errors import DatasetNotFoundError

FOCAL = 994.978  # px, at skimage's 500 x 741
BASELINE = 0.193001  # m
DOFFS = 31.086  # px, at skimage's 500 x 741
NATIVE_SIZE = (500, 741)
# A downsampled pixel's ground truth is kept only if its block's known disparities agree this
# well (native pixels); blocks straddling a depth edge would otherwise get a mixed disparity.
MAX_BLOCK_SPREAD = 1.0

_HOW_TO_GET = """\
scikit-image bundles it: skimage.data.stereo_motorcycle() (with some
installs the data files are fetched on first use with pooch and cached). Run
  python -c "import skimage.data as d; d.stereo_motorcycle()"
once with network access, or pip install scikit-image with its data."""


def _to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float64 luma in [0, 1] (ITU-R BT.709, as skimage.color.rgb2gray)."""
    image = np.asarray(image, dtype=np.float64) / 255.0
    return image[..., :3] @ np.array([0.2125, 0.7154, 0.0721]) if image.ndim == 3 else image


def _blocks(array: np.ndarray, k: int) -> np.ndarray:
    """(H, W) -> (H // k, W // k, k * k): the k x k blocks, bottom/right remainder dropped."""
    h, w = array.shape[0] // k * k, array.shape[1] // k * k
    return array[:h, :w].reshape(h // k, k, w // k, k).transpose(0, 2, 1, 3).reshape(h // k, w // k, k * k)


def downsample_pair(
    left: np.ndarray, right: np.ndarray, disparity: np.ndarray, factor: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block-average a rectified pair and its left disparity by an integer ``factor``.

    Images: mean of each factor x factor block (rows/columns beyond a multiple of ``factor`` are
    dropped, e.g. 741 -> 740 columns at factor 2). Pixel u of the result is centred on native
    column factor * u + (factor - 1) / 2, so disparities scale by exactly 1 / factor. Disparity:
    the mean of the block's known (finite) values divided by ``factor``, kept only where at least
    half the block is known and the known values span at most MAX_BLOCK_SPREAD native pixels
    (no depth edge inside); elsewhere unknown (inf). ``factor`` 1 returns the inputs as float.
    """
    if factor < 1:
        raise ValueError(f"downsample must be an integer >= 1, got {factor}")
    left, right = np.asarray(left, np.float64), np.asarray(right, np.float64)
    disparity = np.asarray(disparity, np.float64)
    if factor == 1:
        return left, right, disparity
    left_b, right_b, disp_b = (_blocks(a, factor) for a in (left, right, disparity))
    known = np.isfinite(disp_b)
    n_known = known.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(known, disp_b, 0.0).sum(-1) / n_known
        spread = np.where(known, disp_b, -np.inf).max(-1) - np.where(known, disp_b, np.inf).min(-1)
    keep = (2 * n_known >= factor * factor) & (spread <= MAX_BLOCK_SPREAD)
    return left_b.mean(-1), right_b.mean(-1), np.where(keep, mean / factor, np.inf)


@functools.lru_cache(maxsize=4)
def load_motorcycle(downsample: int = 1) -> dict[str, np.ndarray | float]:
    """The pair at 1 / ``downsample`` of skimage's 500 x 741, loaded once per process.

    Returns float32 ``left``, ``right`` (H, W) grayscale in [0, 1] (BT.709 luma, as the paper's
    grayscale Exp3), float32 ``disparity`` (H, W) px of the left view with 0 where unknown, and
    floats ``focal`` (px), ``baseline`` (m), ``doffs`` (px) at that size. The arrays are
    read-only (shared between calls).

    Raises:
        DatasetNotFoundError: this scikit-image lacks the pair or cannot load it offline.
    """
    try:
        import skimage.data

        left, right, disparity = skimage.data.stereo_motorcycle()
    except Exception as err:  # noqa: BLE001 - missing function, missing pooch, no network, bad file
        raise DatasetNotFoundError(
            "Middlebury 2014 Motorcycle", f"skimage.data.stereo_motorcycle ({type(err).__name__}: {err})",
            _HOW_TO_GET,
        ) from err  # fmt: skip
    if np.shape(disparity) != NATIVE_SIZE or np.shape(left)[:2] != NATIVE_SIZE:
        raise ValueError(
            f"skimage.data.stereo_motorcycle() returned images of {np.shape(left)} and disparity of "
            f"{np.shape(disparity)}; expected {NATIVE_SIZE}, the size its calibration is given for"
        )
    left, right, disparity = downsample_pair(_to_gray(left), _to_gray(right), disparity, downsample)
    disparity = np.where(np.isfinite(disparity) & (disparity > 0), disparity, 0.0)
    out: dict[str, np.ndarray | float] = {
        "left": left.astype(np.float32), "right": right.astype(np.float32),
        "disparity": disparity.astype(np.float32),
        "focal": FOCAL / downsample, "baseline": BASELINE, "doffs": DOFFS / downsample,
    }  # fmt: skip
    for value in out.values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return out


def disparity_to_depth(disparity: np.ndarray, focal: float, baseline: float, doffs: float) -> np.ndarray:
    """Middlebury 2014 depth in metres, focal * baseline / (disparity + doffs); 0 where disparity is 0."""
    disparity = np.asarray(disparity, dtype=np.float64)
    known = disparity > 0
    return np.where(known, focal * baseline / np.where(known, disparity + doffs, 1.0), 0.0)


class MiddleburyMotorcycle(Dataset):
    """Middlebury 2014 Motorcycle for Exp3: random row crops (train) or the whole view (test).

    Items are dicts like the other stereo datasets':

    - ``left``, ``right``: float32 (1, h, W) grayscale in [0, 1];
    - ``disparity``: float32 (1, h, W), pixels of the left view at the working size, 0 = unknown;
    - ``depth``: float32 (1, h, W), metres, focal * baseline / (disparity + doffs), 0 = unknown;
    - ``valid``: float32 (1, h, W), 1 where the ground truth is known;
    - ``focal`` (px), ``baseline`` (m), ``doffs`` (px): 0-dim float32 at the working size;
    - ``top``: 0-dim int64, the crop's first row.

    The working size is skimage's 500 x 741 divided by ``downsample`` (block mean, see
    :func:`downsample_pair`): 500 x 741, 250 x 370, 125 x 185 for 1, 2, 4.

    Training items are ``crop_height`` rows of the pair, across its full width, starting at a
    row drawn from item ``index``'s own random stream (same crop for the same index and seed, so
    an epoch is reproducible and resumable). Crops keep the full width because the disparity
    network outputs disparity as a fraction of its input width (Godard et al.): a narrower crop
    would change what an output value means in pixels between training and test. The test split
    is one item, the whole view (``DisparityNet``'s UNet pads it to a multiple of 16 internally
    and crops the output back, so no resizing is needed).

    Args:
        split: "train" or "test".
        downsample: integer factor (1 = skimage's 500 x 741).
        crop_height: rows per training crop; None = the whole height (every item the whole pair);
            ignored by the test split.
        n_train: training items per epoch.
        seed: seed of the crop positions.
    """

    def __init__(
        self,
        split: str = "train",
        downsample: int = 1,
        crop_height: int | None = 256,
        n_train: int = 1000,
        seed: int = 0,
    ) -> None:
        check_split(split)
        if n_train < 1:
            raise ValueError(f"n_train must be >= 1, got {n_train}")
        pair = load_motorcycle(int(downsample))
        height = pair["left"].shape[0]
        if split == "train" and crop_height is not None and not 16 <= crop_height <= height:
            raise ValueError(
                f"crop_height={crop_height} must lie in [16, {height}] (the image height at "
                f"downsample={downsample}), or be null for whole-image items"
            )
        self.split, self.downsample, self.seed = split, int(downsample), seed
        self.crop_height = height if crop_height is None or split == "test" else int(crop_height)
        self.n = n_train if split == "train" else 1
        self.pair = pair
        self.focal, self.baseline, self.doffs = (
            float(pair["focal"]),
            float(pair["baseline"]),
            float(pair["doffs"]),
        )
        self.depth = disparity_to_depth(pair["disparity"], self.focal, self.baseline, self.doffs).astype(
            np.float32
        )

    def __len__(self) -> int:
        return self.n

    def crop_top(self, index: int) -> int:
        """First row of training item ``index`` (0 for the test item)."""
        if self.split == "test":
            return 0
        height = self.pair["left"].shape[0]
        return int(sample_rng(self.seed, self.split, index).integers(0, height - self.crop_height + 1))

    def depth_values(self) -> np.ndarray:
        """The valid true depths of the view the split's crops come from (for the median baseline)."""
        return self.depth[self.depth > 0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} items")
        top = self.crop_top(index)
        rows = slice(top, top + self.crop_height)

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.array(array[rows], dtype=np.float32))[None]

        disparity = tensor(self.pair["disparity"])
        return {
            "left": tensor(self.pair["left"]),
            "right": tensor(self.pair["right"]),
            "disparity": disparity,
            "depth": tensor(self.depth),
            "valid": (disparity > 0).float(),
            "focal": torch.tensor(self.focal, dtype=torch.float32),
            "baseline": torch.tensor(self.baseline, dtype=torch.float32),
            "doffs": torch.tensor(self.doffs, dtype=torch.float32),
            "top": torch.tensor(top, dtype=torch.int64),
        }
