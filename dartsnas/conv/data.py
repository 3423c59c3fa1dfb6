"""Datasets held whole as tensors, and batched augmentation on the tensors' device.

Small image datasets (CIFAR, MNIST) fit in GPU memory many times over, so, as airbench does, each split is
loaded once as one uint8 tensor and every epoch is cut and augmented with batched tensor ops on the device:
no DataLoader, no worker processes, no per-image Python in the training loop.

    train = load_images("cifar10", "train", download=True).to("cuda")
    mean, std = channel_stats(train.images)
    augment = Augment(mean, std, crop_padding=4, flip=True, cutout=16)
    for x, y in batches(train, 64, generator, augment): ...

Every random number (shuffle order, crop offsets, flips, cutout centres) comes from one CPU
`torch.Generator`, so its state can be saved in a checkpoint and a run repeats bit for bit on any device.

Where data lives: `root=` when given; otherwise `$DARTSNAS_DATA/<name>`, which defaults to
`~/.cache/dartsnas/data/<name>` (`$DARTSNAS_CACHE` moves the whole `~/.cache/dartsnas`).
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import io
import os
import pickle
import struct
import tarfile
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
import torch.nn.functional as F

from ..core.download import DataError, cache_home, data_home, fetch_file, md5sum

SPLITS = ("train", "test")


@dataclass
class ImageSet:
    """One split of a dataset, whole: uint8 images N x C x H x W and int64 labels N."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 N x C x H x W, got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be int64 of length {len(self.images)}, got {self.labels.dtype} {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def in_channels(self) -> int:
        return self.images.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.images.shape[2:])

    @property
    def resolution(self) -> int:
        return self.images.shape[2]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device) -> ImageSet:
        return ImageSet(self.images.to(device), self.labels.to(device), list(self.classes))

    def subset(self, indices: torch.Tensor) -> ImageSet:
        indices = torch.as_tensor(indices, device=self.images.device)
        return ImageSet(self.images[indices].contiguous(), self.labels[indices], list(self.classes))


# ----------------------------------------------------------------------------------------------- where data lives


def _default_root(name: str, root) -> Path:
    return Path(root).expanduser() if root is not None else data_home() / name


def _list_paths(paths) -> str:
    # One line: the command line prints an error as one line, "dartsnas <command>: error: ...".
    return " " + " and ".join(str(p) for p in paths) + "."


# -------------------------------------------------------------------------------------------------------- download

# Official files and their md5s. Module-level so a mirror (or a test's file:// folder) can replace "url".
SOURCES = {
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/",
        "files": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
    },
    "cifar100": {
        "url": "https://www.cs.toronto.edu/~kriz/",
        "files": {"cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85"},
    },
    "mnist": {
        "url": "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "files": {
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
            "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
            "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
        },
    },
    "fashion_mnist": {
        "url": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "files": {
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
            "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
            "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
        },
    },
}


def _source_url(name: str, filename: str) -> str:
    return SOURCES[name]["url"].rstrip("/") + "/" + filename


def _download(name: str, filename: str, folder: Path) -> Path:
    """Fetch one official file of a dataset into folder, checked against its md5."""
    return fetch_file(_source_url(name, filename), folder / filename, SOURCES[name]["files"][filename])


# ------------------------------------------------------------------------------------------------- CIFAR-10 / 100

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
    base = _default_root(name, root)
    needed = layout[split] + [layout["meta"]]
    candidates = [base, base / layout["folder"]]  # root may be the extracted folder or its parent
    for folder in candidates:
        if all((folder / f).is_file() for f in needed):
            return folder
    (tarball,) = SOURCES[name]["files"]
    if (base / tarball).is_file():
        extracted = _extraction_folder(name, base, base / tarball) / layout["folder"]
        if all((extracted / f).is_file() for f in needed):  # extracted by an earlier load
            return extracted
    if not (base / tarball).is_file():
        if not download:
            raise DataError(
                f"{name} {split} split not found: looked for {', '.join(needed)} in:{_list_paths(candidates)} "
                f"Pass download=true (--set download=true) to fetch {_source_url(name, tarball)} into {base}, "
                f"or put that tarball or its extracted {layout['folder']}/ folder there."
            )
        _download(name, tarball, base)
    elif md5sum(base / tarball) != SOURCES[name]["files"][tarball]:
        raise DataError(
            f"{base / tarball} does not match the official md5; delete it and load again with download=true."
        )
    folder = _extraction_folder(name, base, base / tarball)
    _extract(base / tarball, folder)
    return folder / layout["folder"]


def _extraction_folder(name: str, base: Path, tarball: Path) -> Path:
    """Where a tarball is extracted: beside it in the data cache, which is ours; a folder the user gave is
    theirs and is never written to, so its tarball is extracted under the cache, keyed by the tarball."""
    if base.resolve() == (data_home() / name).resolve():
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


# --------------------------------------------------------------------------------------- MNIST / Fashion-MNIST

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# Where system packages put the files (Debian's dataset-fashion-mnist); searched after the cache dir.
_SYSTEM_DIRS = {"mnist": Path("/usr/share/datasets/mnist"), "fashion_mnist": Path("/usr/share/datasets/fashion-mnist")}

_HOW_TO_GET = {"fashion_mnist": "apt-get install -y dataset-fashion-mnist (Debian/Ubuntu), or "}

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
    if root is not None:
        candidates = [Path(root).expanduser()]
    else:
        candidates = [data_home() / name, _SYSTEM_DIRS[name]]
    for folder in candidates:
        found = [_idx_file(folder, f) for f in wanted]
        if all(found):
            break
    else:
        if not download:
            raise DataError(
                f"{name} {split} split not found: looked for {' and '.join(wanted)} in:{_list_paths(candidates)} "
                f"To get it: {_HOW_TO_GET.get(name, '')}pass download=true (--set download=true) to fetch it "
                f"from {SOURCES[name]['url']} into {candidates[0]}."
            )
        found = [_idx_file(candidates[0], f) or _download(name, f, candidates[0]) for f in wanted]
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


# ------------------------------------------------------------------------------------------------------- digits


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


# -------------------------------------------------------------------------------------------------- imagefolder


def _image_suffixes() -> set[str]:
    from PIL import Image

    return set(Image.registered_extensions())


def _decode_image(data: bytes, mode: str, size: int | None) -> np.ndarray:
    """One encoded image -> H x W (mode "L") or H x W x 3 (mode "RGB") uint8 array."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image = image.convert(mode)
        if size is not None:
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(image)


def _decode_named(item, mode: str, size: int | None) -> np.ndarray:
    from PIL import UnidentifiedImageError

    name, data = item
    try:
        return _decode_image(data, mode, size)
    except Exception as error:  # Pillow raises many kinds; all mean the same thing to the user
        # Pillow's "cannot identify image file <_io.BytesIO object at 0x...>" names no file: say what it means.
        why = "not an image Pillow can read" if isinstance(error, UnidentifiedImageError) else str(error)[:200]
        raise DataError(
            f"cannot read image {name} ({why}): it is damaged, truncated or not an image; remove or fix that file."
        ) from None


def _decode_all(items, count: int, mode: str, size: int | None) -> np.ndarray:
    """Decode (position, name, bytes) items into one N x H x W [x C] array, checking all sizes agree."""
    out, first = None, None
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # Pillow decodes without the GIL
        for chunk in _chunks(items, 256):
            arrays = pool.map(lambda item: _decode_named(item, mode, size), [(n, d) for _, n, d in chunk])
            for (position, name, _), array in zip(chunk, arrays):
                if out is None:
                    out, first = np.empty((count, *array.shape), np.uint8), (name, array.shape)
                if array.shape != first[1]:
                    raise DataError(
                        f"images differ in size: {name} is {_wxh(array.shape)} but {first[0]} is "
                        f"{_wxh(first[1])}. Pass the imagefolder option size=N to resize every image to N x N."
                    )
                out[position] = array
    return out


def _chunks(iterable, n: int):
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _wxh(shape) -> str:
    return f"{shape[1]}x{shape[0]}"


def _is_image_name(name: str, suffixes: set[str]) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in suffixes


def _folder_listing(root: Path, split: str, limit: int | None):
    """-> classes, [(path, label)] for root/<split>/<class>/<image>, classes from both splits' folders."""
    if not (root / split).is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataError(
            f"no '{split}' folder in {root} (it has: {', '.join(found) or 'no folders'}). Lay images "
            f"out as {root}/train/<class>/<image> and {root}/test/<class>/<image>."
        )
    # Classes come from both splits, so a class missing from one split cannot shift the other's labels.
    classes = sorted({p.name for s in SPLITS if (root / s).is_dir() for p in (root / s).iterdir() if p.is_dir()})
    suffixes = _image_suffixes()
    files = []
    for label, cls in enumerate(classes):
        folder = root / split / cls
        names = sorted(n for n in os.listdir(folder) if _is_image_name(n, suffixes)) if folder.is_dir() else []
        if folder.is_dir() and not names:  # a class the network would be asked to learn from no image
            raise DataError(
                f"class folder {folder} holds no images (.png, .jpg, ... files); add its images or remove the folder."
            )
        files += [(folder / n, label) for n in names[:limit]]
    return classes, files


def _archive_listing(tar: tarfile.TarFile, split: str, limit: int | None):
    """-> classes, [(member, label)] for members <anything/><split>/<class>/<image> of an open archive."""
    suffixes = _image_suffixes()
    by_class: dict[str, list[tarfile.TarInfo]] = {}
    classes = set()
    for member in tar:
        parts = PurePosixPath(member.name).parts
        if member.isfile() and len(parts) >= 3 and parts[-3] in SPLITS and _is_image_name(parts[-1], suffixes):
            classes.add(parts[-2])
            if parts[-3] == split:
                by_class.setdefault(parts[-2], []).append(member)
    classes = sorted(classes)
    members = []
    for label, cls in enumerate(classes):
        chosen = sorted(by_class.get(cls, []), key=lambda m: m.name)[:limit]
        members += [(m, label) for m in chosen]
    return classes, members


def _read_folder(root: Path, split: str, mode: str, size, limit) -> tuple[np.ndarray, list, list[str]]:
    classes, files = _folder_listing(root, split, limit)
    if not files:
        raise DataError(
            f"no images in {root / split}: expected {root / split}/<class>/<image> "
            f"(.png, .jpg, ... files) in class folders."
        )
    items = ((i, str(path), path.read_bytes()) for i, (path, _) in enumerate(files))
    return _decode_all(items, len(files), mode, size), [label for _, label in files], classes


def _read_archive(path: Path, split: str, mode: str, size, limit) -> tuple[np.ndarray, list, list[str]]:
    try:
        with tarfile.open(path, "r:*") as tar:
            classes, members = _archive_listing(tar, split, limit)
            if not members:
                raise DataError(
                    f"no images under {split}/<class>/ in the archive {path}; expected members "
                    f"like {split}/<class>/<image>.png."
                )
            # Read in archive order, so a compressed archive is decompressed in one forward pass.
            order = sorted(range(len(members)), key=lambda i: members[i][0].offset_data)
            items = ((i, f"{path}:{members[i][0].name}", tar.extractfile(members[i][0]).read()) for i in order)
            images = _decode_all(items, len(members), mode, size)
    except (OSError, EOFError, tarfile.TarError) as error:
        raise DataError(f"cannot read the archive {path} ({error}); check it is a whole .tar/.tar.gz.") from None
    return images, [label for _, label in members], classes


def _is_tarfile(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, EOFError):  # a .tar.gz cut short fails inside gzip, not in tarfile
        return False


def _check_classes(root: Path, split: str, classes: list[str], labels: list[int]) -> None:
    """A classifier needs two classes: with one, every loss is 0 and every accuracy 1.0, and a search would
    hand on a cell it learnt nothing about. Training images must show two classes for the same reason."""
    if len(classes) < 2:
        raise DataError(
            f"{root} has {len(classes)} class ({', '.join(classes)}); classification needs at least 2 "
            f"classes: put each class's images in its own folder, {root}/{split}/<class>/<image>."
        )
    present = sorted({classes[label] for label in labels})
    if split == "train" and len(present) < 2:
        raise DataError(
            f"the training images of {root} are all of class {present[0]}; classification needs at "
            f"least 2 classes: add the other classes' images under {root}/train/<class>/."
        )


def _imagefolder_cache_path(root: Path, split: str, options: dict) -> Path:
    # Keyed by the archive's identity (size, mtime) or, for a folder, by every chosen file's, so editing the
    # data invalidates the cache. Decoding 50,000 JPEGs takes minutes; loading the tensor takes a second.
    if root.is_file():
        stat = root.stat()
        identity = f"{stat.st_size}:{stat.st_mtime_ns}"
    else:
        _, files = _folder_listing(root, split, options["limit_per_class"])
        identity = "|".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p, _ in files)
    key = hashlib.sha1(f"v1|{root}|{identity}|{sorted(options.items())}".encode()).hexdigest()
    return cache_home() / "imagefolder" / f"{key}-{split}.pt"


def _load_cached(path: Path) -> ImageSet | None:
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, weights_only=True)
        return ImageSet(saved["images"], saved["labels"], list(saved["classes"]))
    except Exception as error:  # a damaged cache is only a lost speed-up: decode again and overwrite it
        warnings.warn(f"ignoring unreadable cache {path} ({error}); decoding the images again", stacklevel=2)
        return None


def _save_cached(path: Path, data: ImageSet) -> None:
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save({"images": data.images, "labels": data.labels, "classes": data.classes}, f)
        os.replace(temporary, path)  # atomic: a reader never sees half a file
    except OSError as error:
        warnings.warn(
            f"could not write the decoded-image cache {path} ({error}); the next load decodes again", stacklevel=2
        )
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


def load_imagefolder(
    split: str,
    root=None,
    download: bool = False,
    grayscale: bool = False,
    size: int | None = None,
    limit_per_class: int | None = None,
    cache: bool = True,
) -> ImageSet:
    """Your own images as root/<split>/<class>/<image>; root may be a folder or a .tar/.tar.gz/.tgz of one.

    grayscale: read as one channel ("L") instead of RGB. size: resize every image to size x size.
    limit_per_class: only the first K files of each class (sorted by name), for quick runs.
    cache: keep the decoded split under ~/.cache/dartsnas/imagefolder/. download is ignored (nothing to fetch).
    """
    if root is None:
        raise DataError(
            "the imagefolder dataset reads your own images: set data_dir=DIR (--set data_dir=DIR; "
            "root= in load_images) to a folder or .tar.gz laid out as DIR/train/<class>/<image> and "
            "DIR/test/<class>/<image>."
        )
    root = Path(root).expanduser().resolve()
    if not root.exists():
        raise DataError(
            f"image folder {root} does not exist; set root to a folder or .tar.gz laid out as "
            f"<root>/train/<class>/<image> and <root>/test/<class>/<image>."
        )
    if limit_per_class is not None and not (isinstance(limit_per_class, int) and limit_per_class >= 1):
        raise DataError(f"limit_per_class must be a positive number of images, got {limit_per_class!r}.")
    if size is not None and not (isinstance(size, int) and not isinstance(size, bool) and size >= 1):
        raise DataError(
            f"size must be a positive number of pixels (every image is resized to size x size), got {size!r}."
        )
    is_archive = root.is_file()
    if is_archive and not _is_tarfile(root):
        raise DataError(
            f"{root} is neither a folder nor a whole .tar/.tar.gz/.tgz archive; check the file is "
            f"complete, or give the folder it was made from."
        )
    mode = "L" if grayscale else "RGB"
    options = {"mode": mode, "size": size, "limit_per_class": limit_per_class}
    cache_path = _imagefolder_cache_path(root, split, options) if cache else None
    if cache_path is not None and (cached := _load_cached(cache_path)) is not None:
        return cached
    read = _read_archive if is_archive else _read_folder
    pixels, labels, classes = read(root, split, mode, size, limit_per_class)
    _check_classes(root, split, classes, labels)
    images = torch.from_numpy(pixels)
    images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2).contiguous()
    data = ImageSet(images, torch.tensor(labels, dtype=torch.int64), classes)
    if cache_path is not None:
        _save_cached(cache_path, data)
    return data


# --------------------------------------------------------------------------------------------------------- fake


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


# ------------------------------------------------------------------------------------------------------ registry

DATASETS = {
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "digits": load_digits,
    "imagefolder": load_imagefolder,
    "fake": load_fake,
}


def _option_names(loader) -> list[str]:
    parameters = list(inspect.signature(loader).parameters)
    return [p for p in parameters if p not in ("split", "root", "download")]


def load_images(name: str, split: str = "train", root=None, download: bool = False, **options) -> ImageSet:
    """One whole split of a registered dataset, on the CPU."""
    loader = DATASETS.get(name)
    if loader is None:
        raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}.")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r} for dataset {name!r}; valid splits: {', '.join(SPLITS)}.")
    allowed = _option_names(loader)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DataError(
            f"dataset {name!r} has no option {', '.join(unknown)}; its options are: {', '.join(allowed) or 'none'}."
        )
    return loader(split, root, download, **options)


# ------------------------------------------------------------------------------------ statistics and augmentation


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 N x C x H x W images, in [0, 1] units.

    Sums run in float64 over chunks of ~4M values, so 50,000 CIFAR images never need a float copy at once.
    """
    n, c, h, w = images.shape
    total = torch.zeros(c, dtype=torch.float64, device=images.device)
    total_sq = torch.zeros_like(total)
    step = max(1, (1 << 22) // (c * h * w))
    for start in range(0, n, step):
        x = images[start : start + step].to(torch.float64) / 255
        total += x.sum(dim=(0, 2, 3))
        total_sq += x.square().sum(dim=(0, 2, 3))
    count = n * h * w
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def _check_cpu_generator(generator) -> None:
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(
            f"pass a CPU torch.Generator (got one on {generator.device}): random numbers are drawn "
            f"on the CPU so runs repeat bit for bit on any device"
        )


class Augment:
    """uint8 batch -> normalised float32 batch, with the DARTS CIFAR training augmentation.

    In the order of the official code: random crop from the image zero-padded by crop_padding, horizontal flip
    with probability 1/2, convert and normalise with (mean, std) in [0, 1] units, then cutout (DeVries & Taylor
    2017) zeroing a cutout x cutout square of the normalised tensor. Random numbers are drawn from the CPU
    `generator` in that order (crop offsets, flip mask, cutout centres) and moved to the batch's device.
    generator=None means evaluation: convert and normalise only.
    """

    def __init__(self, mean, std, crop_padding: int = 0, flip: bool = False, cutout: int = 0):
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ValueError(f"need one mean and one positive std per channel, got mean={mean}, std={std}")
        if crop_padding < 0 or cutout < 0:
            raise ValueError(f"crop_padding and cutout must be >= 0, got {crop_padding} and {cutout}")
        self.crop_padding, self.flip, self.cutout = int(crop_padding), bool(flip), int(cutout)

    def __repr__(self) -> str:
        return (
            f"Augment(mean={self.mean}, std={self.std}, crop_padding={self.crop_padding}, "
            f"flip={self.flip}, cutout={self.cutout})"
        )

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_cpu_generator(generator)
        if generator is not None and self.crop_padding:
            images = self._crop(images, generator)
        if generator is not None and self.flip:
            images = self._flip(images, generator)
        x = self.normalise(images)
        if generator is not None and self.cutout:
            x = self._cutout(x, generator)
        return x

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != len(self.mean):
            raise ValueError(
                f"Augment has {len(self.mean)} channel means but the images have {images.shape[1]} channels"
            )
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return images.float().div_(255).sub_(mean).div_(std)

    def _crop(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, c, h, w = images.shape
        p, device = self.crop_padding, images.device
        padded = F.pad(images, (p, p, p, p))  # zero = black before normalising, as RandomCrop(padding=p)
        top, left = torch.randint(0, 2 * p + 1, (2, n), generator=generator).to(device)
        # One gather: output pixel (i, k, y, x) reads padded pixel (i, k, top_i + y, left_i + x).
        rows = (top[:, None] + torch.arange(h, device=device)).view(n, 1, h, 1)
        cols = (left[:, None] + torch.arange(w, device=device)).view(n, 1, 1, w)
        sample = torch.arange(n, device=device).view(n, 1, 1, 1)
        channel = torch.arange(c, device=device).view(1, c, 1, 1)
        return padded[sample, channel, rows, cols]

    def _flip(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        flipped = (torch.rand(len(images), generator=generator) < 0.5).to(images.device)
        return torch.where(flipped.view(-1, 1, 1, 1), images.flip(3), images)

    def _cutout(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        centre_y = torch.randint(0, h, (n, 1), generator=generator).to(x.device)
        centre_x = torch.randint(0, w, (n, 1), generator=generator).to(x.device)
        # As the official Cutout: rows [cy - L//2, cy + L//2) clipped to the image (so an odd L cuts L-1).
        half = self.cutout // 2
        ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        in_rows = (ys >= centre_y - half) & (ys < centre_y + half)
        in_cols = (xs >= centre_x - half) & (xs < centre_x + half)
        hole = in_rows[:, None, :, None] & in_cols[:, None, None, :]
        return x.masked_fill(hole, 0.0)


def training_augment(config, data: ImageSet, mean, std) -> Augment:
    """The training augmentation a config (conv.config.ImageData) asks for, its defaults resolved for `data`:
    random-crop padding 4 for images of 32 pixels and more, else 0; flips for colour images only."""
    padding = config.crop_padding if config.crop_padding is not None else (4 if min(data.size) >= 32 else 0)
    flip = config.flip if config.flip is not None else data.in_channels == 3
    return Augment(mean, std, crop_padding=padding, flip=flip, cutout=config.cutout_length if config.cutout else 0)


def batches(
    data: ImageSet,
    batch_size: int,
    generator: torch.Generator | None,
    augment: Augment | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    skip: int = 0,
):
    """Iterate one epoch of (x float32, y int64) batches on data's device.

    The shuffle order is drawn from the CPU generator (torch's global RNG when it is None) when this is
    called, before any batch is augmented; augment gets the same generator. So a run resumed inside an
    epoch gets that epoch's order back by restoring the generator, calling this with `skip` (the batches
    already done, passed over without drawing), and restoring the generator's later state. Without
    augment, x is the images scaled to [0, 1].
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_cpu_generator(generator)
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return _epoch(data, order.to(data.images.device), batch_size, generator, augment, drop_last, skip)


def _epoch(data, order, batch_size, generator, augment, drop_last, skip):
    n = len(order)
    end = n - n % batch_size if drop_last else n
    for start in range(skip * batch_size, end, batch_size):
        index = order[start : start + batch_size]
        images = data.images[index]
        x = augment(images, generator) if augment is not None else images.float().div_(255)
        yield x, data.labels[index]
