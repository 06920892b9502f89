"""Hydra entry point: `python run.py experiment=exp3_depth loss=lmi` (see README.md)."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("DEEPMI_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig) -> None:
    from experiments.train import run

    run(cfg)


if __name__ == "__main__":
    main()
