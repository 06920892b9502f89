"""MIGE Table 2 (Sec. 4.3): Information Bottleneck on permutation-invariant MNIST."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from experiments.base import OptimizerFactory, TaskModule


class BottleneckModule(TaskModule):
    """Minimise H(y|z) + beta * I(z; x) (MIGE Eq. 7) with a stochastic Gaussian encoder.

    H(y|z) is the decoder's cross-entropy on reparameterised samples z ~ q(z|x); the beta * I(z; x)
    term (or its gradient) comes from the loss: VIB's KL bound, MINE-IB, or MIGE-IB. Inputs are
    scaled to [-1, 1] as in Alemi et al.'s code. Test: misclassification rate (%) of the decoder's
    softmax averaged over ``eval_samples`` draws of z (Alemi et al. use 12).
    """

    def __init__(
        self,
        *args,
        decoder: nn.Module,
        adversary_optimizer: OptimizerFactory | None = None,
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
        self.adversary_optimizer_factory = adversary_optimizer or self.optimizer_factory
        # MIGE-IB's SSGE of q(z|x) needs several draws per input; the objective says how many
        self.train_samples = max(train_samples, getattr(self.loss, "samples_per_input", 1))
        self.eval_samples = eval_samples
        self.accuracy = MulticlassAccuracy(num_classes=n_classes, average="micro")

    def configure_optimizers(self):
        main = self.optimizer_factory(
            [*self.model.parameters(), *self.decoder.parameters(), *self.loss.main_parameters()]
        )
        optimizers = [main]
        if self.loss.adversary_parameters():
            optimizers.append(self.adversary_optimizer_factory(self.loss.adversary_parameters()))
        if self.scheduler_factory is None:
            return optimizers
        return optimizers, [self.scheduler_factory(main)]

    def sample(self, x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, n, K) draws of z and the (B, K) mean and std of q(z|x)."""
        mu, std = self.model.gaussian_params(x)
        z = mu.unsqueeze(1) + std.unsqueeze(1) * torch.randn(
            mu.shape[0], n, mu.shape[1], device=mu.device, dtype=mu.dtype
        )
        return z, mu, std

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        x = 2 * images - 1
        z, mu, std = self.sample(x, self.train_samples)
        logits = self.decoder(z)
        cross_entropy = F.cross_entropy(logits.flatten(0, 1), labels.repeat_interleave(self.train_samples))
        out = self.loss(x, z, mu=mu, std=std)
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        optimizers[0].zero_grad()
        self.manual_backward(cross_entropy + out["loss"])
        optimizers[0].step()
        if len(optimizers) > 1:
            optimizers[1].zero_grad()
            self.manual_backward(out["adversary_loss"])
            optimizers[1].step()
        self.log("train/cross_entropy", cross_entropy.detach(), prog_bar=True)
        self.log("train/mi_term", out["loss"].detach())
        for key in ("mi", "kl"):
            if key in out:
                self.log(f"train/{key}", out[key])

    def on_train_epoch_end(self) -> None:
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        z, _, _ = self.sample(2 * images - 1, self.eval_samples)
        probabilities = self.decoder(z).softmax(-1).mean(1)
        self.accuracy.update(probabilities, labels)

    def on_test_epoch_end(self) -> None:
        self.log("test/error_pct", 100 * (1 - self.accuracy.compute()))
        self.accuracy.reset()
