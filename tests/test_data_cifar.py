"""CIFAR pickle loader on fixtures written in the real (Python 2 pickle) format."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deepmi.data.cifar import CIFAR
from deepmi.data.errors import CorruptDatasetError, DatasetNotFoundError
from deepmi.data.fixtures import write_cifar_fixture


def test_cifar10_fixture_layout_and_pickle_format(tmp_path: Path) -> None:
    write_cifar_fixture(tmp_path, "cifar10", n_train=23, n_test=7)
    base = tmp_path / "cifar-10-batches-py"
    names = sorted(p.name for p in base.iterdir())
    assert names == ["batches.meta", "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4"] + [
        "data_batch_5",
        "test_batch",
    ]
    blob = (base / "data_batch_1").read_bytes()
    assert blob[:2] == b"\x80\x02"  # protocol 2, like the real files
    # Like a Python 2 pickle: bytes keys under encoding="bytes", str keys under torchvision's "latin1".
    as_bytes = pickle.loads(blob, encoding="bytes")
    as_latin1 = pickle.loads(blob, encoding="latin1")
    assert {b"data", b"labels", b"batch_label", b"filenames"} == set(as_bytes)
    assert {"data", "labels", "batch_label", "filenames"} == set(as_latin1)
    assert as_bytes[b"data"].dtype == np.uint8 and as_bytes[b"data"].shape == (5, 3072)
    assert isinstance(as_bytes[b"labels"], list)
    batches = [pickle.loads((base / f"data_batch_{i}").read_bytes(), encoding="bytes") for i in range(1, 6)]
    sizes = [len(b[b"labels"]) for b in batches]
    assert sum(sizes) == 23


def test_cifar10_items_match_raw_rows(tmp_path: Path) -> None:
    write_cifar_fixture(tmp_path, "cifar10", n_train=20, n_test=6)
    train = CIFAR(tmp_path, "cifar10", train=True)
    assert len(train) == 20 and len(train.classes) == 10 and train.classes[3] == "class3"
    # Item 5 lives in data_batch_2 (4 per batch); rows hold the R, G, B planes one after another.
    entry = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_2").read_bytes(), encoding="latin1")
    row, label = entry["data"][1], entry["labels"][1]
    image, y = train[5]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and y.dtype == torch.int64
    assert int(y) == label
    for c, r, col in ((0, 0, 0), (1, 5, 17), (2, 31, 30)):
        assert float(image[c, r, col]) == pytest.approx(row[c * 1024 + r * 32 + col] / 255.0, abs=1e-7)
    assert 0.0 <= float(train.data.min()) and float(image.max()) <= 1.0

    test = CIFAR(tmp_path, "cifar10", train=False, transform=lambda x: x * 2)
    assert len(test) == 6 and float(test[0][0].max()) > 1.0  # the transform ran


def test_cifar100_fine_labels(tmp_path: Path) -> None:
    write_cifar_fixture(tmp_path, "cifar100", n_train=150, n_test=10)
    base = tmp_path / "cifar-100-python"
    assert sorted(p.name for p in base.iterdir()) == ["meta", "test", "train"]
    entry = pickle.loads((base / "train").read_bytes(), encoding="bytes")
    assert {b"fine_labels", b"coarse_labels", b"data"} <= set(entry)
    train = CIFAR(tmp_path, "cifar100", train=True)
    assert len(train) == 150 and len(train.classes) == 100
    assert train.targets.tolist() == entry[b"fine_labels"]
    assert int(train.targets.max()) == 99  # fine, not coarse (0..19), labels
    assert len(CIFAR(tmp_path, "cifar100", train=False)) == 10


def test_dataloader_batches(tmp_path: Path) -> None:
    write_cifar_fixture(tmp_path, "cifar10", n_train=10, n_test=2)
    x, y = next(iter(torch.utils.data.DataLoader(CIFAR(tmp_path), batch_size=4)))
    assert x.shape == (4, 3, 32, 32) and y.shape == (4,)


def test_missing_data_explains_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        CIFAR(tmp_path, "cifar10")
    msg = str(info.value)
    assert "cifar-10-python.tar.gz" in msg and "cs.toronto.edu/~kriz/cifar.html" in msg
    assert "data_batch_1" in msg and "download=True" in msg
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(DatasetNotFoundError, match="cifar-100-python"):
        CIFAR(tmp_path, "cifar100", train=False)


def test_one_missing_batch(tmp_path: Path) -> None:
    write_cifar_fixture(tmp_path, "cifar10", n_train=10, n_test=2)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetNotFoundError, match="data_batch_4"):
        CIFAR(tmp_path)
    assert len(CIFAR(tmp_path, train=False)) == 2


def test_download_without_pooch_explains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pooch", None)  # makes `import pooch` fail
    with pytest.raises(ImportError, match=r"pip install pooch.*deepmi\[download\].*by hand"):
        CIFAR(tmp_path, "cifar10", download=True)


def test_download_skipped_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar_fixture(tmp_path, "cifar10", n_train=5, n_test=2)
    monkeypatch.setitem(sys.modules, "pooch", None)  # no download machinery needed at all
    assert len(CIFAR(tmp_path, download=True)) == 5


@pytest.mark.parametrize("damage", ["truncated", "not_a_pickle", "wrong_shape", "no_labels", "bad_label"])
def test_corrupt_batches(tmp_path: Path, damage: str) -> None:
    write_cifar_fixture(tmp_path, "cifar10", n_train=10, n_test=4)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    entry = pickle.loads(path.read_bytes(), encoding="bytes")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-50])
    elif damage == "not_a_pickle":
        path.write_bytes(b"<html>404 Not Found</html>")
    else:
        if damage == "wrong_shape":
            entry[b"data"] = entry[b"data"][:, :1000]
        elif damage == "no_labels":
            del entry[b"labels"]
        else:
            entry[b"labels"][0] = 10
        path.write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(CorruptDatasetError, match="test_batch"):
        CIFAR(tmp_path, train=False)


def test_bad_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cifar10"):
        CIFAR(tmp_path, "cifar1000")
    with pytest.raises(ValueError, match="n_train"):
        write_cifar_fixture(tmp_path, "cifar10", n_train=3)
