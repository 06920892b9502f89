"""Shared test set-up: the repo root for configs, a throw-away data root, wandb kept offline,
downloads kept off the internet."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

# isort: off
import experiments  # noqa: F401  (before torch: sets OMP_WAIT_POLICY, see experiments/__init__.py)

# isort: on
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
# Real datasets, when a test may use them: $DEEPMI_DATA (CI sets it when a copy exists), else none.
# (kept in DEEPMI_REAL_DATA because this module may be imported twice: by pytest and by tests)
os.environ.setdefault("DEEPMI_REAL_DATA", os.environ.get("DEEPMI_DATA", ""))
REAL_DATA = Path(os.environ["DEEPMI_REAL_DATA"]) if os.environ["DEEPMI_REAL_DATA"] else None
# Everything else (runs started in subprocesses included) writes generated data to a throw-away
# root, never into the real data folder.
if "DEEPMI_TEST_DATA" not in os.environ or os.environ.get("DEEPMI_DATA") != os.environ["DEEPMI_TEST_DATA"]:
    os.environ["DEEPMI_TEST_DATA"] = os.environ["DEEPMI_DATA"] = tempfile.mkdtemp(prefix="deepmi-test-data-")


_HELD_PORTS: list[socket.socket] = []


def refusing_url() -> str:
    """A URL on 127.0.0.1 that refuses connections at once: a port bound (never reused), not listening."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _HELD_PORTS.append(sock)
    return f"http://127.0.0.1:{sock.getsockname()[1]}/"


# Tests never reach the internet: a dataset config's `download: true` (and any loader built with
# download=True) goes to a refusing local port unless a test points it at its own local server.
for _var in ("DEEPMI_MNIST_URL", "DEEPMI_CIFAR_URL", "DEEPMI_KITTI_URL"):
    os.environ[_var] = refusing_url()

os.environ.setdefault("DEEPMI_ROOT", str(REPO_ROOT))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HYDRA_FULL_ERROR", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data root per test session, so generated datasets are cached across tests."""
    return tmp_path_factory.mktemp("data")
