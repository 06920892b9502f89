"""KITTI raw stereo loader on a tiny drive written in KITTI's on-disk format (known wall depths)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pykitti = pytest.importorskip("pykitti", reason="pykitti (pip install deepmi[kitti]) is needed to read KITTI")

from deepmi.data.errors import CorruptDatasetError, DatasetNotFoundError  # noqa: E402
from deepmi.data.fixtures import read_kitti_fixture_geometry, write_kitti_raw_fixture  # noqa: E402
from deepmi.data.kitti import KittiRawStereo, project_velodyne, scale_projection  # noqa: E402
from tests.conftest import refusing_url  # noqa: E402

DEPTHS = (5.0, 8.0, 12.0)
NATIVE = (32, 96)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kitti")
    return write_kitti_raw_fixture(root, n_frames=3, size=NATIVE, wall_depths=DEPTHS)


def test_pykitti_parses_fixture(base_dir: Path) -> None:
    raw = pykitti.raw(str(base_dir), "2011_09_26", "0113")
    assert len(raw) == 3 and len(raw.oxts) == 3
    assert raw.get_cam0(0).mode == "L" and raw.get_cam0(0).size == (NATIVE[1], NATIVE[0])
    assert np.asarray(raw.get_cam2(1)).shape == (*NATIVE, 3)
    scan = raw.get_velo(2)
    assert scan.dtype == np.float32 and scan.shape[1] == 4
    # pykitti measures the grey baseline from the camera centres; we write 0.54 m.
    assert raw.calib.b_gray == pytest.approx(0.54, abs=1e-6)
    assert raw.calib.b_rgb == pytest.approx(0.54, abs=1e-6)
    assert (raw.timestamps[1] - raw.timestamps[0]).total_seconds() == pytest.approx(0.1)
    assert raw.oxts[0].packet.numsats == 10  # the five trailing integer fields parsed


@pytest.mark.parametrize("size", [None, (16, 48), (64, 192)])
def test_shapes_focal_baseline(base_dir: Path, size: tuple[int, int] | None) -> None:
    ds = KittiRawStereo(base_dir, size=size)
    geo = read_kitti_fixture_geometry(base_dir)
    h, w = size or NATIVE
    item = ds[1]
    assert len(ds) == 3
    assert item["left"].shape == (1, h, w) and item["right"].shape == (1, h, w)
    assert item["depth"].shape == (1, h, w) and item["depth"].dtype == torch.float32
    assert 0.0 <= float(item["left"].min()) and float(item["left"].max()) <= 1.0
    # focal scaled to the working width; baseline from P_rect_01 vs P_rect_00.
    f_native = geo["P_rect"][0][0, 0]
    assert float(item["focal"]) == pytest.approx(f_native * w / NATIVE[1], rel=1e-6)
    assert float(item["baseline"]) == pytest.approx(float(geo["baseline"]), rel=1e-6)
    assert int(item["frame"]) == 1


@pytest.mark.parametrize("size", [None, (16, 48), (64, 192)])
def test_projected_depth_is_the_wall(base_dir: Path, size: tuple[int, int] | None) -> None:
    ds = KittiRawStereo(base_dir, size=size)
    for k, z in enumerate(DEPTHS):
        depth = ds[k]["depth"]
        valid = depth > 0
        # The scan samples every other row; points behind the wall share the wall's rays and
        # must lose to it, points behind the camera or outside the view must be dropped.
        assert float(valid.float().mean()) > 0.05
        torch.testing.assert_close(depth[valid], torch.full_like(depth[valid], z), rtol=0, atol=1e-4)


def test_depth_matches_pykitti_transform_reference(base_dir: Path) -> None:
    """Independent path: pykitti's composed T_cam0_velo and K_cam0, one point at a time."""
    raw = pykitti.raw(str(base_dir), "2011_09_26", "0113")
    ds = KittiRawStereo(base_dir, size=None)
    h, w = NATIVE
    scan = raw.get_velo(0)
    cam = (raw.calib.T_cam0_velo @ np.c_[scan[:, :3], np.ones(len(scan))].T)[:3]
    expected = np.zeros((h, w))
    for x, y, z in cam.T.astype(np.float64):
        if z <= 0:
            continue
        u, v, _ = raw.calib.K_cam0 @ np.array([x / z, y / z, 1.0])
        iu, iv = int(np.floor(u + 0.5)), int(np.floor(v + 0.5))
        if 0 <= iu < w and 0 <= iv < h and (expected[iv, iu] == 0 or z < expected[iv, iu]):
            expected[iv, iu] = z
    np.testing.assert_allclose(ds[0]["depth"][0].numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("size", [None, (16, 48)])
def test_right_image_is_left_shifted_by_disparity(base_dir: Path, size: tuple[int, int] | None) -> None:
    """depth = focal * baseline / disparity: the right view is the left one shifted by d pixels."""
    ds = KittiRawStereo(base_dir, size=size)
    for k, z in enumerate(DEPTHS):
        item = ds[k]
        d = float(item["focal"]) * float(item["baseline"]) / z
        left, right = item["left"][0].numpy(), item["right"][0].numpy()
        cols = np.arange(left.shape[1])
        keep = (cols + d >= 1) & (cols + d <= left.shape[1] - 2)  # avoid resampling edges
        warped = np.stack([np.interp(cols + d, cols, row) for row in left])
        err = np.abs(warped - right)[:, keep][2:-2]
        wrong = np.stack([np.interp(cols + d + 1.5, cols, row) for row in left])
        assert err.mean() < 0.02, (k, err.mean())
        assert np.abs(wrong - right)[:, keep][2:-2].mean() > 3 * err.mean()


def test_color_cameras(base_dir: Path) -> None:
    ds = KittiRawStereo(base_dir, size=(16, 48), color=True)
    item = ds[0]
    assert item["left"].shape == (3, 16, 48) and item["right"].shape == (3, 16, 48)
    assert float(item["baseline"]) == pytest.approx(0.54, rel=1e-6)
    depth = item["depth"][item["depth"] > 0]
    # Camera 02 sits 6 cm beside camera 00, so some points hidden behind the wall for camera 00
    # (at 1.7 x the wall depth) are seen by it: exactly the parallax artefact of real KITTI.
    assert float(depth.min()) == pytest.approx(DEPTHS[0], abs=1e-4)
    is_wall = torch.isclose(depth, torch.tensor(DEPTHS[0]), atol=1e-4)
    is_behind = torch.isclose(depth, torch.tensor(1.7 * DEPTHS[0]), atol=1e-4)
    assert bool((is_wall | is_behind).all()) and float(is_wall.float().mean()) > 0.5


def test_frames_subset_and_cache(base_dir: Path) -> None:
    ds = KittiRawStereo(base_dir, frames=[2, 0], size=(16, 48))
    assert len(ds) == 2 and int(ds[0]["frame"]) == 2 and int(ds[-1]["frame"]) == 0
    depth = ds[0]["depth"]
    assert float(depth[depth > 0].mean()) == pytest.approx(DEPTHS[2], abs=1e-4)
    assert ds[0]["left"] is ds[0]["left"]  # cached
    with pytest.raises(IndexError):
        ds[2]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert pickle.loads(pickle.dumps(ds)).frames == [2, 0]  # what spawn-started workers need
    assert batch["left"].shape == (2, 1, 16, 48) and batch["focal"].shape == (2,)
    with pytest.raises(ValueError, match="outside the drive"):
        KittiRawStereo(base_dir, frames=[0, 3])


def test_project_velodyne_by_hand() -> None:
    p = np.array([[10.0, 0, 2.0, 0], [0, 10.0, 1.0, 0], [0, 0, 1, 0]])
    pts = np.array(
        [
            [0.0, 0.0, 5.0],  # -> pixel (u=2, v=1)
            [0.0, 0.0, 3.0],  # same pixel, nearer: wins
            [0.0, 0.0, 9.0],  # same pixel, farther
            [0.0, 0.0, -4.0],  # behind the camera
            [0.1, 0.1, 1.0],  # -> (3, 2)
            [0.25, 0.0, 1.0],  # u = 4.5 -> rounds up to 5 = width: outside
            [-0.249, -0.149, 1.0],  # u = -0.49, v = -0.49 -> pixel (0, 0)
        ]
    )
    depth = project_velodyne(pts, np.eye(4), p, (3, 5))
    expected = np.zeros((3, 5), dtype=np.float32)
    expected[1, 2], expected[2, 3], expected[0, 0] = 3.0, 1.0, 1.0
    np.testing.assert_array_equal(depth, expected)


def test_scale_projection_keeps_pixel_centres_aligned() -> None:
    p = np.array([[700.0, 0, 600.0, -380.0], [0, 700.0, 180.0, 0], [0, 0, 1, 0]])
    x = np.array([1.3, -0.7, 9.0, 1.0])
    u, v, z = p @ x
    sx, sy = 640 / 1242, 192 / 375
    u2, v2, z2 = scale_projection(p, sx, sy) @ x
    assert z2 == pytest.approx(z)
    assert u2 / z2 == pytest.approx(sx * (u / z + 0.5) - 0.5)
    assert v2 / z2 == pytest.approx(sy * (v / z + 0.5) - 0.5)


def test_missing_dataset_explains_what_to_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        KittiRawStereo(tmp_path / "nowhere")
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "raw_data.php" in msg and "2011_09_26_drive_0113_sync" in msg and "2011_09_26_calib" in msg
    assert "calib_cam_to_cam.txt" in msg and "velodyne_points" in msg and "image_00" in msg
    assert "download=True" in msg

    base = write_kitti_raw_fixture(tmp_path / "partial", n_frames=1, size=(8, 16))
    (base / "2011_09_26" / "calib_velo_to_cam.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match="calib_velo_to_cam.txt"):
        KittiRawStereo(base)
    with pytest.raises(DatasetNotFoundError, match="drive_0005_sync"):
        KittiRawStereo(base, drive="0005")


def test_missing_pykitti_says_how_to_install(base_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pykitti", None)
    with pytest.raises(ImportError, match=r"deepmi\[kitti\]"):
        KittiRawStereo(base_dir)


def test_bad_arguments(base_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="size"):
        KittiRawStereo(base_dir, size=(0, 10))
    with pytest.raises(ValueError, match="date"):
        write_kitti_raw_fixture(tmp_path, date="2011-09-26")
    with pytest.raises(ValueError, match="wall_depths"):
        write_kitti_raw_fixture(tmp_path, n_frames=2, wall_depths=[3.0])


def test_truncated_velodyne_scan(tmp_path: Path) -> None:
    base = write_kitti_raw_fixture(tmp_path, n_frames=2, size=(8, 16))
    scan = base / "2011_09_26" / "2011_09_26_drive_0113_sync" / "velodyne_points" / "data" / "0000000001.bin"
    scan.write_bytes(scan.read_bytes()[:-4])
    ds = KittiRawStereo(base, size=None)
    assert ds[0]["depth"].shape == (1, 8, 16)
    with pytest.raises(CorruptDatasetError, match="0000000001.bin"):
        ds[1]


def test_a_drive_in_place_is_read_without_the_network(base_dir: Path) -> None:
    # download=True with the drive present never contacts base_url (it refuses connections).
    ds = KittiRawStereo(base_dir, size=None, download=True, base_url=refusing_url())
    assert len(ds) == 3 and not (base_dir / "downloads").exists()
