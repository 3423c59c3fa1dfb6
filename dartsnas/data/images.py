"""The registry of image datasets: `load_images(name, split)` -> one whole split as an `ImageSet`.

    train = load_images("cifar10", "train", download=True).to("cuda")

Each loader takes (split, root, download, **its options); `root` is where the user put the data, else it is
found as `locate.py` says.
"""

from __future__ import annotations

import inspect

from .builtin import load_digits, load_fake
from .cifar import load_cifar10, load_cifar100
from .download import DataError
from .folder import load_imagefolder
from .idx import load_fashion_mnist, load_mnist
from .imageset import SPLITS, ImageSet


DATASETS = {
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "digits": load_digits,
    "imagefolder": load_imagefolder,
    "fake": load_fake,
}


def option_names(loader) -> list[str]:
    """The options a loader takes beyond (split, root, download): what `data_options` may set."""
    parameters = list(inspect.signature(loader).parameters)
    return [p for p in parameters if p not in ("split", "root", "download")]


def load_images(name: str, split: str = "train", root=None, download: bool = False, **options) -> ImageSet:
    """One whole split of a registered dataset, on the CPU."""
    loader = DATASETS.get(name)
    if loader is None:
        raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}.")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} for dataset {name!r}; valid splits: {', '.join(SPLITS)}.")
    allowed = option_names(loader)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DataError(
            f"dataset {name!r} has no option {', '.join(unknown)}; its options are: {', '.join(allowed) or 'none'}."
        )
    return loader(split, root, download, **options)
