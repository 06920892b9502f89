"""KITTI raw rectified stereo pairs with Velodyne depth, for DeepMI's Exp3 (Sec. 5.3).

The paper trains on "87 grayscale rectified stereo images from KITTI sequence-113" and reports
the MAE against depth measurements. We read one raw drive with ``pykitti`` (an optional extra,
``pip install deepmi[kitti]``) and build the ground truth the usual way: the drive's Velodyne
scan projected into the rectified left camera,

    [u w, v w, w]^T = P_rect_00 @ R_rect_00 @ T_cam0unrect_velo @ [x, y, z, 1]^T,    depth = w,

keeping points in front of the camera and inside the image, nearest point per pixel. To resize
we re-project the points with the intrinsics scaled to the working size, instead of resampling
a sparse map. Pixel centres sit at integer coordinates (pixel j covers [j - 0.5, j + 0.5)).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from deepmi.data.errors import CorruptDatasetError, DatasetNotFoundError

CALIB_FILES = ("calib_cam_to_cam.txt", "calib_velo_to_cam.txt", "calib_imu_to_velo.txt")

_HOW_TO_GET = """\
Download from the KITTI raw data page, https://www.cvlibs.net/datasets/kitti/raw_data.php:
the drive's "synced+rectified data" zip ({date}_drive_{drive}_sync.zip) and
the date's "calibration" zip ({date}_calib.zip). Unzip both into base_dir={base_dir}, giving
  base_dir/{date}/calib_cam_to_cam.txt, calib_velo_to_cam.txt, calib_imu_to_velo.txt
  base_dir/{date}/{date}_drive_{drive}_sync/image_00..03/data/*.png, velodyne_points/data/*.bin,
      oxts/data/*.txt, and each folder's timestamps.txt"""
_OR_DOWNLOAD = """
Or pass download=True (the dataset config's download: true): pooch fetches both, they are unzipped there."""


def kitti_raw_archives(date: str, drive: str) -> tuple[str, str]:
    """The drive's sync zip and the date's calib zip, as URL paths relative to KITTI's ``raw_data/``."""
    if not re.fullmatch(r"\d{4}_\d{2}_\d{2}", date) or not re.fullmatch(r"\d{4}", drive):
        raise ValueError(f"date={date!r}, drive={drive!r}: use KITTI's forms, e.g. '2011_09_26' and '0113'")
    return f"{date}_drive_{drive}/{date}_drive_{drive}_sync.zip", f"{date}_calib.zip"


def download_kitti_raw(
    base_dir: str | Path,
    date: str = "2011_09_26",
    drive: str = "0113",
    base_url: str | None = None,
    progressbar: bool = True,
    **fetch_options,
) -> Path:
    """Fetch the drive's synced+rectified zip and the date's calibration zip, unzip them into ``base_dir``.

    Only the missing part is fetched (the calibration is shared by all drives of a date). The zips
    are cached in ``base_dir/downloads/`` (the drive is about 370 MB; delete them once extracted if
    space matters). KITTI publishes no checksums: every member's CRC-32 is checked while unzipping,
    a zip that fails is deleted and fetched once more, and the result must have the layout of
    :func:`check_kitti_raw_layout`. Base URL: ``base_url``, else ``$DEEPMI_KITTI_URL``, else KITTI's
    ``https://s3.eu-central-1.amazonaws.com/avg-kitti/raw_data/``.

    Returns:
        The drive folder.

    Raises:
        DownloadError: the server could not be reached; the message says what to fetch by hand.
        CorruptDatasetError: a zip is damaged twice over, or does not hold the expected files.
    """
    from deepmi.data import download  # lazy: keeps `python -m deepmi.data.download` warning-free

    base_dir = Path(base_dir)
    drive_zip, calib_zip = kitti_raw_archives(date, drive)
    how = _HOW_TO_GET.format(date=date, drive=drive, base_dir=base_dir)
    calib_dir = base_dir / date
    drive_dir = calib_dir / f"{date}_drive_{drive}_sync"
    wanted = []
    if not all((calib_dir / f).is_file() for f in CALIB_FILES):
        wanted.append(calib_zip)
    if not all(path.exists() for path in _drive_parts(drive_dir)):
        wanted.append(drive_zip)
    for url_path in wanted:
        download.fetch_and_extract(
            download.RemoteFile(url_path, None), base_dir, "kitti", dataset=f"KITTI raw drive {date} {drive}",
            how_to_get=how, base_url=base_url, progressbar=progressbar, **fetch_options,
        )  # fmt: skip
    try:
        return check_kitti_raw_layout(base_dir, date, drive)
    except DatasetNotFoundError as err:
        raise CorruptDatasetError(
            base_dir / download.DOWNLOADS,
            f"the zips were unpacked but {err.missing} is missing (not {date} drive {drive}'s zips?)",
            fix=f"delete the zips there and check the base URL, or fetch them by hand: {how}",
        ) from err


def _drive_parts(drive_dir: Path) -> list[Path]:
    """What the loader needs from the drive's sync zip."""
    parts = [drive_dir / "image_00" / "data", drive_dir / "image_01" / "data"]
    return parts + [drive_dir / "velodyne_points" / "data", drive_dir / "oxts" / "timestamps.txt"]


def check_kitti_raw_layout(base_dir: str | Path, date: str, drive: str) -> Path:
    """Return the drive folder, or raise DatasetNotFoundError naming the first missing piece."""
    base_dir = Path(base_dir)
    calib_dir = base_dir / date
    drive_dir = calib_dir / f"{date}_drive_{drive}_sync"
    how = _HOW_TO_GET.format(date=date, drive=drive, base_dir=base_dir) + _OR_DOWNLOAD
    needed = [base_dir, calib_dir] + [calib_dir / f for f in CALIB_FILES] + _drive_parts(drive_dir)
    for path in needed:
        if not path.exists():
            raise DatasetNotFoundError(f"KITTI raw drive {date} {drive}", path, how)
    return drive_dir


def scale_projection(p: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """The 3x4 projection matrix for an image resized by (sx, sy), pixel centres kept aligned.

    Resizing maps u -> sx (u + 0.5) - 0.5 (the convention of bilinear resizing with
    ``align_corners=False``), so row 0 becomes sx * row0 + (sx - 1) / 2 * row2, likewise for v.
    """
    p = np.asarray(p, dtype=np.float64)
    out = p.copy()
    out[0] = sx * p[0] + 0.5 * (sx - 1.0) * p[2]
    out[1] = sy * p[1] + 0.5 * (sy - 1.0) * p[2]
    return out


def project_velodyne(
    points: np.ndarray, velo_to_rect: np.ndarray, p_rect: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """Sparse depth map (H, W) float32 from Velodyne points; 0 where no point lands.

    Args:
        points: (N, >=3) Velodyne x, y, z (a 4th reflectance column is ignored).
        velo_to_rect: 4x4 rectified-camera-from-Velodyne transform (R_rect_00 @ T_cam0unrect_velo).
        p_rect: 3x4 projection of the rectified camera (already scaled to ``size``).
        size: (H, W) of the depth map.
    """
    h, w = size
    xyz1 = np.c_[np.asarray(points, dtype=np.float64)[:, :3], np.ones(len(points))]
    uvw = xyz1 @ (np.asarray(p_rect, dtype=np.float64) @ np.asarray(velo_to_rect, dtype=np.float64)).T
    depth = uvw[:, 2]
    front = depth > 0
    uvw, depth = uvw[front], depth[front]
    # Round to the pixel whose centre is nearest; floor(x + 0.5) keeps -0.5 inside pixel 0.
    u = np.floor(uvw[:, 0] / depth + 0.5)
    v = np.floor(uvw[:, 1] / depth + 0.5)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    lin = (v[inside] * w + u[inside]).astype(np.int64)
    depth = depth[inside]
    # Several points on one pixel (LiDAR and camera see from different places): keep the nearest.
    order = np.lexsort((depth, lin))
    lin, depth = lin[order], depth[order]
    first = np.ones(len(lin), dtype=bool)
    first[1:] = lin[1:] != lin[:-1]
    out = np.zeros(h * w, dtype=np.float32)
    out[lin[first]] = depth[first]
    return out.reshape(h, w)


def _import_pykitti():
    try:
        import pykitti  # imports cv2 (opencv) without declaring it
    except ImportError as err:
        raise ImportError(
            f"KittiRawStereo needs pykitti and OpenCV ({err}); install them with pip install deepmi[kitti] "
            "(pykitti + opencv-python-headless)"
        ) from err
    return pykitti


class KittiRawStereo(Dataset):
    """Rectified stereo pairs of one KITTI raw drive with projected-LiDAR depth (DeepMI Exp3).

    Each item is a dict:

    - ``left``, ``right``: float32 (C, H, W) in [0, 1]; grey cameras 00/01 (C=1), or 02/03 (C=3)
      with ``color=True``; bilinear resize (antialiased) to ``size``.
    - ``depth``: float32 (1, H, W) metres in the left camera, 0 = no measurement.
    - ``focal``: fx in pixels at the working width; ``baseline``: metres. For a disparity d
      in pixels at the working size, ``depth = focal * baseline / d``.
    - ``K``: (3, 3) rectified left intrinsics at the working size; ``frame``: index in the drive.

    Args:
        base_dir: folder holding ``<date>/`` (see :func:`check_kitti_raw_layout`).
        date, drive: the raw drive. The paper names only "sequence 113"; the default
            2011_09_26 / 0113 is our reading of it (see docs/data_real.md).
        frames: indices into the drive (default: all of it).
        size: working (height, width); ``None`` keeps the native size.
        color: use the colour cameras 02/03 instead of the grey 00/01 the paper uses.
        cache: keep decoded items in memory (the paper's drive is 87 frames).
        download: fetch and unzip the drive and its calibration first if they are missing
            (:func:`download_kitti_raw`). A drive already in place is used without the network.
        base_url: a mirror of KITTI's ``raw_data/`` folder for the download (or ``$DEEPMI_KITTI_URL``).
    """

    def __init__(
        self,
        base_dir: str | Path,
        date: str = "2011_09_26",
        drive: str = "0113",
        frames: Sequence[int] | None = None,
        size: tuple[int, int] | None = (192, 640),
        color: bool = False,
        cache: bool = True,
        download: bool = False,
        base_url: str | None = None,
    ) -> None:
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"size={size}: give (height, width) in pixels, or None for the native size")
        self.base_dir = Path(base_dir)
        self.date, self.drive = date, drive
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.color = color
        self.cache = cache
        try:
            drive_dir = check_kitti_raw_layout(self.base_dir, date, drive)
        except DatasetNotFoundError:
            if not download:
                raise
            drive_dir = download_kitti_raw(self.base_dir, date, drive, base_url=base_url)
        n_total = len(sorted((drive_dir / "image_00" / "data").glob("*.png")))
        if frames is not None:
            frames = [int(i) for i in frames]
            bad = [i for i in frames if not 0 <= i < n_total]
            if bad:
                raise ValueError(
                    f"frames {bad[:5]} outside the drive's 0..{n_total - 1}; pick indices in range"
                )
        pykitti = _import_pykitti()
        # Keep only plain lists and arrays from pykitti: its calibration namedtuple class is made
        # on the fly and does not pickle (DataLoader workers under the spawn start method).
        raw = pykitti.raw(str(self.base_dir), date, drive, frames=frames)
        self.frames = list(range(n_total)) if frames is None else frames
        left_files = raw.cam2_files if color else raw.cam0_files
        right_files = raw.cam3_files if color else raw.cam1_files
        self._velo_files = list(raw.velo_files)
        counts = {"left": len(left_files), "right": len(right_files), "velodyne": len(self._velo_files)}
        if len(set(counts.values())) != 1 or counts["left"] == 0:
            raise ValueError(
                f"{drive_dir}: unequal or zero file counts {counts} for the chosen frames; "
                "re-extract the synced+rectified zip"
            )
        self._left_files, self._right_files = list(left_files), list(right_files)

        calib = raw.calib
        p_left, p_right = (calib.P_rect_20, calib.P_rect_30) if color else (calib.P_rect_00, calib.P_rect_10)
        # Camera n's rectified centre is at x = -P_n[0, 3] / P_n[0, 0] in rectified cam-0 coordinates.
        self.baseline = float(-p_right[0, 3] / p_right[0, 0] + p_left[0, 3] / p_left[0, 0])
        self.p_rect_native = np.asarray(p_left, dtype=np.float64)
        # All rectified cameras share R_rect_00's rotation; P_rect_n0 adds camera n's offset.
        self.velo_to_rect = np.asarray(calib.R_rect_00 @ calib.T_cam0_velo_unrect, dtype=np.float64)
        self._items: dict[int, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._left_files)

    def _image(self, path: str) -> torch.Tensor:
        from PIL import Image  # a pykitti dependency

        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB" if self.color else "L"), dtype=np.uint8)
        img = torch.from_numpy(arr.copy()).float().div_(255.0)
        return img.permute(2, 0, 1) if img.ndim == 3 else img.unsqueeze(0)

    @staticmethod
    def _velodyne(path: str) -> np.ndarray:
        scan = np.fromfile(path, dtype=np.float32)
        if scan.size % 4:
            raise CorruptDatasetError(path, f"{scan.size} floats, not a multiple of 4 (x, y, z, reflectance)")
        return scan.reshape(-1, 4)

    def _resize(self, img: torch.Tensor) -> torch.Tensor:
        if self.size is None or tuple(img.shape[-2:]) == self.size:
            return img
        down = self.size[0] < img.shape[-2] or self.size[1] < img.shape[-1]
        out = F.interpolate(img[None], size=self.size, mode="bilinear", align_corners=False, antialias=down)
        return out[0].clamp_(0.0, 1.0)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        if index in self._items:
            return dict(self._items[index])  # a fresh dict, so callers may add keys
        left = self._image(self._left_files[index])
        right = self._image(self._right_files[index])
        h0, w0 = left.shape[-2:]
        h, w = self.size if self.size is not None else (h0, w0)
        p = scale_projection(self.p_rect_native, w / w0, h / h0)
        points = self._velodyne(self._velo_files[index])
        depth = project_velodyne(points, self.velo_to_rect, p, (h, w))
        item = {
            "left": self._resize(left),
            "right": self._resize(right),
            "depth": torch.from_numpy(depth)[None],
            "focal": torch.tensor(p[0, 0], dtype=torch.float32),
            "baseline": torch.tensor(self.baseline, dtype=torch.float32),
            "K": torch.from_numpy(p[:, :3].astype(np.float32)),
            "frame": torch.tensor(self.frames[index]),
        }
        if self.cache:
            self._items[index] = item
        return item
