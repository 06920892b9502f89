"""Shared test set-up: the repo root for configs, a throw-away data root, wandb kept offline."""

from __future__ import annotations

import os
from pathlib import Path

# before torch loads: busy-waiting OpenMP threads stall small eigh calls on a shared 2-core machine
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

os.environ.setdefault("DEEPMI_ROOT", str(REPO_ROOT))
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HYDRA_FULL_ERROR", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data root per test session, so generated datasets are cached across tests."""
    return tmp_path_factory.mktemp("data")
