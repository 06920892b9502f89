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
    from experiments.train import run

    run(cfg)


if __name__ == "__main__":
    main()
