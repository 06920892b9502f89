"""Checks that turn a bad combination of config choices into a message that names the fix."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from experiments import CONFIG_DIR
from experiments.runner.losses import loss_family, losses_by_family


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
    if not loss.get("name"):
        raise ValueError(
            "the loss config has no name (its row in the results tables and its key in lr_by_loss); "
            "add name: <the YAML file's name> to it"
        )
    if loss_family(loss) != wanted:
        valid = ", ".join(losses_by_family().get(wanted, []))
        raise ValueError(
            f"loss '{loss.name}' does not fit experiment '{cfg.experiment_name}' "
            f"(it trains with {wanted} losses); choose one of: {valid}"
        )


# Which dataset configs each experiment's module can read (its batches' keys must match).
DATASETS_BY_EXPERIMENT: dict[str, tuple[str, ...]] = {
    "exp1_bar": ("bar",),
    "exp2_mask": ("masked_crops",),
    "exp3_depth": ("synthetic_stereo", "kitti_raw", "middlebury_motorcycle"),
    "dim_cifar10": ("cifar10", "cifar100"),
    "dim_cifar100": ("cifar10", "cifar100"),
    "ib_mnist": ("mnist",),
}


def check_seed(cfg: DictConfig) -> None:
    seed = cfg.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be an integer or null, got {seed!r}; e.g. seed=0")


def check_dataset_fits(cfg: DictConfig, dataset_choice: str | None) -> None:
    """Raise if the chosen dataset config is not one the experiment's module can read."""
    allowed = DATASETS_BY_EXPERIMENT.get(cfg.get("experiment_name"))
    if dataset_choice is None or allowed is None or dataset_choice in allowed:
        return
    raise ValueError(
        f"dataset={dataset_choice} does not fit experiment '{cfg.experiment_name}'; "
        f"choose one of: {', '.join(allowed)} (or drop the dataset= override)"
    )


def check_debug_patch(
    debug: str | None, dataset: str | None, experiment: str, config_dir: Path = CONFIG_DIR
) -> None:
    """A debug scale must shrink the chosen dataset or experiment: never run silently at paper size.

    Hydra's defaults list picks debug_dataset/<debug>_<dataset>.yaml and
    debug_experiment/<debug>_<experiment>.yaml as optional patches; with neither, ``debug=quick``
    on an experiment it does not cover would train at full size.
    """
    if debug is None:
        return
    patches = [config_dir / "debug_dataset" / f"{debug}_{dataset}.yaml"] if dataset else []
    patches.append(config_dir / "debug_experiment" / f"{debug}_{experiment}.yaml")
    if any(p.exists() for p in patches):
        return
    covered = sorted(
        {p.stem.removeprefix(f"{debug}_") for p in (config_dir / "debug_dataset").glob(f"{debug}_*.yaml")}
        | {
            p.stem.removeprefix(f"{debug}_")
            for p in (config_dir / "debug_experiment").glob(f"{debug}_*.yaml")
        }
    )
    raise ValueError(
        f"debug={debug} has no patch for experiment '{experiment}' (dataset={dataset}), so it would run at "
        f"full size; debug={debug} covers: {', '.join(covered)}. Use debug=smoke or debug=cpu, or add "
        f"configs/debug_dataset/{debug}_{dataset}.yaml"
    )


def check_ema_decay(cfg: DictConfig) -> None:
    decay = cfg.get("ema_decay")
    if decay is None:
        return
    if isinstance(decay, bool) or not isinstance(decay, float | int) or not 0 < decay < 1:
        raise ValueError(f"ema_decay must be a number in (0, 1) or null, got {decay!r}; e.g. ema_decay=0.999")


def check_trainer(cfg: DictConfig) -> None:
    trainer = cfg.get("trainer") or {}
    max_steps = trainer.get("max_steps")
    if cfg.get("train", True) and trainer.get("max_epochs") == 0 and not (max_steps and max_steps > 0):
        raise ValueError(
            "trainer.max_epochs=0 trains nothing, and an untrained model would be recorded as finished; "
            "give trainer.max_epochs >= 1, or test a checkpoint with python run.py evaluate=<run folder>"
        )
    if trainer.get("accelerator") == "gpu":
        import torch

        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ValueError(
                f"trainer=gpu, but torch {torch.__version__} ({build}) sees no CUDA GPU; on this machine "
                "drop trainer=gpu (the default trainer runs on the CPU), or install a CUDA build of torch "
                "(https://pytorch.org/get-started/locally/) on a machine with a GPU"
            )
    if trainer.get("sync_batchnorm") and trainer.get("accelerator") == "cpu":
        raise ValueError(
            "trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm has no CPU path); for DDP on "
            "CPU processes use trainer=ddp_cpu (or add trainer.sync_batchnorm=false)"
        )


def check_config(cfg: DictConfig) -> None:
    """Every check that can be made before anything is built."""
    from hydra.core.hydra_config import HydraConfig

    check_seed(cfg)
    check_ema_decay(cfg)
    check_trainer(cfg)
    check_loss_fits(cfg)
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    check_dataset_fits(cfg, choices.get("dataset"))
    check_debug_patch(choices.get("debug"), choices.get("dataset"), cfg.experiment_name)
