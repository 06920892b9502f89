"""CIFAR-10 / CIFAR-100 from the python-pickle batches (MIGE Table 1, Deep InfoMax).

Reads the archives' own layout, without torchvision (``download=True`` fetches them with pooch):

- ``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``: dicts with
  ``data`` (N, 3072) uint8, rows are the R, G, B 32x32 planes) and ``labels``.
- ``root/cifar-100-python/{train, test, meta}``: the same with ``fine_labels`` / ``coarse_labels``.

The batches are Python 2 pickles; they are opened with ``encoding="bytes"`` and their keys
normalised to ``str``, so files written by either Python load alike.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from deepmi.data.errors import CorruptDatasetError, DatasetNotFoundError

IMAGE_SHAPE = (32, 32, 3)

# name -> (folder, archive, train files, test files, meta file, label key, number of classes)
_LAYOUT = {
    "cifar10": (
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "batches.meta",
        "labels",
        10,
    ),
    "cifar100": (
        "cifar-100-python",
        "cifar-100-python.tar.gz",
        ["train"],
        ["test"],
        "meta",
        "fine_labels",
        100,
    ),
}

# Published MD5s of the archives (https://www.cs.toronto.edu/~kriz/cifar.html).
CIFAR_MD5 = {
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
}

_HOW_TO_GET = """\
Download {archive} from https://www.cs.toronto.edu/~kriz/cifar.html and extract it into
{root} (it unpacks to {root}/{folder}/)."""
_OR_DOWNLOAD = """
Or pass download=True (the dataset configs' download: true): pooch fetches it and checks its MD5."""


def _check_name(name: str) -> str:
    if name not in _LAYOUT:
        raise ValueError(f"unknown CIFAR name {name!r}; use one of {sorted(_LAYOUT)}")
    return name


def _str_keys(entry: dict) -> dict:
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def load_pickle_batch(path: str | Path) -> dict:
    """One CIFAR pickle file as a dict with ``str`` keys (values are left as stored)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            entry = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        problem = f"not a readable CIFAR pickle batch ({type(err).__name__}: {err})"
        raise CorruptDatasetError(path, problem) from err
    if not isinstance(entry, dict):
        raise CorruptDatasetError(path, f"holds a {type(entry).__name__}, expected a dict")
    return _str_keys(entry)


def _decode_batch(path: Path, label_key: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    entry = load_pickle_batch(path)
    for key in ("data", label_key):
        if key not in entry:
            raise CorruptDatasetError(path, f"has no {key!r} entry (keys: {sorted(entry)})")
    data = np.asarray(entry["data"])
    labels = np.asarray(entry[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != int(np.prod(IMAGE_SHAPE)):
        raise CorruptDatasetError(path, f"data is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
    if len(labels) != len(data):
        raise CorruptDatasetError(path, f"{len(labels)} labels for {len(data)} images")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise CorruptDatasetError(path, f"labels outside 0..{n_classes - 1}")
    # Rows store the three colour planes one after the other: (N, C, H, W) -> (N, H, W, C).
    images = data.reshape(-1, IMAGE_SHAPE[2], IMAGE_SHAPE[0], IMAGE_SHAPE[1]).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def download_cifar(
    root: str | Path,
    name: str = "cifar10",
    base_url: str | None = None,
    progressbar: bool = True,
    **fetch_options,
) -> Path:
    """Fetch the python-pickle archive (MD5-checked) into ``root/downloads/`` and extract it into ``root``.

    The archive stays in ``root/downloads/`` as a cache: extracting again needs no network. See
    :mod:`deepmi.data.download` for retries and the base URL (``base_url`` or ``$DEEPMI_CIFAR_URL``).

    Args:
        root: the data root; the batches end up in ``root/cifar-10-batches-py`` or ``root/cifar-100-python``.
        name: ``"cifar10"`` or ``"cifar100"``.
        base_url: a mirror to use instead of https://www.cs.toronto.edu/~kriz/.
        fetch_options: ``retries``, ``timeout`` for :func:`deepmi.data.download.fetch`.

    Returns:
        The extracted folder.

    Raises:
        DownloadError: the server could not be reached; the message says what to fetch by hand.
        CorruptDatasetError: the archive never matched its MD5, or holds no batches where expected.
    """
    from deepmi.data import download  # lazy: keeps `python -m deepmi.data.download` warning-free

    _check_name(name)
    folder, archive, train_files, test_files, *_ = _LAYOUT[name]
    root = Path(root)
    how = _HOW_TO_GET.format(archive=archive, root=root, folder=folder)
    remote = download.RemoteFile(archive, f"md5:{CIFAR_MD5[archive]}")
    download.fetch_and_extract(
        remote, root, "cifar", dataset=name.upper(), how_to_get=how, base_url=base_url,
        progressbar=progressbar, **fetch_options,
    )  # fmt: skip
    missing = [f for f in train_files + test_files if not (root / folder / f).is_file()]
    if missing:
        raise CorruptDatasetError(
            root / download.DOWNLOADS / archive,
            f"extracted, but {folder}/{missing[0]} is not in it (a different archive?)",
            fix=f"delete it and check the base URL, or fetch it by hand: {how}",
        )
    return root / folder


class CIFAR(Dataset):
    """CIFAR-10 or CIFAR-100 as ``(image, label)``: float32 (3, 32, 32) in [0, 1], int64 label.

    Args:
        root: folder holding ``cifar-10-batches-py/`` or ``cifar-100-python/``.
        name: ``"cifar10"`` or ``"cifar100"`` (CIFAR-100 uses the 100 fine labels).
        train: the 50k training images, else the 10k test images.
        transform: optional callable applied to the float image tensor.
        download: fetch and extract the archive first if the split's files are missing (pooch,
            MD5-checked; see :func:`download_cifar`). Present files are used without the network.
        base_url: a mirror for the download (or ``$DEEPMI_CIFAR_URL``); default the Toronto site.

    Attributes:
        data: uint8 tensor (N, 32, 32, 3); ``targets``: int64 tensor (N,); ``classes``: label names.
    """

    def __init__(
        self,
        root: str | Path,
        name: str = "cifar10",
        train: bool = True,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        download: bool = False,
        base_url: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.name = _check_name(name)
        self.train = train
        self.transform = transform
        folder, archive, train_files, test_files, meta_file, label_key, n_classes = _LAYOUT[name]
        self.n_classes = n_classes
        base = self.root / folder
        files = train_files if train else test_files
        if download and not all((base / f).is_file() for f in files):
            download_cifar(self.root, name, base_url=base_url)
        for f in files:
            if not (base / f).is_file():
                how = _HOW_TO_GET.format(archive=archive, root=self.root, folder=folder) + _OR_DOWNLOAD
                raise DatasetNotFoundError(name.upper(), base / f, how)
        parts = [_decode_batch(base / f, label_key, n_classes) for f in files]
        self.data = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        self.targets = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        self.classes = self._read_classes(base / meta_file)

    def _read_classes(self, meta_path: Path) -> list[str]:
        """Label names from the meta file; numbered placeholders when it is absent."""
        if not meta_path.is_file():
            return [str(i) for i in range(self.n_classes)]
        meta = load_pickle_batch(meta_path)
        names = meta.get("label_names" if self.name == "cifar10" else "fine_label_names")
        if names is None or len(names) != self.n_classes:
            raise CorruptDatasetError(meta_path, f"expected {self.n_classes} label names")
        return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.data[index].permute(2, 0, 1).float().div_(255.0)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]
