"""MIGE Table 1 (Sec. 4.2): Deep InfoMax on CIFAR, then classifiers on the frozen features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from deepmi.estimators.infomax_objectives import MIGEInfoMaxObjective
from experiments.tasks.base import LossFactory, OptimizerFactory, TaskModule

PROBE_LEVELS = ("conv", "fc", "y")


def probe(in_dim: int, n_classes: int, hidden: int = 200, dropout: float = 0.1) -> nn.Module:
    """Hjelm et al.'s evaluation classifier: one hidden layer of 200 units with dropout."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, n_classes),
    )


def feature_dims(encoder: nn.Module) -> dict[str, int]:
    """Flattened size of each probed feature level, from one dummy forward pass."""
    dummy = torch.zeros(2, encoder.in_channels, encoder.image_size, encoder.image_size)
    was_training = encoder.training
    with torch.no_grad():
        features = encoder.eval()(dummy)
    encoder.train(was_training)
    return {k: getattr(features, k)[0].numel() for k in PROBE_LEVELS}


class InfoMaxModule(TaskModule):
    """Two phases inside one fit, chosen by epoch so that resuming lands in the right one.

    Epochs [0, encoder_epochs): the DCGAN encoder maximises I(x; y) with the chosen objective, no
    labels. Epochs [encoder_epochs, max_epochs): the encoder is frozen (eval mode, no grad) and one
    probe per feature level (conv, fc(1024), Y(64)) learns to classify. Test: probe accuracy (%).

    What plays x in I(x; y): for the critic bounds (jsd, infonce, with or without prior matching)
    it is the last conv feature map, as in DIM's global objective (Hjelm et al. 2019); for MIGE it
    is the image itself (MIGE Sec. 3 circumstance I, with the random projection of Eq. 18-19).
    """

    def __init__(
        self,
        *args,
        probe_optimizer: OptimizerFactory,
        encoder_epochs: int = 1,
        n_classes: int = 10,
        probe_hidden: int = 200,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if encoder_epochs < 0:
            raise ValueError(f"encoder_epochs must be >= 0, got {encoder_epochs}")
        self.automatic_optimization = False
        self.encoder_epochs = encoder_epochs
        self.probe_optimizer_factory = probe_optimizer
        features = feature_dims(self.model)
        self.probes = nn.ModuleDict({k: probe(features[k], n_classes, probe_hidden) for k in PROBE_LEVELS})
        self.accuracies = nn.ModuleDict(
            {k: MulticlassAccuracy(num_classes=n_classes, average="micro") for k in PROBE_LEVELS}
        )

    def size_loss(self, factory: LossFactory) -> nn.Module:
        """A critic objective reads the last conv map as x: its size comes from the encoder."""
        return factory(x_dim=feature_dims(self.model)["conv"])

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return self.name_optimizers(
            main=self.optimizer_factory([*self.model.parameters(), *self.loss.main_parameters()]),
            probes=self.probe_optimizer_factory(self.probes.parameters()),
            adversary=self.adversary_optimizer(),
        )

    def mi_input(self, images: torch.Tensor, conv: torch.Tensor) -> torch.Tensor:
        return images.flatten(1) if isinstance(self.loss, MIGEInfoMaxObjective) else conv.flatten(1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        if self.current_epoch < self.encoder_epochs:
            self._encoder_step(images)
        else:
            self._probe_step(images, labels)

    def _encoder_step(self, images: torch.Tensor) -> None:
        main = self.optimizer("main")
        features = self.model(images)
        out = self.loss(self.mi_input(images, features.conv), features.y)
        main.zero_grad()
        self.manual_backward(out["loss"])
        main.step()
        self.adversary_step(out)
        self.log("train/objective", out["loss"].detach(), prog_bar=True)
        for key in ("mi", "pm_encoder"):
            if key in out:
                self.log(f"train/{key}", out[key])

    def _features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.model.eval()  # frozen: BatchNorm statistics stay as the encoder phase left them
        with torch.no_grad():
            features = self.model(images)
        return {k: getattr(features, k).flatten(1) for k in PROBE_LEVELS}

    def _probe_step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        optimizer = self.optimizer("probes")
        features = self._features(images)
        losses = {k: F.cross_entropy(self.probes[k](features[k]), labels) for k in PROBE_LEVELS}
        optimizer.zero_grad()
        self.manual_backward(sum(losses.values()))
        optimizer.step()
        for k, value in losses.items():
            self.log(f"train/probe_ce_{k}", value.detach(), prog_bar=k == "y")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        features = self._features(images)
        for k in PROBE_LEVELS:
            self.accuracies[k].update(self.probes[k](features[k]), labels)

    def on_test_epoch_end(self) -> None:
        for k in PROBE_LEVELS:  # Table 1 is in percent
            self.log(f"test/acc_{k}", 100 * self.accuracies[k].compute())
            self.accuracies[k].reset()
