"""Datasets with no files to find: scikit-learn's digits (shipped with it) and random images for benchmarks."""

from __future__ import annotations

import numpy as np
import torch

from .download import DataError
from .imageset import SPLITS, ImageSet


def load_digits(split: str, root=None, download: bool = False) -> ImageSet:
    """scikit-learn's 1797 8x8 digits (shipped with it, nothing to fetch); 300 of them form "test"."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    # No official split: a fixed permutation (legacy RandomState streams never change) keeps it the same
    # for every seed and every numpy release, so test accuracy is comparable between runs.
    order = np.random.RandomState(0).permutation(len(bunch.target))
    chosen = np.sort(order[:300] if split == "test" else order[300:])
    pixels = np.rint(bunch.images[chosen] * (255 / 16)).astype(np.uint8)  # values are 0..16
    return ImageSet(
        torch.from_numpy(pixels).unsqueeze(1),
        torch.from_numpy(bunch.target[chosen].astype(np.int64)),
        [str(d) for d in range(10)],
    )


def load_fake(
    split: str, root=None, download: bool = False, shape=(3, 32, 32), num_classes: int = 10, size: int | None = None
) -> ImageSet:
    """Random images for benchmarks: same pixels every time (fixed seed per split), made in well under a second."""
    count = size if size is not None else (50000 if split == "train" else 10000)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1 or count < 1 or num_classes < 1:
        raise DataError(
            f"fake data needs shape=(C, H, W), size >= 1 and num_classes >= 1; got shape={shape}, "
            f"size={count}, num_classes={num_classes}."
        )
    rng = np.random.default_rng(SPLITS.index(split))  # numpy makes uint8 noise ~10x faster than torch.randint
    images = rng.integers(0, 256, (count, *shape), dtype=np.uint8)
    labels = rng.integers(0, num_classes, count, dtype=np.int64)
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels), [str(c) for c in range(num_classes)])
