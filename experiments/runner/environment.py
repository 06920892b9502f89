"""What machine and software a run's record says produced it (the record's ``environment``)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import lightning as L
import torch


def device_name() -> str:
    """The GPU's name, or the CPU model and core count (what a results table should state)."""
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model} ({os.cpu_count()} cores)"


def environment_info() -> dict[str, Any]:
    import deepmi

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "deepmi": deepmi.__version__,
        "git_commit": commit,
        "device": device_name(),
        "cuda": torch.cuda.is_available(),
        "torch_threads": torch.get_num_threads(),
    }
