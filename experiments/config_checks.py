"""Checks that turn a bad combination of config choices into a message that names the fix."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def losses_by_family(config_dir: Path = CONFIG_DIR) -> dict[str, list[str]]:
    """Map each loss family (image, dim, ib) to the names of its configs/loss/*.yaml files."""
    families: dict[str, list[str]] = {}
    for path in sorted((config_dir / "loss").glob("*.yaml")):
        family = OmegaConf.load(path).get("family", "image")
        families.setdefault(family, []).append(path.stem)
    return families


def check_loss_fits(cfg: DictConfig) -> None:
    """Raise if the chosen loss is not one the experiment can train with."""
    wanted = cfg.get("loss_family")
    loss = cfg.get("loss")
    if wanted in (None, "none"):
        if loss is not None:
            raise ValueError(
                f"experiment '{cfg.experiment_name}' takes no loss, but loss={loss.name} was given; "
                "drop the loss= override"
            )
        return
    if loss is None:
        raise ValueError(f"experiment '{cfg.experiment_name}' needs a loss: add loss=<name>")
    if loss.get("family") != wanted:
        valid = ", ".join(losses_by_family().get(wanted, []))
        raise ValueError(
            f"loss '{loss.name}' does not fit experiment '{cfg.experiment_name}' "
            f"(it trains with {wanted} losses); choose one of: {valid}"
        )
