"""Adapters from the real-data loaders of deepmi.data to the runner's `factory(split=...)` form."""

from __future__ import annotations

import logging
from pathlib import Path

from torch.utils.data import Dataset, Subset

from deepmi.data.cifar import CIFAR
from deepmi.data.download import default_data_root
from deepmi.data.errors import DatasetNotFoundError
from deepmi.data.fixtures import write_cifar_fixture, write_mnist_fixture
from deepmi.data.kitti import KittiRawStereo
from deepmi.data.mnist import MNIST

log = logging.getLogger(__name__)


def _first(dataset: Dataset, n: int | None) -> Dataset:
    """The first n examples (all if n is None): a fixed, seed-free subset for smaller scales."""
    if n is None or n >= len(dataset):
        return dataset
    if n < 1:
        raise ValueError(f"a subset size must be >= 1 or null, got {n}")
    return Subset(dataset, range(n))


def _fixture_root(root: Path) -> Path:
    return root / "fixtures"


def kitti_split(
    split: str,
    base_dir: str,
    date: str,
    drive: str,
    height: int,
    width: int,
    train_frames: list[int] | None = None,
    test_frames: list[int] | None = None,
    download: bool = False,
    base_url: str | None = None,
) -> Dataset:
    """One KITTI raw drive; by default both splits are the whole drive, as in the paper."""
    frames = train_frames if split == "train" else test_frames
    return KittiRawStereo(
        base_dir,
        date=date,
        drive=drive,
        frames=frames,
        size=(height, width),
        download=download,
        base_url=base_url,
    )


def cifar_split(
    split: str,
    root: str,
    name: str = "cifar10",
    n_train: int | None = None,
    n_test: int | None = None,
    fixture_if_missing: bool = False,
    download: bool = False,
    base_url: str | None = None,
) -> Dataset:
    """CIFAR-10/100 from the python-pickle batches under root (fetched first if missing and download).

    ``fixture_if_missing`` (smoke scale only) writes a tiny fake CIFAR in the real format when the
    real one is absent, so the pipeline can be exercised anywhere; metrics from it mean nothing.
    """
    try:
        dataset = CIFAR(root, name=name, train=split == "train", download=download, base_url=base_url)
    except DatasetNotFoundError:  # also a download that failed (DownloadError)
        if not fixture_if_missing:
            raise
        fake_root = _fixture_root(Path(root))
        log.warning("%s not found under %s: using a tiny generated fixture (smoke scale only)", name, root)
        write_cifar_fixture(fake_root, name=name, n_train=64, n_test=32)
        dataset = CIFAR(fake_root, name=name, train=split == "train")
    return _first(dataset, n_train if split == "train" else n_test)


def mnist_split(
    split: str,
    root: str | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    fixture_if_missing: bool = False,
    download: bool = False,
    base_url: str | None = None,
) -> Dataset:
    """Flattened MNIST (permutation-invariant setting) under root (fetched first if missing and download)."""
    try:
        dataset = MNIST(root, train=split == "train", flatten=True, download=download, base_url=base_url)
    except DatasetNotFoundError:
        if not fixture_if_missing:
            raise
        fake_root = _fixture_root(Path(root) if root is not None else default_data_root())
        log.warning("MNIST not found: using a tiny generated fixture (smoke scale only)")
        write_mnist_fixture(fake_root, n_train=64, n_test=32)
        dataset = MNIST(fake_root, train=split == "train", flatten=True)
    return _first(dataset, n_train if split == "train" else n_test)
