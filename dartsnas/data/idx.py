"""MNIST and Fashion-MNIST from their official IDX files (gzipped or not)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from .download import DataError
from .imageset import ImageSet
from .locate import HOW_TO_GET, SOURCES, Wanted, fetch_official, find, words


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


_MNIST_CLASSES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
}


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (gzipped or not): magic 0x0000 08 <ndim>, big-endian dims, data."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read {path} ({error}); delete it and load again with download=true.") from None
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:4] != bytes((0, 0, 0x08, ndim)):
        raise DataError(
            f"{path} is not an IDX file of {ndim}-d unsigned bytes (magic {raw[:4].hex()}, "
            f"expected 000008{ndim:02x}); delete it and load again with download=true."
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(dims)):
        raise DataError(
            f"{path} is truncated ({data.size} bytes of data, header says {dims}); delete it and "
            f"load again with download=true."
        )
    return data.reshape(dims)


def _idx_file(folder: Path, filename: str) -> Path | None:
    for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _load_idx_dataset(name: str, split: str, root, download: bool) -> ImageSet:
    wanted = _IDX_FILES[split]

    def present(folder: Path) -> Path | None:
        return folder if all(_idx_file(folder, f) for f in wanted) else None

    def fetch(folder: Path) -> None:
        for f in wanted:
            if not _idx_file(folder, f):
                fetch_official(name, f, folder)

    files = words(list(wanted))
    folder = find(
        name,
        split,
        root,
        download,
        present,
        fetch,
        Wanted(files, files, SOURCES[name]["url"], other=HOW_TO_GET.get(name, "")),
    )
    found = [_idx_file(folder, f) for f in wanted]
    images, labels = _read_idx(found[0], 3), _read_idx(found[1], 1)
    if len(images) != len(labels):
        raise DataError(
            f"{found[0]} has {len(images)} images but {found[1]} has {len(labels)} labels; "
            f"one of them is from another release: delete both and load again with download=true."
        )
    return ImageSet(
        torch.from_numpy(images.copy()).unsqueeze(1),
        torch.from_numpy(labels.astype(np.int64)),
        list(_MNIST_CLASSES[name]),
    )


def load_mnist(split: str, root=None, download: bool = False) -> ImageSet:
    return _load_idx_dataset("mnist", split, root, download)


def load_fashion_mnist(split: str, root=None, download: bool = False) -> ImageSet:
    return _load_idx_dataset("fashion_mnist", split, root, download)
