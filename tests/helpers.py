"""Compose the project's Hydra config the way run.py does, for tests."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from experiments import CONFIG_DIR


def compose_config(overrides: list[str], output_dir: Path, data_dir: Path) -> DictConfig:
    """The config `python run.py <overrides>` would see, writing under output_dir/data_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.data_dir = str(data_dir)
        del cfg.hydra
    return cfg


class StopAfterEpochs(L.Callback):
    """Ends fit after `epochs` epochs as an interruption would (checkpoint written, schedule intact)."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


class PauseAtStep(L.Callback):
    """At global step `step`, touch `marker` and sleep, so a test can kill the process mid-epoch."""

    def __init__(self, step: int, marker: str, seconds: float = 120.0) -> None:
        self.step, self.marker, self.seconds = step, Path(marker), seconds

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            import time

            self.marker.write_text(str(trainer.global_step))
            time.sleep(self.seconds)


class FailAtStep(L.Callback):
    """Raise at global step `step`: an interruption that Lightning cannot turn into a clean stop."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"simulated crash at step {self.step}")
