"""Hydra entry point: `python run.py experiment=exp3_depth loss=lmi` (see README.md)."""

import os
from pathlib import Path

# Busy-waiting OpenMP threads stall small eigendecompositions (SSGE) on a shared CPU; set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

os.environ.setdefault("DEEPMI_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from experiments.train import run

    record = run(cfg)
    # a single run that diverged fails the command; in a sweep the other jobs go on
    if record.get("status") == "diverged" and HydraConfig.get().mode == RunMode.RUN:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
