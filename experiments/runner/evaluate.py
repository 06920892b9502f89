"""``train=false``: test a checkpoint's weights into ``evaluation.json`` (status ``evaluated``).

The evaluation has a file of its own, so evaluating a checkpoint into its run's folder never
turns the run's training record into something else (and the run stays in the tables). The
module is built from the config stored in the checkpoint, so its architecture always matches the
weights; a checkpoint of another experiment is refused with the experiment to name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from experiments.runner.build import module_from_checkpoint
from experiments.runner.checkpointing import LAST
from experiments.runner.data_source import data_source
from experiments.runner.environment import environment_info
from experiments.runner.fingerprint import differences, fingerprint, result_config
from experiments.runner.record import EVALUATION_FILE, summarize, worse_than_baseline, write_record

log = logging.getLogger(__name__)


def checkpoint_to_evaluate(cfg: DictConfig, output_dir: Path) -> Path:
    ckpt = cfg.get("ckpt_path")
    path = output_dir / "checkpoints" / LAST if ckpt == "last" else Path(str(ckpt)) if ckpt else None
    if path is None or not path.is_file():
        raise ValueError(
            f"train=false evaluates a checkpoint, but ckpt_path={ckpt!r} is not a file; pass "
            f"\"ckpt_path='<run folder>/checkpoints/{LAST}'\" (quoted: run folder names hold '=' and ','), "
            "or use python run.py evaluate=<run folder>"
        )
    return path


def evaluate(cfg: DictConfig, output_dir: Path, trainer_kwargs: dict[str, Any]) -> dict[str, Any]:
    path = checkpoint_to_evaluate(cfg, output_dir)
    log.info("evaluating %s -> %s", path, output_dir / EVALUATION_FILE)
    built = module_from_checkpoint(path)
    if built is None:
        raise ValueError(f"{path} holds no run config (not written by run.py); it cannot be evaluated here")
    module, trained = built
    if trained.get("experiment_name") != cfg.experiment_name:
        raise ValueError(
            f"{path} is a checkpoint of experiment '{trained.get('experiment_name')}', not "
            f"'{cfg.experiment_name}': evaluate it with experiment={trained.get('experiment_name')} "
            "(or python run.py evaluate=<its run folder>)"
        )
    changed = differences(result_config(trained), result_config(cfg), limit=20)
    if changed:
        log.warning(
            "evaluating under a config that differs from the checkpoint's:\n  %s", "\n  ".join(changed)
        )
    datamodule = instantiate(cfg.dataset_module, dataset_factory=instantiate(cfg.dataset))
    trainer: L.Trainer = instantiate(cfg.trainer, **trainer_kwargs)
    metrics: dict[str, float] = {}
    for result in trainer.test(module, datamodule=datamodule, verbose=False):  # weights loaded above
        metrics.update({k: float(v) for k, v in result.items()})
    record: dict[str, Any] = {
        "status": "evaluated",
        "evaluated_checkpoint": str(path),
        "checkpoint_config_fingerprint": fingerprint(trained),
        "config_differences": changed,
        "data_source": data_source(cfg),
        "config_fingerprint": fingerprint(cfg),
        "config": OmegaConf.to_container(cfg, resolve=True),
        "metrics": metrics,
        "environment": environment_info(),
    }
    flags = worse_than_baseline(metrics)
    if flags:
        record["flag_worse_than_baseline"] = flags
    if trainer.is_global_zero:
        where = write_record(output_dir, record, EVALUATION_FILE)
        print(summarize(metrics), f"\nevaluation of {path}: {where}", sep="", flush=True)
    return record
