"""Errors raised by the real-data loaders (KITTI, CIFAR, MNIST) and their downloads.

All subclass the built-in exception a caller would already catch, so ``except FileNotFoundError``
and ``except ValueError`` keep working; a failed download is a :class:`DatasetNotFoundError` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where the loader looks for them.

    The message says what to download, from where, and the layout to extract it into.
    """

    def __init__(self, dataset: str, missing: str | Path, how_to_get: str) -> None:
        self.dataset = dataset
        self.missing = Path(missing)
        self.how_to_get = how_to_get
        super().__init__(f"{dataset}: {missing} not found.\n{how_to_get.strip()}")

    def __reduce__(self):  # keep the custom __init__ picklable (DataLoader workers re-raise it)
        return (type(self), (self.dataset, self.missing, self.how_to_get))


class DownloadError(DatasetNotFoundError):
    """A dataset's files are missing and downloading them failed (no network, server down, moved).

    The message lists each URL tried with its error, then what to fetch by hand and where to put it.
    """

    def __init__(self, dataset: str, missing: str | Path, how_to_get: str, failures: Sequence[str]) -> None:
        self.dataset = dataset
        self.missing = Path(missing)
        self.how_to_get = how_to_get
        self.failures = list(failures)
        tried = "\n".join(f"  {f}" for f in self.failures) or "  (no URL to try)"
        FileNotFoundError.__init__(
            self,
            f"{dataset}: {missing} not found, and downloading it failed:\n{tried}\n"
            f"Without network access, fetch it by hand: {how_to_get.strip()}",
        )

    def __reduce__(self):
        return (type(self), (self.dataset, self.missing, self.how_to_get, self.failures))


class CorruptDatasetError(ValueError):
    """A dataset file exists but its content is not the expected format (truncated, wrong magic, ...)."""

    def __init__(self, path: str | Path, problem: str, fix: str = "delete it and download it again") -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{path}: {problem}; {fix}.")

    def __reduce__(self):
        return (type(self), (self.path, self.problem, self.fix))
