"""MNIST from its idx files, for MIGE's permutation-invariant Information Bottleneck (MIGE Table 2).

Reads torchvision's layout, ``root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``,
without torchvision. The whole split is decoded once into a uint8 tensor (the 60k training set in
well under a second); items are scaled to [0, 1] on access.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from deepmi.data.errors import CorruptDatasetError, DatasetNotFoundError

IMAGES_MAGIC = 0x00000803  # idx: unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # idx: unsigned byte, 1 dimension
IMAGE_SIZE = 28
N_CLASSES = 10

# The files and their published MD5s (those of the original site, mirrored byte for byte).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

_HOW_TO_GET = """\
Download the four files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (from https://ossci-datasets.s3.amazonaws.com/mnist/
or another mirror of https://yann.lecun.com/exdb/mnist/) and put them, gzipped or not, in
{raw}/ (torchvision's layout)."""
_OR_DOWNLOAD = """
Or pass download=True (the dataset configs' download: true): pooch fetches them and checks their MD5s."""


def _stems(train: bool) -> tuple[str, str]:
    prefix = "train" if train else "t10k"
    return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


def mnist_files(root: str | Path, train: bool) -> tuple[Path, Path]:
    """Paths of the (images, labels) idx files of one split; uncompressed files win over ``.gz``."""
    raw = Path(root) / "MNIST" / "raw"
    found = []
    for stem in _stems(train):
        for name in (stem, stem + ".gz"):
            if (raw / name).is_file():
                found.append(raw / name)
                break
        else:
            how = _HOW_TO_GET.format(raw=raw) + _OR_DOWNLOAD
            raise DatasetNotFoundError("MNIST", raw / (stem + "[.gz]"), how)
    return found[0], found[1]


def download_mnist(
    root: str | Path | None = None,
    train: bool | None = None,
    base_url: str | None = None,
    progressbar: bool = True,
    **fetch_options,
) -> Path:
    """Fetch the missing ``.gz`` files of one split (or both) into ``root/MNIST/raw``; returns ``root``.

    Files already there (gzipped or not) are left alone. Each download is checked against its
    published MD5 (see :mod:`deepmi.data.download` for mirrors, retries and ``$DEEPMI_MNIST_URL``).

    Args:
        root: the data root; ``None`` uses :func:`deepmi.data.download.default_data_root`.
        train: ``True`` / ``False`` for one split, ``None`` for both.
        base_url: a mirror to use instead of the standard ones.
        fetch_options: ``retries``, ``timeout`` for :func:`deepmi.data.download.fetch`.

    Raises:
        DownloadError: no mirror could be reached; the message says what to fetch by hand.
        CorruptDatasetError: a file never matched its published MD5.
    """
    from deepmi.data import download  # lazy: keeps `python -m deepmi.data.download` warning-free

    root = Path(root) if root is not None else download.default_data_root()
    raw = root / "MNIST" / "raw"
    splits = (True, False) if train is None else (train,)
    for stem in [s for split in splits for s in _stems(split)]:
        if (raw / stem).is_file() or (raw / (stem + ".gz")).is_file():
            continue
        name = stem + ".gz"
        remote = download.RemoteFile(name, f"md5:{MNIST_MD5[name]}")
        how = _HOW_TO_GET.format(raw=raw)
        download.fetch(
            remote, raw, "mnist", dataset="MNIST", how_to_get=how, base_url=base_url, progressbar=progressbar,
            **fetch_options,
        )  # fmt: skip
    return root


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic (whatever its name)."""
    blob = path.read_bytes()
    if blob[:2] != b"\x1f\x8b":
        return blob
    try:
        return gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as err:
        raise CorruptDatasetError(path, f"not a valid gzip file ({err})") from err


def read_idx(path: str | Path, magic: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """Decode one idx file (big-endian int32 header, then uint8 payload) into (N, *item_shape) uint8.

    Raises:
        CorruptDatasetError: wrong magic number, unexpected item shape, or a payload whose length
            disagrees with the header (a truncated download).
    """
    path = Path(path)
    blob = _read_bytes(path)
    found_magic = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else None
    if found_magic != magic:
        found = "no magic number" if found_magic is None else f"magic number {found_magic:#010x}"
        raise CorruptDatasetError(path, f"{found}, expected {magic:#010x} (wrong file or corrupt)")
    n_dims = magic & 0xFF
    header_len = 4 * (1 + n_dims)
    if len(blob) < header_len:
        raise CorruptDatasetError(path, f"{len(blob)} bytes is shorter than the idx header ({header_len})")
    dims = tuple(int(d) for d in np.frombuffer(blob, dtype=">i4", count=n_dims, offset=4))
    if dims[1:] != item_shape:
        raise CorruptDatasetError(path, f"items of shape {dims[1:]}, expected {item_shape}")
    expected = header_len + int(np.prod(dims))
    if len(blob) != expected:
        raise CorruptDatasetError(
            path, f"{len(blob)} bytes but the header {dims} implies {expected} (truncated download?)"
        )
    return np.frombuffer(blob, dtype=np.uint8, offset=header_len).reshape(dims)


class MNIST(Dataset):
    """MNIST digits as ``(image, label)``: float32 in [0, 1], int64 label in 0..9.

    Args:
        root: folder holding ``MNIST/raw/``; ``None`` uses ``$DEEPMI_DATA``
            (:func:`deepmi.data.download.default_data_root`; an error when it is not set).
        train: the 60k training split, else the 10k test split.
        flatten: images as (784,) vectors (the permutation-invariant setting of MIGE Sec. 5.3)
            instead of (1, 28, 28).
        download: fetch the split's missing files first (pooch; MD5-checked), see
            :func:`download_mnist`. Present files are used as they are, without the network.
        base_url: a mirror for the download instead of the standard ones (or ``$DEEPMI_MNIST_URL``).

    Attributes:
        data: uint8 tensor (N, 28, 28); ``targets``: int64 tensor (N,).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        train: bool = True,
        flatten: bool = True,
        download: bool = False,
        base_url: str | None = None,
    ) -> None:
        if root is None:
            from deepmi.data.download import default_data_root

            root = default_data_root()
        self.root = Path(root)
        self.train = train
        self.flatten = flatten
        if download:
            try:
                mnist_files(self.root, train)
            except DatasetNotFoundError:
                download_mnist(self.root, train=train, base_url=base_url)
        images_path, labels_path = mnist_files(self.root, train)
        images = read_idx(images_path, IMAGES_MAGIC, (IMAGE_SIZE, IMAGE_SIZE))
        labels = read_idx(labels_path, LABELS_MAGIC, ())
        if len(images) != len(labels):
            raise CorruptDatasetError(
                labels_path, f"{len(labels)} labels for {len(images)} images in {images_path.name}"
            )
        if labels.size and labels.max() >= N_CLASSES:
            raise CorruptDatasetError(labels_path, f"label {int(labels.max())} outside 0..{N_CLASSES - 1}")
        # np.frombuffer views are read-only; copy once so torch owns writable memory.
        self.data = torch.from_numpy(images.copy())
        self.targets = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.data[index].float().div_(255.0)
        image = image.reshape(-1) if self.flatten else image.unsqueeze(0)
        return image, self.targets[index]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split at once, ``(images, labels)`` shaped like the items (fast batching)."""
        images = self.data.float().div_(255.0)
        images = images.reshape(len(self), -1) if self.flatten else images.unsqueeze(1)
        return images, self.targets
