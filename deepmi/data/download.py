"""Downloads of the real datasets (MNIST, CIFAR-10/100, a KITTI raw drive) with pooch.

Each file is fetched with `pooch <https://www.fatiando.org/pooch>`_: streamed to a temporary file,
checked against its published checksum, retried on a broken transfer or a checksum mismatch, and
moved into place only when it is whole; a progress bar goes to stderr. Archives are kept in
``<root>/downloads/`` (the cache: a later call finds them there, checks their hash, and re-extracts
without the network) and unpacked into the layout the loaders read.

pooch is imported only when something is downloaded, so ``import deepmi`` never needs it
(``pip install "deepmi[download]"``, or the ``repro`` extra).

Where from: the dataset's standard mirrors, unless a base URL is given explicitly or in the
environment (``DEEPMI_MNIST_URL``, ``DEEPMI_CIFAR_URL``, ``DEEPMI_KITTI_URL``; the tests point
these at a local server). Where to: the root the caller passes, or ``$DEEPMI_DATA`` when it passes
none (:func:`default_data_root`); never the current directory.

The loaders call these helpers when built with ``download=True``; from the shell::

    python -m deepmi.data.download mnist cifar10 --root data
    python -m deepmi.data.download kitti --root data --date 2011_09_26 --drive 0113   # data/kitti_raw
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from deepmi.data.errors import CorruptDatasetError, DownloadError

DOWNLOADS = "downloads"  # archives are cached in <root>/downloads/

ENV_BASE_URL = {"mnist": "DEEPMI_MNIST_URL", "cifar": "DEEPMI_CIFAR_URL", "kitti": "DEEPMI_KITTI_URL"}
DEFAULT_BASE_URLS = {
    # torchvision's mirror first; the original site now often refuses scripted downloads.
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "cifar": ("https://www.cs.toronto.edu/~kriz/",),
    "kitti": ("https://s3.eu-central-1.amazonaws.com/avg-kitti/raw_data/",),
}

RETRIES = 2  # extra attempts per mirror after a broken transfer or a checksum mismatch
TIMEOUT_S = 60.0  # requests' connect and read timeout (per chunk, not for the whole file)
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch.

    Attributes:
        url_path: path relative to a base URL (``2011_09_26_drive_0113/2011_09_26_drive_0113_sync.zip``).
        known_hash: ``"md5:<hex>"`` / ``"sha256:<hex>"`` as published, or ``None`` when the provider
            publishes none (KITTI): the archive's own CRCs are then the check, at extraction.
    """

    url_path: str
    known_hash: str | None

    @property
    def name(self) -> str:
        """The local file name (the last part of the URL path)."""
        return self.url_path.rsplit("/", 1)[-1]


def default_data_root() -> Path:
    """The data root for callers that pass none: ``$DEEPMI_DATA``.

    The reproduction passes its own root (``paths.data_dir``). There is deliberately no fallback
    (such as the current directory): data goes where it was asked to go, or nowhere.

    Raises:
        ValueError: ``DEEPMI_DATA`` is not set.
    """
    if not os.environ.get("DEEPMI_DATA"):
        raise ValueError("no data root given: pass root=<folder> (or --root) or set DEEPMI_DATA=<folder>")
    return Path(os.environ["DEEPMI_DATA"]).expanduser()


def base_urls(source: str, base_url: str | None = None) -> tuple[str, ...]:
    """The base URLs to try, in order: ``base_url`` if given, else ``$DEEPMI_<SOURCE>_URL``, else the mirrors.

    Args:
        source: ``"mnist"``, ``"cifar"`` or ``"kitti"``.
        base_url: an explicit base URL (a config field), e.g. a local or institutional mirror.
    """
    if source not in DEFAULT_BASE_URLS:
        raise ValueError(f"unknown download source {source!r}; use one of {sorted(DEFAULT_BASE_URLS)}")
    chosen = base_url or os.environ.get(ENV_BASE_URL[source])
    urls = (chosen,) if chosen else DEFAULT_BASE_URLS[source]
    return tuple(u if u.endswith("/") else u + "/" for u in urls)


def _import_pooch() -> ModuleType:
    try:
        import pooch
    except ImportError as err:
        raise ImportError(
            "downloading needs pooch: pip install pooch (or pip install 'deepmi[download]'); "
            "or fetch the files by hand as the loader's error message describes, and pass download=False"
        ) from err
    return pooch


class _Unreachable(Exception):
    """A mirror that cannot serve the file at all (refused, unknown host, 4xx): try the next one."""


def _downloader(progressbar: bool, timeout: float) -> Callable[[str, str, object], None]:
    """pooch's HTTP downloader, failing fast (no retry) when the server cannot be reached or says no."""
    pooch = _import_pooch()
    import requests  # a pooch dependency

    http = pooch.HTTPDownloader(progressbar=progressbar, chunk_size=_CHUNK, timeout=timeout)

    def download(url: str, output_file: str, pooch_instance: object) -> None:
        try:
            http(url, output_file, pooch_instance)
        except requests.exceptions.ConnectionError as err:
            # Nothing received: the host is unreachable (no network, refused, DNS). A transfer cut
            # part-way has bytes on disk and is re-raised for pooch to retry.
            if not os.path.exists(output_file) or os.path.getsize(output_file) == 0:
                raise _Unreachable(f"{type(err).__name__}: {err}") from err
            raise
        except requests.exceptions.HTTPError as err:
            status = err.response.status_code if err.response is not None else 0
            if status < 500:  # 404, 403: retrying will not help; 5xx may be transient
                raise _Unreachable(f"HTTP {status}: {err}") from err
            raise

    return download


def fetch(
    remote: RemoteFile,
    dest: str | Path,
    source: str,
    *,
    dataset: str,
    how_to_get: str,
    base_url: str | None = None,
    retries: int = RETRIES,
    progressbar: bool = True,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Fetch one file into ``dest`` (skipped when a copy with the right hash is already there).

    Mirrors are tried in order; on each, pooch retries ``retries`` more times after a broken
    transfer or a checksum mismatch.

    Returns:
        The local path, ``dest / remote.name``.

    Raises:
        DownloadError: no mirror could be reached (no network, server down, file not there); a
            :class:`~deepmi.data.errors.DatasetNotFoundError` whose message says what to fetch by hand.
        CorruptDatasetError: what arrived never matched the published checksum; nothing is left on disk.
    """
    pooch = _import_pooch()
    import requests  # a pooch dependency

    dest = Path(dest)
    target = dest / remote.name
    download = _downloader(progressbar, timeout)
    failures: list[str] = []
    mismatch = False
    for base in base_urls(source, base_url):
        url = base + remote.url_path
        store = pooch.create(
            path=dest,
            base_url=base,
            registry={remote.name: remote.known_hash},
            urls={remote.name: url},
            retry_if_failed=retries,
        )
        try:
            return Path(store.fetch(remote.name, downloader=download, progressbar=progressbar))
        except _Unreachable as err:
            failures.append(f"{url}: {err}")
        except ValueError as err:  # pooch: the hash of what arrived does not match the known one
            mismatch = True
            failures.append(f"{url}: {err}")
        except requests.exceptions.RequestException as err:  # still failing after the retries
            failures.append(f"{url}: {type(err).__name__}: {err}")
    if mismatch:
        # pooch deleted what it downloaded; a stale copy under the final name goes too.
        target.unlink(missing_ok=True)
        raise CorruptDatasetError(
            target,
            f"what was downloaded never matched the published checksum {remote.known_hash}, "
            f"so nothing was kept ({' | '.join(failures)})",
            fix=f"try again later, or set {ENV_BASE_URL[source]} to another mirror, "
            f"or fetch it by hand:\n{how_to_get.strip()}",
        )
    raise DownloadError(dataset, target, how_to_get, failures)


def _safe_members(archive: tarfile.TarFile, dest: Path) -> list[tarfile.TarInfo]:
    """The members of a tar archive, refusing absolute paths, ``..``, links and devices."""
    root = dest.resolve()
    members = []
    for member in archive.getmembers():
        target = (dest / member.name).resolve()
        if not (member.isfile() or member.isdir()) or root not in (target, *target.parents):
            raise CorruptDatasetError(
                Path(archive.name or "archive"), f"unsafe member {member.name!r}", fix="do not use it"
            )
        members.append(member)
    return members


def extract(archive: str | Path, dest: str | Path) -> list[Path]:
    """Unpack a ``.tar.gz`` / ``.tgz`` or ``.zip`` into ``dest``, merging with what is there.

    Everything is unpacked into a temporary folder inside ``dest`` first and then moved into place
    file by file, so an interrupted extraction leaves no half-written file under the final names.

    Returns:
        The extracted files' final paths.

    Raises:
        CorruptDatasetError: the archive is truncated, fails a CRC, or holds unsafe paths.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        try:
            if archive.name.endswith((".tar.gz", ".tgz", ".tar")):
                # filter="data" (Python >= 3.10.12) refuses links and odd files; older versions
                # rely on _safe_members alone.
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                with tarfile.open(archive) as tar:
                    tar.extractall(stage, members=_safe_members(tar, stage), **extra)
            elif archive.name.endswith(".zip"):
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(stage)  # zipfile drops absolute and '..' parts; reading checks CRCs
            else:
                raise CorruptDatasetError(archive, "unknown archive type", fix="use a .tar.gz or .zip")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile) as err:
            problem = f"cannot be unpacked ({type(err).__name__}: {err})"
            raise CorruptDatasetError(archive, problem, fix="delete it and download again") from err
        moved = []
        for path in sorted(stage.rglob("*")):
            if path.is_file():
                final = dest / path.relative_to(stage)
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, final)
                moved.append(final)
        return moved
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def fetch_and_extract(
    remote: RemoteFile,
    dest: str | Path,
    source: str,
    *,
    dataset: str,
    how_to_get: str,
    base_url: str | None = None,
    retries: int = RETRIES,
    progressbar: bool = True,
    timeout: float = TIMEOUT_S,
) -> list[Path]:
    """Fetch an archive into ``dest/downloads/`` (the cache) and unpack it into ``dest``.

    An archive without a published hash that fails to unpack (a cached copy cut short by an earlier
    interruption, say) is deleted and fetched once more before giving up.
    """
    dest = Path(dest)
    kwargs = dict(dataset=dataset, how_to_get=how_to_get, base_url=base_url, retries=retries)
    kwargs.update(progressbar=progressbar, timeout=timeout)
    path = fetch(remote, dest / DOWNLOADS, source, **kwargs)
    try:
        return extract(path, dest)
    except CorruptDatasetError:
        path.unlink(missing_ok=True)
        if remote.known_hash is not None:
            raise  # it matched the published hash: fetching it again would not help
    path = fetch(remote, dest / DOWNLOADS, source, **kwargs)
    try:
        return extract(path, dest)
    except CorruptDatasetError:
        path.unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: download datasets into a root folder."""
    parser = argparse.ArgumentParser(
        prog="python -m deepmi.data.download",
        description="Download MNIST, CIFAR-10/100 or a KITTI raw drive (checksums, retries, a cache).",
    )
    parser.add_argument("datasets", nargs="+", choices=["mnist", "cifar10", "cifar100", "kitti"])
    parser.add_argument("--root", type=Path, default=None, help="data root (default: $DEEPMI_DATA)")
    parser.add_argument("--kitti-dir", type=Path, help="KITTI base_dir (default: <root>/kitti_raw)")
    parser.add_argument("--date", default="2011_09_26", help="KITTI raw date")
    parser.add_argument("--drive", default="0113", help="KITTI raw drive number")
    parser.add_argument("--base-url", default=None, help="a mirror to use instead of the standard one(s)")
    args = parser.parse_args(argv)
    if args.root is None and not os.environ.get("DEEPMI_DATA"):
        parser.error("give --root <folder> or set DEEPMI_DATA")
    root = args.root if args.root is not None else default_data_root()
    try:
        _download_all(args, root)
    except (DownloadError, CorruptDatasetError, ImportError) as err:
        raise SystemExit(f"error: {err}") from err


def _download_all(args: argparse.Namespace, root: Path) -> None:
    for name in args.datasets:
        if name == "mnist":
            from deepmi.data.mnist import download_mnist

            download_mnist(root, base_url=args.base_url)
        elif name.startswith("cifar"):
            from deepmi.data.cifar import download_cifar

            download_cifar(root, name, base_url=args.base_url)
        else:
            from deepmi.data.kitti import download_kitti_raw

            base_dir = args.kitti_dir if args.kitti_dir is not None else root / "kitti_raw"
            download_kitti_raw(base_dir, args.date, args.drive, base_url=args.base_url)
        print(f"{name}: ready under {root if name != 'kitti' else base_dir}")


if __name__ == "__main__":
    main()
