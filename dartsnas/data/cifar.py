"""CIFAR-10 and CIFAR-100 from their official python batches (or the tarball that holds them)."""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from .download import DataError, md5sum
from .imageset import ImageSet
from .locate import SOURCES, Wanted, cache_data, cache_home, fetch_official, find, source_url, words


_CIFAR = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "meta": "batches.meta",
        "names": b"label_names",
        "labels": b"labels",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "meta": "meta",
        "names": b"fine_label_names",
        "labels": b"fine_labels",
        "train": ["train"],
        "test": ["test"],
    },
}


# What the official CIFAR pickles (Python 2's and 3's) may name: numpy arrays and bytes, nothing that runs.
_CIFAR_GLOBALS = {
    (module, name)
    for core in ("numpy.core", "numpy._core")
    for module, name in (
        (f"{core}.multiarray", "_reconstruct"),
        (f"{core}.multiarray", "scalar"),
        (f"{core}.numeric", "_frombuffer"),
    )
}
_CIFAR_GLOBALS |= {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles arrays, numbers, bytes and containers only: a pickle naming any other global (a function
    that would run, as os.system) is refused before it is called."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(
                f"it names {module}.{name}, which an official CIFAR batch never does (refused unrun)"
            )
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    # The official CIFAR distribution is Python pickles; these are the files the user pointed us at, read
    # with an unpickler that builds data only, so a file that carries code cannot run it.
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except (
        OSError,
        EOFError,
        pickle.UnpicklingError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        RecursionError,
    ) as error:  # what a damaged pickle raises, by where it ends
        raise DataError(
            f"cannot read {path} ({str(error)[:200]}); the file is damaged or not an official CIFAR "
            f"batch: replace it from the official tarball (or delete it and load with download=true)."
        ) from None
    if not isinstance(batch, dict):
        raise DataError(
            f"{path} holds a {type(batch).__name__}, not an official CIFAR batch (a dict); replace it "
            "from the official tarball."
        )
    return batch


def _find_cifar(name: str, split: str, root, download: bool) -> Path:
    layout = _CIFAR[name]
    needed = layout[split] + [layout["meta"]]
    (tarball,) = SOURCES[name]["files"]

    def present(base: Path) -> Path | None:
        for folder in (base, base / layout["folder"]):  # a place may be the extracted folder or its parent
            if all((folder / f).is_file() for f in needed):
                return folder
        if not (base / tarball).is_file():
            return None
        extracted = _extraction_folder(name, base, base / tarball)
        if not all((extracted / layout["folder"] / f).is_file() for f in needed):  # not extracted by an earlier load
            if md5sum(base / tarball) != SOURCES[name]["files"][tarball]:
                raise DataError(
                    f"{base / tarball} does not match the official md5; delete it and load again with download=true."
                )
            _extract(base / tarball, extracted)
        return extracted / layout["folder"]

    files = f"{words(needed)} (or {tarball})"
    wanted = Wanted(files, tarball, source_url(name, tarball), subfolders=(layout["folder"],))
    return find(name, split, root, download, present, lambda folder: fetch_official(name, tarball, folder), wanted)


def _extraction_folder(name: str, base: Path, tarball: Path) -> Path:
    """Where a tarball is extracted: beside it in the data cache, which is ours; any other folder (data_dir,
    $DARTSNAS_DATA) is the user's and is never written to, so its tarball is extracted under the cache,
    keyed by the tarball."""
    if base.resolve() == cache_data(name).resolve():
        return base
    stat = tarball.stat()
    key = hashlib.sha1(f"{tarball.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_home() / "extracted" / f"{name}-{key}"


def _extract(archive: Path, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(folder, filter="data")  # "data" refuses absolute paths, links out and devices
    except (OSError, EOFError, tarfile.TarError) as error:
        raise DataError(f"cannot extract {archive} ({error}); delete it and load again with download=true.") from None


def _load_cifar(name: str, split: str, root, download: bool) -> ImageSet:
    layout = _CIFAR[name]
    folder = _find_cifar(name, split, root, download)
    images, labels = [], []
    for filename in layout[split]:
        batch = _unpickle(folder / filename)
        try:
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(batch[layout["labels"]])
        except (KeyError, ValueError, TypeError) as error:
            raise DataError(
                f"{folder / filename} is not an official {name} batch ({error!r}); "
                f"replace it from the official tarball."
            ) from None
    meta = _unpickle(folder / layout["meta"])
    try:
        classes = [c.decode() for c in meta[layout["names"]]]
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as error:
        raise DataError(
            f"{folder / layout['meta']} is not an official {name} meta file ({error!r}); "
            f"replace it from the official tarball."
        ) from None
    return ImageSet(torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64), classes)


def load_cifar10(split: str, root=None, download: bool = False) -> ImageSet:
    return _load_cifar("cifar10", split, root, download)


def load_cifar100(split: str, root=None, download: bool = False) -> ImageSet:
    return _load_cifar("cifar100", split, root, download)
