"""MNIST idx loader: fixture round trip, corrupt/missing files, and the real data when present."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deepmi.data.errors import CorruptDatasetError, DatasetNotFoundError
from deepmi.data.fixtures import write_mnist_fixture
from deepmi.data.mnist import MNIST
from tests.conftest import REAL_DATA, refusing_url


def _decode_idx_independently(path: Path) -> np.ndarray:
    """Reference reader: struct-based header parse, independent of deepmi.data.mnist."""
    blob = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    zero, dtype_code, n_dims = struct.unpack(">HBB", blob[:4])
    assert (zero, dtype_code) == (0, 0x08)
    dims = struct.unpack(">" + "I" * n_dims, blob[4 : 4 + 4 * n_dims])
    return np.frombuffer(blob[4 + 4 * n_dims :], dtype=np.uint8).reshape(dims)


@pytest.mark.parametrize("gz", [True, False])
def test_fixture_round_trip(tmp_path: Path, gz: bool) -> None:
    root = write_mnist_fixture(tmp_path, n_train=30, n_test=12, gz=gz)
    raw = root / "MNIST" / "raw"
    suffix = ".gz" if gz else ""
    images = _decode_idx_independently(raw / f"train-images-idx3-ubyte{suffix}")
    labels = _decode_idx_independently(raw / f"train-labels-idx1-ubyte{suffix}")
    assert images.shape == (30, 28, 28) and labels.shape == (30,)

    ds = MNIST(root, train=True, flatten=True)
    assert len(ds) == 30
    x, y = ds[7]
    assert x.shape == (784,) and x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_allclose(x.numpy(), images[7].reshape(-1) / 255.0, rtol=0, atol=1e-7)
    assert int(y) == labels[7]
    assert sorted(set(ds.targets.tolist())) == list(range(10))

    test = MNIST(root, train=False, flatten=False)
    assert len(test) == 12 and test[0][0].shape == (1, 28, 28)
    assert 0.0 <= float(test.data.min()) and float(test[0][0].max()) <= 1.0


def test_tensors_match_items(tmp_path: Path) -> None:
    ds = MNIST(write_mnist_fixture(tmp_path, n_train=10, n_test=5), flatten=False)
    xs, ys = ds.tensors()
    assert xs.shape == (10, 1, 28, 28)
    for i in (0, 9):
        torch.testing.assert_close(xs[i], ds[i][0])
        assert ys[i] == ds[i][1]


def test_uncompressed_file_preferred_over_gz(tmp_path: Path) -> None:
    root = write_mnist_fixture(tmp_path, n_train=10, n_test=5, gz=True, seed=1)
    raw = root / "MNIST" / "raw"
    # An extracted copy (torchvision keeps both) with different content must be the one read.
    other = write_mnist_fixture(tmp_path / "other", n_train=10, n_test=5, gz=False, seed=2)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (raw / name).write_bytes((other / "MNIST" / "raw" / name).read_bytes())
    expected = _decode_idx_independently(raw / "train-images-idx3-ubyte")
    assert np.array_equal(MNIST(root).data.numpy(), expected)


def test_missing_files_raise_dataset_not_found(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte") as info:
        MNIST(tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    assert "MNIST/raw" in str(info.value) and "t10k-labels-idx1-ubyte.gz" in str(info.value)

    root = write_mnist_fixture(tmp_path / "partial", n_train=4, n_test=4)
    (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    MNIST(root, train=True)  # the train split is complete
    with pytest.raises(DatasetNotFoundError, match="t10k-labels"):
        MNIST(root, train=False)


def _rewrite(path: Path, blob: bytes) -> None:
    path.write_bytes(gzip.compress(blob, mtime=0))


@pytest.mark.parametrize(
    "damage, message",
    [
        ("wrong_magic", "magic number"),
        ("truncated", "truncated"),
        ("bad_gzip", "gzip"),
        ("label_count", "labels for"),
        ("label_value", "outside 0..9"),
    ],
)
def test_corrupt_files_raise_clear_errors(tmp_path: Path, damage: str, message: str) -> None:
    root = write_mnist_fixture(tmp_path, n_train=6, n_test=3)
    raw = root / "MNIST" / "raw"
    images = raw / "train-images-idx3-ubyte.gz"
    labels = raw / "train-labels-idx1-ubyte.gz"
    if damage == "wrong_magic":  # a labels file where the images should be
        images.write_bytes(labels.read_bytes())
    elif damage == "truncated":
        _rewrite(images, gzip.decompress(images.read_bytes())[:-100])
    elif damage == "bad_gzip":
        images.write_bytes(images.read_bytes()[:40])
    elif damage == "label_count":
        blob = (0x801).to_bytes(4, "big") + (5).to_bytes(4, "big") + bytes(5)
        _rewrite(labels, blob)
    elif damage == "label_value":
        blob = (0x801).to_bytes(4, "big") + (6).to_bytes(4, "big") + bytes([1, 2, 3, 4, 5, 10])
        _rewrite(labels, blob)
    with pytest.raises(CorruptDatasetError, match=message) as info:
        MNIST(root)
    assert isinstance(info.value, ValueError)


def test_root_none_reads_deepmi_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_root = write_mnist_fixture(tmp_path / "env", n_train=3, n_test=3)
    monkeypatch.setenv("DEEPMI_DATA", str(env_root))
    monkeypatch.chdir(write_mnist_fixture(tmp_path / "cwd", n_train=5, n_test=5))  # never the cwd
    assert len(MNIST(None, train=False)) == 3

    monkeypatch.setenv("DEEPMI_DATA", str(tmp_path / "nothing"))
    with pytest.raises(DatasetNotFoundError, match="nothing/MNIST/raw"):
        MNIST(None)


def test_present_files_need_no_download(tmp_path: Path) -> None:
    # download=True with the files in place: read as they are (the refusing URL would fail otherwise).
    root = write_mnist_fixture(tmp_path, n_train=4, n_test=4, gz=False)
    assert len(MNIST(root, train=True, download=True, base_url=refusing_url())) == 4


@pytest.mark.skipif(
    REAL_DATA is None or not (REAL_DATA / "MNIST" / "raw").is_dir(),
    reason="real MNIST not found: set DEEPMI_DATA to a root holding MNIST/raw",
)
def test_real_mnist() -> None:
    assert REAL_DATA is not None
    train = MNIST(REAL_DATA, train=True)
    test = MNIST(REAL_DATA, train=False, flatten=False)
    assert len(train) == 60000 and len(test) == 10000
    for ds, lo, hi in ((train, 5000, 7000), (test, 800, 1200)):
        counts = torch.bincount(ds.targets, minlength=10)
        assert counts.numel() == 10 and int(counts.min()) > lo and int(counts.max()) < hi, counts
    x, _ = train.tensors()
    assert x.shape == (60000, 784) and float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert abs(float(x.mean()) - 0.1307) < 2e-3  # the usual MNIST normalisation mean


def test_fixture_rewritten_concurrently_is_never_read_half_written(tmp_path: Path) -> None:
    """DDP ranks write the smoke fixture at the same time one of them reads it (CI failure)."""
    n = 20000  # big enough that one write takes milliseconds
    write_mnist_fixture(tmp_path, n_train=n, n_test=10, gz=False)
    writer = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from deepmi.data.fixtures import write_mnist_fixture\n"
         f"for _ in range(40): write_mnist_fixture(sys.argv[1], n_train={n}, n_test=10, gz=False)",
         str(tmp_path)],
    )  # fmt: skip
    reads = 0
    try:
        while writer.poll() is None:
            assert len(MNIST(tmp_path, train=True)) == n
            reads += 1
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == 0 and reads > 0
    assert not list((tmp_path / "MNIST" / "raw").glob("*.tmp")), "temporary files left behind"
