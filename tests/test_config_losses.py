"""Losses are configured like every other piece: a Hydra _target_ per configs/loss/*.yaml, the
family on the class, one list of names (the library's registries), and configs of older runs read
in today's layout."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from hydra.utils import get_class
from omegaconf import OmegaConf
from torch import Tensor, nn

from deepmi.estimators import OBJECTIVES
from deepmi.losses import LOSSES
from experiments import CONFIG_DIR
from experiments.runner.fingerprint import differences, fingerprint, result_config
from experiments.runner.legacy import upgrade_config
from experiments.runner.losses import build_loss, loss_family
from experiments.runner.train import run
from tests.helpers import compose_config

SMOKE = ["debug=smoke", "logger=none", "trainer.enable_progress_bar=false"]
LOSS_CONFIGS = sorted(p.stem for p in (CONFIG_DIR / "loss").glob("*.yaml"))


class ToyLoss(nn.Module):
    """A loss that lives only in this test module: mean absolute error, scaled."""

    family = "image"
    calls = 0

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        ToyLoss.calls += 1
        return self.scale * (pred - target).abs().mean()


class NoFamilyLoss(nn.Module):
    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return (pred - target).abs().mean()


def _loss_yaml(folder: Path, name: str, target: str, **arguments: object) -> Path:
    (folder / "loss").mkdir(parents=True, exist_ok=True)
    lines = [f"_target_: {target}", f"name: {name}", *(f"{k}: {v}" for k, v in arguments.items())]
    (folder / "loss" / f"{name}.yaml").write_text("\n".join(lines) + "\n")
    return folder


def test_configs_hold_exactly_the_registered_losses() -> None:
    """One list: configs/loss/ has one YAML per name in deepmi's LOSSES and OBJECTIVES."""
    assert LOSS_CONFIGS == sorted([*LOSSES, *OBJECTIVES])


@pytest.mark.parametrize("name", LOSS_CONFIGS)
def test_each_loss_yaml_builds_what_its_name_means_in_the_library(name: str) -> None:
    cfg = OmegaConf.load(CONFIG_DIR / "loss" / f"{name}.yaml")
    assert cfg.name == name
    registered = LOSSES.get(name) or OBJECTIVES[name]
    assert get_class(cfg._target_) is getattr(registered, "func", registered)
    for key, value in (getattr(registered, "keywords", None) or {}).items():
        assert cfg.get(key) == value, f"{name}.yaml must fix {key}={value!r} as the registry does"
    assert loss_family(cfg) in ("image", "infomax", "bottleneck")


def test_no_loss_yaml_hard_codes_an_input_size() -> None:
    for name in LOSS_CONFIGS:
        cfg = OmegaConf.load(CONFIG_DIR / "loss" / f"{name}.yaml")
        for key in ("x_dim", "z_dim"):
            value = OmegaConf.to_container(cfg).get(key)
            assert value is None or str(value).startswith("${model."), f"{name}.yaml: {key}: {value}"


@pytest.mark.parametrize(
    ("experiment", "loss", "sizes"),
    [("dim_cifar10", "jsd_pm", (256 * 4 * 4, 64)), ("ib_mnist", "mine_ib", (784, 256))],
)
def test_critic_sizes_come_from_the_model(
    experiment: str, loss: str, sizes: tuple[int, int], tmp_path: Path, data_root: Path
) -> None:
    from experiments.runner.train import build_module

    cfg = compose_config([*SMOKE, f"experiment={experiment}", f"loss={loss}"], tmp_path, data_root)
    critic = build_module(cfg).loss
    x_dim, z_dim = sizes
    assert critic(torch.randn(4, x_dim), torch.randn(4, z_dim))["loss"].isfinite()
    with pytest.raises(RuntimeError):  # a wrong size would not go through
        critic(torch.randn(4, x_dim + 1), torch.randn(4, z_dim))


def test_a_loss_added_through_config_alone_trains_at_smoke_scale(tmp_path: Path, data_root: Path) -> None:
    """The guide's recipe (docs/extending.md): a class with `family` + one YAML, no registry edit."""
    configs = _loss_yaml(tmp_path / "configs", "toy_l1", f"{__name__}.ToyLoss", scale=2.0)
    overrides = [*SMOKE, f"hydra.searchpath=[file://{configs}]", "loss=toy_l1"]
    cfg = compose_config(overrides, tmp_path / "run", data_root)
    assert isinstance(build_loss(cfg.loss), ToyLoss) and build_loss(cfg.loss).scale == 2.0
    calls = ToyLoss.calls
    record = run(cfg)
    assert ToyLoss.calls > calls, "the run trained with another loss"
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["status"] == "finished" and written["loss"] == "toy_l1"
    assert all(math.isfinite(v) for v in record["metrics"].values())
    # the family on the class decides where it fits: not in an experiment of MI objectives
    bad = compose_config([*overrides, "experiment=ib_mnist"], tmp_path / "bad", data_root)
    with pytest.raises(ValueError, match="loss 'toy_l1' does not fit experiment 'ib_mnist'.*vib"):
        run(bad)


def test_a_loss_class_without_family_is_named(tmp_path: Path, data_root: Path) -> None:
    configs = _loss_yaml(tmp_path / "configs", "nofamily", f"{__name__}.NoFamilyLoss")
    overrides = [*SMOKE, f"hydra.searchpath=[file://{configs}]", "loss=nofamily"]
    with pytest.raises(
        ValueError, match="class .*NoFamilyLoss has no family attribute; set family = 'image'"
    ):
        run(compose_config(overrides, tmp_path / "run", data_root))


def test_a_bad_loss_argument_is_named_with_the_valid_ones(tmp_path: Path, data_root: Path) -> None:
    with pytest.raises(ValueError, match="loss .l1. .*does not take.*bins; valid arguments: reduction"):
        run(compose_config([*SMOKE, "loss=l1", "+loss.bins=3"], tmp_path, data_root))
    with pytest.raises(ValueError, match="loss 'lmi': bins must be >= 2"):
        run(compose_config([*SMOKE, "loss=lmi", "loss.bins=1"], tmp_path, data_root))


def test_loss_overrides_users_type_still_compose(tmp_path: Path, data_root: Path) -> None:
    lmi = compose_config(["loss=lmi", "loss.bins=3"], tmp_path, data_root).loss
    assert (lmi.name, lmi.bins, lmi._target_) == ("lmi", 3, "deepmi.losses.LMILoss")
    vib = compose_config(["experiment=ib_mnist", "loss=vib", "loss.beta=0.01"], tmp_path, data_root).loss
    assert build_loss(vib).beta == 0.01


# ------------------------------------------------------------------ configs written by older code


def _legacy(cfg: object) -> dict:
    """A resolved config as the code before #15 wrote it: old module paths, loss by name + family."""
    old = OmegaConf.to_container(cfg, resolve=True)
    text = json.dumps(old)
    for new_module in ("tasks.", "datasets.", "runner.", "reporting."):
        text = text.replace(f'"experiments.{new_module}', '"experiments.')
    old = json.loads(text)
    family = {"image": "image", "infomax": "dim", "bottleneck": "ib"}[old["loss_family"]]
    old["loss_family"] = family
    loss = {
        k: v for k, v in old["loss"].items() if k not in ("_target_", "_partial_", "bound", "prior_matching")
    }
    old["loss"] = {"name": loss.pop("name"), "family": family, **loss}
    if old["loss"]["name"] in ("jsd", "jsd_pm", "infonce", "infonce_pm"):
        old["loss"]["x_dim"] = 4096
    return old


@pytest.mark.parametrize(
    "overrides",
    [
        ["loss=lmi", "loss.bins=25"],
        ["experiment=dim_cifar10", "loss=jsd_pm"],
        ["experiment=ib_mnist", "loss=mine_ib"],
    ],
)
def test_an_older_runs_config_has_the_same_fingerprint(
    overrides: list[str], tmp_path: Path, data_root: Path
) -> None:
    cfg = compose_config(overrides, tmp_path, data_root)
    old = _legacy(cfg)
    assert old["module"]["_target_"].count(".") == 2 and "_target_" not in old["loss"]
    assert differences(result_config(old), result_config(cfg)) == []
    assert fingerprint(old) == fingerprint(cfg)
    # an argument the old run had otherwise is still a difference
    other = {**old, "loss": {**old["loss"], "name": "other"}}
    assert fingerprint(other) != fingerprint(cfg)


def test_an_older_runs_changed_loss_argument_is_still_a_change(tmp_path: Path, data_root: Path) -> None:
    cfg = compose_config(["loss=lmi"], tmp_path, data_root)
    old = _legacy(compose_config(["loss=lmi", "loss.bins=3"], tmp_path, data_root))
    assert differences(result_config(old), result_config(cfg)) == ["loss.bins: 3 -> 11"]


def test_target_is_not_ignored_by_the_fingerprint(tmp_path: Path, data_root: Path) -> None:
    cfg = OmegaConf.to_container(compose_config(["loss=l1"], tmp_path, data_root), resolve=True)
    other = {**cfg, "loss": {**cfg["loss"], "_target_": f"{__name__}.ToyLoss"}}
    assert fingerprint(other) != fingerprint(cfg)


def test_a_checkpoint_written_before_the_layout_change_still_loads(tmp_path: Path, data_root: Path) -> None:
    from experiments.tasks.bar_alignment import BarAlignmentModule

    cfg = compose_config([*SMOKE, "loss=lmi"], tmp_path / "run", data_root)
    run(cfg)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(ckpt, weights_only=False)
    checkpoint["hyper_parameters"]["config"] = _legacy(cfg)
    old_ckpt = tmp_path / "old.ckpt"
    torch.save(checkpoint, old_ckpt)
    assert (
        upgrade_config(checkpoint["hyper_parameters"]["config"])["loss"]["_target_"]
        == "deepmi.losses.LMILoss"
    )
    module = BarAlignmentModule.load_from_checkpoint(old_ckpt)
    assert module.loss.bins == 11
    assert all(torch.equal(module.state_dict()[k], v) for k, v in checkpoint["state_dict"].items())
