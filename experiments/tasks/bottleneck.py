"""MIGE Table 2 (Sec. 4.3): Information Bottleneck on permutation-invariant MNIST."""

from __future__ import annotations

import warnings
import zlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from experiments.tasks.base import TaskModule


def _item_noise(item: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    seed = zlib.crc32(item.detach().cpu().numpy().tobytes())
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


class BottleneckModule(TaskModule):
    """Minimise H(y|z) + beta * I(z; x) (MIGE Eq. 7) with a stochastic Gaussian encoder.

    H(y|z) is the decoder's cross-entropy on reparameterised samples z ~ q(z|x); the beta * I(z; x)
    term (or its gradient) comes from the loss: VIB's KL bound, MINE-IB, or MIGE-IB. Inputs are
    scaled to [-1, 1] as in Alemi et al.'s code. Test: misclassification rate (%) of the decoder's
    softmax averaged over ``eval_samples`` draws of z (Alemi et al. use 12); beside it the trivial
    baseline that always answers the most frequent training label (test/baseline_error_pct).
    """

    def __init__(
        self,
        *args,
        decoder: nn.Module,
        train_samples: int = 1,
        eval_samples: int = 12,
        n_classes: int = 10,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if train_samples < 1 or eval_samples < 1:
            raise ValueError("train_samples and eval_samples must be >= 1")
        self.automatic_optimization = False
        self.decoder = decoder
        # MIGE-IB's SSGE of q(z|x) needs several draws per input; the objective says how many
        self.train_samples = max(train_samples, getattr(self.loss, "samples_per_input", 1))
        self.eval_samples = eval_samples
        self.accuracy = MulticlassAccuracy(num_classes=n_classes, average="micro")
        self.baseline_accuracy = MulticlassAccuracy(num_classes=n_classes, average="micro")
        self.majority_class = 0

    def configure_optimizers(self) -> Any:
        main = self.optimizer_factory(
            [*self.model.parameters(), *self.decoder.parameters(), *self.loss.main_parameters()]
        )
        optimizers = self.name_optimizers(main=main, adversary=self.adversary_optimizer())
        if self.scheduler_factory is None:
            return optimizers
        return optimizers, [self.scheduler_factory(main)]

    def sample(
        self, x: torch.Tensor, n: int, per_item_noise: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, n, K) draws of z and the (B, K) mean and std of q(z|x).

        ``per_item_noise`` (evaluation): each input's draws come from a generator seeded by the
        input's own bytes, so the test error does not depend on batching, order, the number of
        DDP ranks or what ran before: the same weights always give the same number.
        """
        mu, std = self.model.gaussian_params(x)
        shape = (mu.shape[0], n, mu.shape[1])
        if per_item_noise:
            noise = torch.stack([_item_noise(item, shape[1:]) for item in x]).to(mu)
        else:
            noise = torch.randn(shape, device=mu.device, dtype=mu.dtype)
        return mu.unsqueeze(1) + std.unsqueeze(1) * noise, mu, std

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        x = 2 * images - 1
        z, mu, std = self.sample(x, self.train_samples)
        logits = self.decoder(z)
        cross_entropy = F.cross_entropy(logits.flatten(0, 1), labels.repeat_interleave(self.train_samples))
        out = self.loss(x, z, mu=mu, std=std)
        main = self.optimizer("main")
        main.zero_grad()
        self.manual_backward(cross_entropy + out["loss"])
        main.step()
        self.adversary_step(out)
        self.log("train/cross_entropy", cross_entropy.detach(), prog_bar=True)
        self.log("train/mi_term", out["loss"].detach())
        for key in ("mi", "kl"):
            if key in out:
                self.log(f"train/{key}", out[key])

    def on_train_epoch_start(self) -> None:
        # The per-epoch decay is stepped when the next epoch starts, not when one ends: the epoch-end
        # checkpoint is written before a module's on_train_epoch_end, so a step there would be
        # missing from it and a resumed run would decay one epoch late.
        scheduler = self.lr_schedulers()
        if scheduler is not None and self.current_epoch > 0:
            with warnings.catch_warnings():
                # after a resume no optimizer step has run in this process yet, so torch warns that
                # the schedule's first value is skipped; it is not (the schedule's state was restored)
                warnings.filterwarnings(
                    "ignore", message="Detected call of `lr_scheduler.step", category=UserWarning
                )
                scheduler.step()

    def test_error_pct(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
        """(misclassified, total) with the softmax averaged over eval_samples draws of z."""
        z, _, _ = self.sample(2 * images - 1, self.eval_samples, per_item_noise=True)
        predictions = self.decoder(z).softmax(-1).mean(1).argmax(-1)
        return int((predictions != labels).sum()), len(labels)

    def curve_metrics(self, loader) -> dict[str, float]:
        """Test error (%) over a loader, for experiments.runner.curves.TestCurve."""
        wrong = total = 0
        for images, labels in loader:
            w, n = self.test_error_pct(images.to(self.device), labels.to(self.device))
            wrong, total = wrong + w, total + n
        return {"test_error_pct": 100.0 * wrong / max(total, 1)}

    def on_test_start(self) -> None:
        super().on_test_start()
        # the trivial baseline: always answer the most frequent training label
        train_set = getattr(self.trainer.datamodule, "train_set", None)
        if train_set is None:
            self.trainer.datamodule.setup("fit")
            train_set = self.trainer.datamodule.train_set
        labels = getattr(train_set, "targets", None)
        if labels is None:
            labels = torch.as_tensor([int(train_set[i][1]) for i in range(len(train_set))])
        self.majority_class = int(torch.as_tensor(labels).bincount().argmax())

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        z, _, _ = self.sample(2 * images - 1, self.eval_samples, per_item_noise=True)
        probabilities = self.decoder(z).softmax(-1).mean(1)
        self.accuracy.update(probabilities, labels)
        self.baseline_accuracy.update(torch.full_like(labels, self.majority_class), labels)

    def on_test_epoch_end(self) -> None:
        self.log("test/error_pct", 100 * (1 - self.accuracy.compute()))
        self.log("test/baseline_error_pct", 100 * (1 - self.baseline_accuracy.compute()))
        self.accuracy.reset()
        self.baseline_accuracy.reset()
