"""One LightningDataModule for every experiment: a dataset factory called per split."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochSeededSampler(Sampler[int]):
    """Shuffles with a permutation drawn from (seed, epoch) alone.

    Lightning calls ``set_epoch`` before every epoch, so the order of epoch k is the same whether
    the run went straight through or resumed from a checkpoint: exact resume without restoring
    the global RNG.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + 100_003 * self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


class PairDataModule(L.LightningDataModule):
    """Wraps ``dataset_factory(split=...)`` (a Hydra partial) into train and test loaders.

    There is no validation split: the papers train on the train split and report on the test
    split, and checkpoints are kept by epoch, not chosen on test data.
    """

    def __init__(
        self,
        dataset_factory: Callable[..., Dataset],
        batch_size: int = 8,
        num_workers: int = 0,
        shuffle_seed: int | None = 0,
        test_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"loader.batch_size must be >= 1, got {batch_size}")
        self.dataset_factory = dataset_factory
        self.batch_size = batch_size
        self.test_batch_size = test_batch_size or batch_size
        self.num_workers = num_workers
        # no seed: a fresh random order per run, still resumable (the seed is kept on the module)
        self.shuffle_seed = shuffle_seed if shuffle_seed is not None else int(torch.seed() % 2**31)
        self.train_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def prepare_data(self) -> None:
        # Runs on one process per node: generates and caches synthetic data once.
        self.dataset_factory(split="train")
        self.dataset_factory(split="test")

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self.dataset_factory(split="train")
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = self.dataset_factory(split="test")

    def _loader(self, dataset: Dataset, batch_size: int, sampler: Sampler | None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        sampler = EpochSeededSampler(len(self.train_set), self.shuffle_seed)
        return self._loader(self.train_set, self.batch_size, sampler)

    def full_test_dataloader(self) -> DataLoader:
        """The whole test split in order, on any rank (per-epoch curves)."""
        assert self.test_set is not None
        return self._loader(self.test_set, self.test_batch_size, None)

    def test_dataloader(self) -> DataLoader:
        assert self.test_set is not None
        # Under DDP, Lightning's default DistributedSampler pads the split so every rank gets as many
        # items, counting some twice. This sampler gives each item to exactly one rank; the test
        # metrics (torchmetrics) are then summed across ranks, so the result equals one process's.
        sampler = None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            sampler = UnrepeatedDistributedSampler(self.test_set, shuffle=False)
        return self._loader(self.test_set, self.test_batch_size, sampler)
