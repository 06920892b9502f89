"""Writers of tiny fake datasets in the real on-disk formats (KITTI raw, CIFAR pickles, MNIST idx).

The loaders in ``deepmi.data.{kitti,cifar,mnist}`` read what these write exactly as they read the
real downloads, so tests and smoke runs exercise the same parsing code without the real data.
Contents are random or synthetic; the KITTI drive has a known geometry (a textured fronto-parallel
wall per frame) so depth and disparity can be checked against closed forms.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import os
import pickle
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deepmi.data.cifar import _LAYOUT as _CIFAR_LAYOUT
from deepmi.data.mnist import IMAGES_MAGIC, LABELS_MAGIC


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    DDP ranks (and parallel test workers) may write the same fixture at once; a reader must
    never see a half-written file, only the old complete one or the new one (same bytes).
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------------------
# MNIST idx
# ----------------------------------------------------------------------------------------------


def _idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + np.asarray(array.shape, dtype=">i4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist_fixture(
    root: str | Path, n_train: int = 64, n_test: int = 32, seed: int = 0, gz: bool = True
) -> Path:
    """Write random digits as ``root/MNIST/raw/{train,t10k}-*-ubyte[.gz]``; returns ``root``.

    Labels cycle through 0..9 so every class appears; images are uint8 noise with a bright
    square whose position encodes the label (a learnable toy signal for smoke runs).
    """
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train={n_train}, n_test={n_test}: both must be >= 1")
    rng = np.random.default_rng(seed)
    raw = Path(root) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        images = rng.integers(0, 64, size=(n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            r, c = 2 + 8 * (label // 4), 2 + 8 * (label % 4)
            images[i, r : r + 6, c : c + 6] = 255
        for kind, magic, array in (
            ("images-idx3", IMAGES_MAGIC, images),
            ("labels-idx1", LABELS_MAGIC, labels),
        ):
            blob = _idx_bytes(magic, array)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                _write_atomically(raw / (name + ".gz"), gzip.compress(blob, mtime=0))
            else:
                _write_atomically(raw / name, blob)
    return Path(root)


# ----------------------------------------------------------------------------------------------
# CIFAR python pickles
# ----------------------------------------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):
    """Protocol-2 pickler that writes ``bytes`` as Python 2 ``str`` opcodes.

    The real CIFAR batches were written by Python 2's cPickle, so their keys load as ``bytes``
    with ``encoding="bytes"`` and as ``str`` with ``encoding="latin1"`` (torchvision's choice).
    Python 3 pickles bytes at protocol 2 through ``_codecs.encode``, which always loads as bytes;
    emitting (SHORT_)BINSTRING instead makes the fixture behave like the real files under both.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + n.to_bytes(4, "little") + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _dump_py2(obj: object, path: Path) -> None:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    _write_atomically(path, buf.getvalue())


def _cifar_batch(rng: np.random.Generator, n: int, n_classes: int, label_keys: dict[str, int], title: str):
    labels = np.arange(n) % n_classes
    rng.shuffle(labels)
    # Class-dependent mean colour so a smoke run has something to learn.
    base = (labels[:, None] * 37 % 200).astype(np.int64)
    data = np.clip(base + rng.integers(0, 56, size=(n, 3072)), 0, 255).astype(np.uint8)
    batch = {b"batch_label": title.encode(), b"data": data}
    for key, divisor in label_keys.items():
        batch[key.encode()] = [int(y) // divisor for y in labels]
    batch[b"filenames"] = [f"fixture_s_{i:06d}.png".encode() for i in range(n)]
    return batch


def write_cifar_fixture(
    root: str | Path, name: str = "cifar10", n_train: int = 50, n_test: int = 20, seed: int = 0
) -> Path:
    """Write tiny CIFAR pickles in the real layout; returns ``root``.

    CIFAR-10: ``cifar-10-batches-py/data_batch_1..5`` (``n_train`` split over the five),
    ``test_batch``, ``batches.meta``. CIFAR-100: ``cifar-100-python/{train,test,meta}`` with fine
    labels 0..99 and coarse labels ``fine // 5`` (the real coarse mapping is not arithmetic).
    """
    if name not in _CIFAR_LAYOUT:
        raise ValueError(f"unknown CIFAR name {name!r}; use one of {sorted(_CIFAR_LAYOUT)}")
    folder, _, train_files, test_files, meta_file, _, n_classes = _CIFAR_LAYOUT[name]
    if n_train < len(train_files) or n_test < 1:
        need = f"need n_train >= {len(train_files)} (one per batch file) and n_test >= 1"
        raise ValueError(f"n_train={n_train}, n_test={n_test}: {need}")
    rng = np.random.default_rng(seed)
    base = Path(root) / folder
    base.mkdir(parents=True, exist_ok=True)
    if name == "cifar10":
        keys = {"labels": 1}
        meta = {
            b"num_cases_per_batch": -(-n_train // len(train_files)),
            b"label_names": [f"class{i}".encode() for i in range(n_classes)],
            b"num_vis": 3072,
        }
    else:
        keys = {"fine_labels": 1, "coarse_labels": 5}
        meta = {
            b"fine_label_names": [f"fine{i}".encode() for i in range(n_classes)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        }
    sizes = [len(part) for part in np.array_split(np.arange(n_train), len(train_files))]
    for i, (fname, n) in enumerate(zip(train_files, sizes, strict=True)):
        title = f"training batch {i + 1} of {len(train_files)}"
        _dump_py2(_cifar_batch(rng, n, n_classes, keys, title), base / fname)
    _dump_py2(_cifar_batch(rng, n_test, n_classes, keys, "testing batch 1 of 1"), base / test_files[0])
    _dump_py2(meta, base / meta_file)
    return Path(root)


# ----------------------------------------------------------------------------------------------
# KITTI raw (synced + rectified drive and the date's calibration)
# ----------------------------------------------------------------------------------------------


def _rot(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    r_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    r_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return r_z @ r_y @ r_x


def _kitti_numbers(values: np.ndarray | Sequence[float]) -> str:
    # KITTI's calibration files print every number as %e (7 significant digits).
    return " ".join(f"{float(v):e}" for v in np.ravel(values))


def _as_written(values: np.ndarray) -> np.ndarray:
    """The values as a reader of the %e text will see them (so the scene uses the same numbers)."""
    return np.array([float(f"{float(v):e}") for v in values.ravel()]).reshape(values.shape)


def _wall_texture(x: np.ndarray, y: np.ndarray, phase: float) -> np.ndarray:
    """Smooth texture on the wall in metric coordinates, values in [0.05, 0.95].

    Wavelengths of 2-4 m stay above ~4 pixels at the default size and depths, even at half
    resolution, so resampled views still match the closed-form disparity.
    """
    t = (
        np.sin(2 * np.pi * x / 2.9 + phase)
        + 0.7 * np.sin(2 * np.pi * (0.6 * x + y) / 2.3 + 2 * phase)
        + 0.5 * np.cos(2 * np.pi * y / 3.7 - phase)
    )
    return 0.5 + 0.45 * t / 2.2


def write_kitti_raw_fixture(
    root: str | Path,
    date: str = "2011_09_26",
    drive: str = "0113",
    n_frames: int = 3,
    size: tuple[int, int] = (32, 96),
    wall_depths: Sequence[float] | None = None,
    baseline: float = 0.54,
    seed: int = 0,
) -> Path:
    """Write a tiny KITTI raw drive (``<date>_drive_<drive>_sync``) plus its calibration; returns ``root``.

    Layout and formats follow the raw data development kit: ``root/<date>/calib_{cam_to_cam,
    velo_to_cam,imu_to_velo}.txt`` and ``root/<date>/<date>_drive_<drive>_sync/{image_00..03,
    velodyne_points,oxts}/data/`` with 10-digit frame names, plus the ``timestamps*.txt`` files.

    Scene: frame k shows a textured fronto-parallel wall at depth ``wall_depths[k]`` metres in
    front of the rectified left grey camera, rendered exactly into all four rectified cameras
    (so the right image is the left one shifted by ``focal * baseline / depth`` pixels). The
    Velodyne scan samples the wall every other image row, and adds points behind the camera,
    outside the field of view, and behind the wall on the same rays (nearest-wins must hide
    them); all are stored in Velodyne coordinates through non-trivial ``R_rect_00`` and
    velo-to-camera extrinsics. The geometry is also saved, as numbers, in
    ``root/<date>/fixture_geometry.npz`` (not a KITTI file; pykitti ignores it).

    Args:
        size: rectified image (height, width).
        wall_depths: one depth per frame (default 5, 7.5, 10, ... m).
        baseline: grey stereo baseline in metres (KITTI's is about 0.54).
    """
    if not re.fullmatch(r"\d{4}_\d{2}_\d{2}", date) or not re.fullmatch(r"\d{4}", drive):
        raise ValueError(f"date={date!r}, drive={drive!r}: use KITTI's forms, e.g. '2011_09_26' and '0113'")
    h, w = size
    if h < 4 or w < 4 or n_frames < 1:
        raise ValueError(f"size={size}, n_frames={n_frames}: need h, w >= 4 and n_frames >= 1")
    if wall_depths is None:
        wall_depths = [5.0 + 2.5 * k for k in range(n_frames)]
    depths = [float(d) for d in wall_depths]
    if len(depths) != n_frames or min(depths) <= 0:
        raise ValueError(f"wall_depths={wall_depths}: need {n_frames} positive depths")
    from PIL import Image  # Pillow comes with pykitti (and matplotlib); needed only here

    rng = np.random.default_rng(seed)
    calib_dir = Path(root) / date
    drive_dir = calib_dir / f"{date}_drive_{drive}_sync"

    # --- calibration (rounded to what the text files hold, so the scene matches the files) ---
    f = round(0.58 * w, 3)  # KITTI: f / width ~ 721.5 / 1242
    cx, cy = round(0.49 * (w - 1), 3), round(0.46 * (h - 1), 3)
    offsets = [0.0, -baseline, 0.06, 0.06 - baseline]  # x of each camera's P_rect[0, 3] / f
    p_rect = []
    for t in offsets:
        p = np.array([[f, 0, cx, f * t], [0, f, cy, 0], [0, 0, 1, 0]])
        p_rect.append(_as_written(p))
    r_rect = [_as_written(_rot(0.004 * (i + 1), -0.008, 0.003 * i)) for i in range(4)]
    r_velo = _as_written(_rot(0.01, -0.015, 0.02) @ np.array([[0, -1, 0], [0, 0, -1], [1, 0, 0]], float))
    t_velo = _as_written(np.array([-0.004069766, -0.07631618, -0.2717806]))
    r_imu = _as_written(_rot(0.0, 0.0, 0.001))
    t_imu = _as_written(np.array([-0.8086759, 0.3195559, -0.7997231]))

    calib_dir.mkdir(parents=True, exist_ok=True)
    lines = ["calib_time: 09-Jan-2012 13:57:47", "corner_dist: 9.950000e-02"]
    for i in range(4):
        k_raw = np.array([[f * 1.02, 0, cx + 2], [0, f * 1.02, cy + 1], [0, 0, 1]])
        lines += [
            f"S_0{i}: {_kitti_numbers([w + 8, h + 4])}",
            f"K_0{i}: {_kitti_numbers(k_raw)}",
            f"D_0{i}: {_kitti_numbers([-0.37, 0.2, 0.002, 0.001, -0.07])}",
            f"R_0{i}: {_kitti_numbers(np.eye(3) if i == 0 else _rot(0.001 * i, 0.002, 0.0))}",
            f"T_0{i}: {_kitti_numbers([offsets[i], 0.0, 0.0])}",
            f"S_rect_0{i}: {_kitti_numbers([w, h])}",
            f"R_rect_0{i}: {_kitti_numbers(r_rect[i])}",
            f"P_rect_0{i}: {_kitti_numbers(p_rect[i])}",
        ]
    (calib_dir / "calib_cam_to_cam.txt").write_text("\n".join(lines) + "\n")
    (calib_dir / "calib_velo_to_cam.txt").write_text(
        "calib_time: 15-Mar-2012 11:37:16\n"
        f"R: {_kitti_numbers(r_velo)}\nT: {_kitti_numbers(t_velo)}\n"
        f"delta_f: {_kitti_numbers([0, 0])}\ndelta_c: {_kitti_numbers([0, 0])}\n"
    )
    (calib_dir / "calib_imu_to_velo.txt").write_text(
        f"calib_time: 25-May-2012 16:47:16\nR: {_kitti_numbers(r_imu)}\nT: {_kitti_numbers(t_imu)}\n"
    )

    # rectified cam0 <- velodyne, the chain the loader inverts: R_rect_00 @ [R|T]
    velo_to_rect = np.eye(4)
    velo_to_rect[:3, :3] = r_rect[0] @ r_velo
    velo_to_rect[:3, 3] = r_rect[0] @ t_velo
    rect_to_velo = np.linalg.inv(velo_to_rect)

    # --- frames ---
    folders = {n: drive_dir / n / "data" for n in ("image_00", "image_01", "image_02", "image_03")}
    folders["velodyne_points"] = drive_dir / "velodyne_points" / "data"
    folders["oxts"] = drive_dir / "oxts" / "data"
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    v_grid, u_grid = np.mgrid[0:h, 0:w].astype(np.float64)
    start = dt.datetime.strptime(date, "%Y_%m_%d") + dt.timedelta(hours=13, minutes=2, seconds=25)
    for k, z in enumerate(depths):
        frame = f"{k:010d}"
        for cam, folder_name in enumerate(("image_00", "image_01", "image_02", "image_03")):
            # pixel (u, v) of camera `cam` sees the wall point x = (u - cx) z / f - offset
            x = (u_grid - cx) * z / f - offsets[cam]
            y = (v_grid - cy) * z / f
            if cam < 2:
                img = _wall_texture(x, y, 0.3 * k)
            else:
                img = np.stack([_wall_texture(x, y, 0.3 * k + c) for c in (0.0, 1.0, 2.0)], axis=-1)
            Image.fromarray(np.round(255 * img).astype(np.uint8)).save(folders[folder_name] / f"{frame}.png")

        # Velodyne: wall points on every other row (KITTI's scan is much sparser than the image)
        rows = np.arange(0, h, 2, dtype=np.float64)
        u = rng.uniform(-0.49, w - 0.51, size=(rows.size, w // 2))
        v = rows[:, None] + rng.uniform(-0.3, 0.3, size=u.shape)
        wall = np.stack([(u - cx) * z / f, (v - cy) * z / f, np.full_like(u, z)], -1).reshape(-1, 3)
        behind_wall = wall[: len(wall) // 4] * 1.7  # same rays, farther: must be hidden by the wall
        behind_camera = wall[:10] * np.array([1.0, 1.0, -1.0])
        outside = wall[:10] + np.array([3.0 * z, 0.0, 0.0])  # far right of the field of view
        pts = np.concatenate([wall, behind_wall, behind_camera, outside])
        pts_velo = (rect_to_velo @ np.c_[pts, np.ones(len(pts))].T).T[:, :3]
        scan = np.c_[pts_velo, rng.uniform(0, 1, len(pts))].astype(np.float32)
        scan.tofile(folders["velodyne_points"] / f"{frame}.bin")

        # OXTS: driving north at 5 m/s; 25 floats then 5 integer flags, as in dataformat.txt
        packet = [49.011212804408 + 4.5e-6 * k, 8.4228850417969, 112.83, 0.02, 0.001, 1.57]
        packet += [5.0, 0.0, 5.0, 0.0, 0.0] + [0.0] * 6 + [0.0] * 6 + [0.5, 0.07]
        (folders["oxts"] / f"{frame}.txt").write_text(" ".join(f"{v:.10g}" for v in packet) + " 4 10 4 4 0\n")

    def stamps(delay_s: float) -> str:
        out = []
        for k in range(n_frames):
            t = start + dt.timedelta(seconds=0.1 * k + delay_s)
            out.append(t.strftime("%Y-%m-%d %H:%M:%S.%f") + "123\n")  # KITTI prints nanoseconds
        return "".join(out)

    for name, delay in (("oxts", 0.0), ("image_00", 0.002), ("image_01", 0.002)):
        (drive_dir / name / "timestamps.txt").write_text(stamps(delay))
    for name in ("image_02", "image_03", "velodyne_points"):
        (drive_dir / name / "timestamps.txt").write_text(stamps(0.003))
    (drive_dir / "velodyne_points" / "timestamps_start.txt").write_text(stamps(-0.05))
    (drive_dir / "velodyne_points" / "timestamps_end.txt").write_text(stamps(0.05))

    np.savez(
        calib_dir / "fixture_geometry.npz",
        P_rect=np.stack(p_rect),
        wall_depths=np.array(depths),
        baseline=-p_rect[1][0, 3] / p_rect[1][0, 0],
        size=np.array(size),
    )
    return Path(root)


def read_kitti_fixture_geometry(base_dir: str | Path, date: str = "2011_09_26") -> dict[str, np.ndarray]:
    """The numbers :func:`write_kitti_raw_fixture` used (P_rect (4, 3, 4), wall_depths, baseline, size)."""
    with np.load(Path(base_dir) / date / "fixture_geometry.npz") as npz:
        return {k: npz[k] for k in npz.files}
