"""Hydra entry point: `python run.py experiment=exp3_depth loss=lmi` (see README.md)."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

import experiments  # noqa: F401  (first of the project's imports: sets OMP_WAIT_POLICY before torch loads)

os.environ.setdefault("DEEPMI_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from experiments.runner.train import run

    record = run(cfg)
    # a single run that diverged fails the command; in a sweep the other jobs go on
    if record.get("status") == "diverged" and HydraConfig.get().mode == RunMode.RUN:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
