"""Datasets of both papers: generated (bar, masked crops, synthetic stereo) and real (KITTI raw,
CIFAR, MNIST) behind plain torch Datasets; see docs/data.md and docs/data_real.md."""

from deepmi.data.bar import BarAlignmentDataset, generate_bar_pairs
from deepmi.data.cifar import CIFAR
from deepmi.data.errors import CorruptDatasetError, DatasetNotFoundError
from deepmi.data.kitti import KittiRawStereo
from deepmi.data.masked_crops import MaskedCropsDataset, generate_masked_pairs
from deepmi.data.mnist import MNIST
from deepmi.data.synthetic_stereo import SyntheticStereoDataset, generate_synthetic_stereo

__all__ = [
    "CIFAR",
    "MNIST",
    "BarAlignmentDataset",
    "CorruptDatasetError",
    "DatasetNotFoundError",
    "KittiRawStereo",
    "MaskedCropsDataset",
    "SyntheticStereoDataset",
    "generate_bar_pairs",
    "generate_masked_pairs",
    "generate_synthetic_stereo",
]
