"""Downloads for real, without the internet: a local HTTP server serves archives in the real formats.

Each test starts a stdlib HTTP server on 127.0.0.1 (port 0, in a thread, stopped afterwards) that
serves MNIST ``.gz`` idx files, CIFAR ``.tar.gz`` pickle archives and KITTI raw ``.zip`` files
written by :mod:`deepmi.data.fixtures`, and points the download base URL at it. The server can
cut a response short, serve damaged bytes or answer 404/500, so checksums, retries, mirror
fall-back and the "fetch it by hand" error are exercised end to end. Nothing else is contacted.
"""

from __future__ import annotations

import collections
import functools
import gzip
import hashlib
import io
import pickle
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pooch", reason="downloads need pooch (pip install 'deepmi[download]')")

from deepmi.data import cifar as cifar_module  # noqa: E402
from deepmi.data import download as dl  # noqa: E402
from deepmi.data import mnist as mnist_module  # noqa: E402
from deepmi.data.cifar import CIFAR, download_cifar  # noqa: E402
from deepmi.data.errors import CorruptDatasetError, DatasetNotFoundError, DownloadError  # noqa: E402
from deepmi.data.fixtures import (  # noqa: E402
    read_kitti_fixture_geometry,
    write_cifar_fixture,
    write_kitti_raw_fixture,
    write_mnist_fixture,
)
from deepmi.data.kitti import check_kitti_raw_layout, download_kitti_raw  # noqa: E402
from deepmi.data.mnist import MNIST, download_mnist  # noqa: E402
from tests.conftest import refusing_url  # noqa: E402

FAST = {"retries": 0, "timeout": 5.0, "progressbar": False}


# ---------------------------------------------------------------------------------------------
# the local server
# ---------------------------------------------------------------------------------------------


class _Handler(SimpleHTTPRequestHandler):
    """Serves files from a folder; ``server.faults[path]`` queues misbehaviours for the next GETs."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?", 1)[0]
        self.server.requests.append(path)
        queue = self.server.faults.get(path)
        fault = queue.popleft() if queue else None
        if fault is None:
            super().do_GET()
            return
        if fault in (404, 500):
            self.send_error(fault)
            return
        blob = (Path(self.directory) / path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(blob)))
        self.end_headers()
        if fault == "truncate":  # announce the whole file, send half, hang up
            self.wfile.write(blob[: len(blob) // 2])
            self.close_connection = True
        elif fault == "corrupt":  # the right length, one byte flipped
            self.wfile.write(blob[:-1] + bytes([blob[-1] ^ 0xFF]))
        else:
            raise AssertionError(f"unknown fault {fault!r}")

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


class LocalServer:
    """A file server on 127.0.0.1 with a request log and injectable faults."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = functools.partial(_Handler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.httpd.faults = collections.defaultdict(collections.deque)  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.daemon = True
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests  # type: ignore[attr-defined]

    def fail(self, path: str, *faults: str | int) -> None:
        """Misbehave on the next GETs of ``path`` (``"truncate"``, ``"corrupt"``, 404, 500), in order."""
        self.httpd.faults["/" + path.lstrip("/")].extend(faults)  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Fixture datasets in the real formats and the archives the server offers, built once."""
    src = tmp_path_factory.mktemp("src")
    www = tmp_path_factory.mktemp("www")
    # MNIST: the four .gz idx files, as on the mirrors
    write_mnist_fixture(src / "mnist", n_train=40, n_test=20, seed=3)
    (www / "mnist").mkdir()
    for f in (src / "mnist" / "MNIST" / "raw").iterdir():
        (www / "mnist" / f.name).write_bytes(f.read_bytes())
    # CIFAR: the python-pickle tar.gz archives, one top folder each
    (www / "cifar").mkdir()
    for name, folder, archive in (
        ("cifar10", "cifar-10-batches-py", "cifar-10-python.tar.gz"),
        ("cifar100", "cifar-100-python", "cifar-100-python.tar.gz"),
    ):
        write_cifar_fixture(src / name, name, n_train=110, n_test=30, seed=4)
        with tarfile.open(www / "cifar" / archive, "w:gz") as tar:
            tar.add(src / name / folder, arcname=folder)
    # KITTI raw: the drive's sync zip and the date's calib zip, laid out as KITTI's
    kitti = write_kitti_raw_fixture(src / "kitti", n_frames=2, size=(32, 96), wall_depths=[6.0, 9.0])
    date_dir = kitti / "2011_09_26"
    (www / "kitti" / "2011_09_26_drive_0113").mkdir(parents=True)
    with zipfile.ZipFile(
        www / "kitti" / "2011_09_26_drive_0113" / "2011_09_26_drive_0113_sync.zip", "w"
    ) as zf:
        for f in sorted((date_dir / "2011_09_26_drive_0113_sync").rglob("*")):
            zf.write(f, f.relative_to(kitti).as_posix())
    with zipfile.ZipFile(www / "kitti" / "2011_09_26_calib.zip", "w") as zf:
        for f in sorted(date_dir.glob("calib_*.txt")):
            zf.write(f, f.relative_to(kitti).as_posix())
    return {"src": src, "www": www}


@pytest.fixture
def server(served: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    """The local server; the fixture archives' MD5s stand in for the published ones."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    www = served["www"]
    for f in (www / "mnist").iterdir():
        monkeypatch.setitem(mnist_module.MNIST_MD5, f.name, _md5(f))
    for f in (www / "cifar").iterdir():
        monkeypatch.setitem(cifar_module.CIFAR_MD5, f.name, _md5(f))
    srv = LocalServer(www)
    yield srv
    srv.stop()


def _leftovers(folder: Path) -> list[str]:
    """Temporary files (pooch's tmp*, our .extract-*) left behind in a folder tree."""
    if not folder.exists():
        return []
    return [p.name for p in folder.rglob("*") if p.name.startswith(("tmp", ".extract-"))]


# ---------------------------------------------------------------------------------------------
# download + checksum + extraction, then the loader reads it
# ---------------------------------------------------------------------------------------------


def test_mnist_download_then_load(server: LocalServer, served: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "data"
    train = MNIST(root, train=True, download=True, base_url=server.url + "mnist/")
    assert sorted(server.requests) == [
        "/mnist/train-images-idx3-ubyte.gz",
        "/mnist/train-labels-idx1-ubyte.gz",
    ]
    assert (root / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()
    expected = MNIST(served["src"] / "mnist", train=True)
    assert torch.equal(train.data, expected.data) and torch.equal(train.targets, expected.targets)

    # The test split arrives on demand; nothing present is fetched again.
    test = MNIST(root, train=False, download=True, base_url=server.url + "mnist/")
    assert len(test) == 20 and len(server.requests) == 4
    MNIST(root, train=True, download=True, base_url=refusing_url())  # all present: no network
    assert len(server.requests) == 4 and _leftovers(root) == []


def test_base_url_from_the_environment(server: LocalServer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEEPMI_MNIST_URL", server.url + "mnist")  # no trailing slash: added
    download_mnist(tmp_path, train=False, **FAST)
    assert sorted(server.requests) == ["/mnist/t10k-images-idx3-ubyte.gz", "/mnist/t10k-labels-idx1-ubyte.gz"]
    assert len(MNIST(tmp_path, train=False)) == 20


@pytest.mark.parametrize(
    ("name", "folder"), [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")]
)
def test_cifar_download_extract_then_load(
    server: LocalServer, served: dict[str, Path], tmp_path: Path, name: str, folder: str
) -> None:
    train = CIFAR(tmp_path, name, train=True, download=True, base_url=server.url + "cifar/")
    archive = "cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz"
    assert server.requests == [f"/cifar/{archive}"]
    assert (tmp_path / "downloads" / archive).is_file()  # the cache
    expected = CIFAR(served["src"] / name, name, train=True)
    assert len(train) == 110 and torch.equal(train.data, expected.data)
    assert torch.equal(train.targets, expected.targets) and train.classes == expected.classes
    assert len(CIFAR(tmp_path, name, train=False, download=True)) == 30  # present: no request
    assert len(server.requests) == 1 and _leftovers(tmp_path) == []


def test_kitti_download_unzips_into_pykittis_layout(
    server: LocalServer, served: dict[str, Path], tmp_path: Path
) -> None:
    base_dir = tmp_path / "kitti_raw"
    drive_dir = download_kitti_raw(base_dir, "2011_09_26", "0113", base_url=server.url + "kitti/", **FAST)
    assert sorted(server.requests) == [
        "/kitti/2011_09_26_calib.zip",
        "/kitti/2011_09_26_drive_0113/2011_09_26_drive_0113_sync.zip",
    ]
    assert drive_dir == check_kitti_raw_layout(base_dir, "2011_09_26", "0113")
    src_drive = served["src"] / "kitti" / "2011_09_26" / "2011_09_26_drive_0113_sync"
    for rel in ("image_00/data/0000000001.png", "velodyne_points/data/0000000000.bin", "oxts/timestamps.txt"):
        assert (drive_dir / rel).read_bytes() == (src_drive / rel).read_bytes()
    assert (base_dir / "downloads" / "2011_09_26_calib.zip").is_file() and _leftovers(base_dir) == []

    # Only the missing part is fetched: a second drive of the same date reuses the calibration.
    (drive_dir / "oxts" / "timestamps.txt").unlink()
    download_kitti_raw(base_dir, "2011_09_26", "0113", base_url=server.url + "kitti/", **FAST)
    assert len(server.requests) == 2, "the cached zip is re-extracted without the network"


def test_kitti_loader_downloads_then_reads(
    server: LocalServer, served: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("pykitti", reason="reading KITTI needs pykitti (pip install deepmi[kitti])")
    from deepmi.data.kitti import KittiRawStereo

    ds = KittiRawStereo(tmp_path / "k", size=(32, 96), download=True, base_url=server.url + "kitti/")
    assert len(ds) == 2
    geometry = read_kitti_fixture_geometry(served["src"] / "kitti")
    depth = ds[1]["depth"]
    np.testing.assert_allclose(depth[depth > 0].numpy(), geometry["wall_depths"][1], rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# damaged files, broken transfers, retries
# ---------------------------------------------------------------------------------------------


def test_checksum_mismatch_names_the_file_and_deletes_it(server: LocalServer, tmp_path: Path) -> None:
    stale = tmp_path / "downloads" / "cifar-10-python.tar.gz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an old, damaged copy")
    server.fail("cifar/cifar-10-python.tar.gz", "corrupt", "corrupt")
    start = time.monotonic()
    with pytest.raises(CorruptDatasetError, match="cifar-10-python.tar.gz") as info:
        download_cifar(tmp_path, "cifar10", base_url=server.url + "cifar/", **{**FAST, "retries": 1})
    assert time.monotonic() - start < 20
    message = str(info.value)
    assert (
        "checksum" in message and "md5:" in message and "cs.toronto.edu" in message
    )  # + how to fetch by hand
    assert info.value.path == stale
    assert len(server.requests) == 2, "one retry after the first mismatch"
    assert not stale.exists(), "a file that fails its checksum is not kept"
    assert not (tmp_path / "cifar-10-batches-py").exists() and _leftovers(tmp_path) == []


def test_mnist_checksum_mismatch(server: LocalServer, tmp_path: Path) -> None:
    server.fail("mnist/train-images-idx3-ubyte.gz", "corrupt")
    with pytest.raises(CorruptDatasetError, match="train-images-idx3-ubyte.gz.*checksum"):
        download_mnist(tmp_path, train=True, base_url=server.url + "mnist/", **FAST)
    raw = tmp_path / "MNIST" / "raw"
    assert not (raw / "train-images-idx3-ubyte.gz").exists() and _leftovers(tmp_path) == []


def test_a_transfer_cut_short_is_retried(server: LocalServer, tmp_path: Path) -> None:
    server.fail("cifar/cifar-100-python.tar.gz", "truncate")
    download_cifar(tmp_path, "cifar100", base_url=server.url + "cifar/", **{**FAST, "retries": 1})
    assert server.requests == ["/cifar/cifar-100-python.tar.gz"] * 2
    assert len(CIFAR(tmp_path, "cifar100")) == 110


def test_a_server_error_is_retried(server: LocalServer, tmp_path: Path) -> None:
    server.fail("mnist/t10k-labels-idx1-ubyte.gz", 500)
    download_mnist(tmp_path, train=False, base_url=server.url + "mnist/", **{**FAST, "retries": 1})
    assert server.requests.count("/mnist/t10k-labels-idx1-ubyte.gz") == 2
    assert len(MNIST(tmp_path, train=False)) == 20


def test_a_truncated_cached_archive_is_detected_and_fetched_again(
    server: LocalServer, served: dict[str, Path], tmp_path: Path
) -> None:
    full = (served["www"] / "cifar" / "cifar-10-python.tar.gz").read_bytes()
    cached = tmp_path / "downloads" / "cifar-10-python.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(full[: len(full) // 3])  # an interrupted earlier download
    assert len(CIFAR(tmp_path, "cifar10", download=True, base_url=server.url + "cifar/")) == 110
    assert server.requests == ["/cifar/cifar-10-python.tar.gz"]
    assert cached.read_bytes() == full

    # A whole cached archive is re-extracted without the network.
    for f in (tmp_path / "cifar-10-batches-py").iterdir():
        f.unlink()
    assert len(CIFAR(tmp_path, "cifar10", train=False, download=True, base_url=refusing_url())) == 30


def test_a_truncated_cached_zip_without_published_hash_is_fetched_again(
    server: LocalServer, served: dict[str, Path], tmp_path: Path
) -> None:
    full = (served["www"] / "kitti" / "2011_09_26_calib.zip").read_bytes()
    cached = tmp_path / "downloads" / "2011_09_26_calib.zip"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(full[:-200])  # KITTI publishes no hash: the zip's own structure must tell
    download_kitti_raw(tmp_path, base_url=server.url + "kitti/", **FAST)
    assert server.requests.count("/kitti/2011_09_26_calib.zip") == 1
    assert cached.read_bytes() == full
    check_kitti_raw_layout(tmp_path, "2011_09_26", "0113")


def test_a_zip_that_fails_its_crc_twice_is_an_error(served: dict[str, Path], tmp_path: Path, server) -> None:
    blob = bytearray((served["www"] / "kitti" / "2011_09_26_calib.zip").read_bytes())
    bad = tmp_path / "www"
    (bad / "kitti").mkdir(parents=True)
    offset = blob.find(b"calib_time") + 3  # inside the first (stored) member's data
    blob[offset] ^= 0xFF
    (bad / "kitti" / "2011_09_26_calib.zip").write_bytes(bytes(blob))
    other = LocalServer(bad)
    try:
        with pytest.raises(CorruptDatasetError, match="2011_09_26_calib.zip.*CRC"):
            download_kitti_raw(tmp_path / "k", base_url=other.url + "kitti/", **FAST)
        assert other.requests == ["/kitti/2011_09_26_calib.zip"] * 2
    finally:
        other.stop()
    assert not (tmp_path / "k" / "downloads" / "2011_09_26_calib.zip").exists()
    assert _leftovers(tmp_path / "k") == []


def test_next_mirror_after_a_404(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEEPMI_MNIST_URL", raising=False)
    mirrors = (refusing_url(), server.url + "gone/", server.url + "mnist/")
    monkeypatch.setitem(dl.DEFAULT_BASE_URLS, "mnist", mirrors)
    download_mnist(tmp_path, train=False, **FAST)
    assert server.requests[0] == "/gone/t10k-images-idx3-ubyte.gz"
    assert len(MNIST(tmp_path, train=False)) == 20


# ---------------------------------------------------------------------------------------------
# no network
# ---------------------------------------------------------------------------------------------


def test_no_network_says_what_to_fetch_by_hand(tmp_path: Path) -> None:
    closed = refusing_url()
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        MNIST(tmp_path, train=True, download=True, base_url=closed)
    assert time.monotonic() - start < 2.5, "a refused connection fails at once, without retries"
    err = info.value
    assert isinstance(err, DatasetNotFoundError) and isinstance(err, FileNotFoundError)
    message = str(err)
    assert closed + "train-images-idx3-ubyte.gz" in message  # what was tried
    assert "fetch it by hand" in message and "t10k-labels-idx1-ubyte.gz" in message  # what to fetch
    assert str(tmp_path / "MNIST" / "raw") in message  # and where to put it
    assert pickle.loads(pickle.dumps(err)).args == err.args  # DataLoader workers re-raise it
    assert _leftovers(tmp_path) == []


def test_no_network_for_cifar_and_kitti(tmp_path: Path) -> None:
    closed = refusing_url()
    with pytest.raises(DownloadError, match=r"(?s)cifar-100-python\.tar\.gz.*kriz/cifar\.html"):
        CIFAR(tmp_path, "cifar100", download=True, base_url=closed)
    with pytest.raises(DownloadError, match=r"(?s)2011_09_26_calib\.zip.*raw_data\.php.*base_dir="):
        download_kitti_raw(tmp_path / "kitti", base_url=closed, **FAST)


def test_without_download_nothing_is_fetched(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        MNIST(tmp_path)
    assert not isinstance(info.value, DownloadError) and "download=True" in str(info.value)
    assert not (tmp_path / "MNIST").exists()


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def test_base_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEEPMI_CIFAR_URL", raising=False)
    monkeypatch.delenv("DEEPMI_MNIST_URL", raising=False)
    assert dl.base_urls("cifar") == ("https://www.cs.toronto.edu/~kriz/",)
    assert dl.base_urls("mnist")[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert len(dl.base_urls("mnist")) == 3
    monkeypatch.setenv("DEEPMI_CIFAR_URL", "http://127.0.0.1:1/env")
    assert dl.base_urls("cifar") == ("http://127.0.0.1:1/env/",)
    assert dl.base_urls("cifar", "http://127.0.0.1:1/arg/") == ("http://127.0.0.1:1/arg/",)
    with pytest.raises(ValueError, match="unknown download source"):
        dl.base_urls("imagenet")


def test_default_data_root_is_never_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPMI_DATA", str(tmp_path / "d"))
    assert dl.default_data_root() == tmp_path / "d"
    monkeypatch.delenv("DEEPMI_DATA")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="pass root=.*DEEPMI_DATA"):
        dl.default_data_root()
    with pytest.raises(ValueError, match="DEEPMI_DATA"):
        MNIST(None, download=True)
    with pytest.raises(SystemExit):
        dl.main(["mnist"])
    assert list(tmp_path.iterdir()) == [], "nothing written to the working directory"


def test_unsafe_tar_members_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(CorruptDatasetError, match="unsafe member"):
        dl.extract(archive, tmp_path / "dest")
    assert not (tmp_path / "outside.txt").exists() and _leftovers(tmp_path) == []


def test_truncated_tar_gz_is_a_clear_error(tmp_path: Path) -> None:
    archive = tmp_path / "x.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = np.random.default_rng(0).bytes(100_000)
        info = tarfile.TarInfo("f.bin")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(CorruptDatasetError, match=r"x\.tar\.gz: cannot be unpacked"):
        dl.extract(archive, tmp_path / "dest")
    assert not (tmp_path / "dest" / "f.bin").exists()


def test_command_line(server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dl.main(["mnist", "--root", str(tmp_path), "--base-url", server.url + "mnist/"])
    assert "mnist: ready" in capsys.readouterr().out
    assert len(server.requests) == 4 and len(MNIST(tmp_path, train=False)) == 20
    gz = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    assert gzip.decompress(gz.read_bytes())[:4] == (0x801).to_bytes(4, "big")
