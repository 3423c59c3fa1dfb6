"""Your own images as <root>/<split>/<class>/<image>, from a folder or a .tar/.tar.gz of one, decoded once
(in threads: Pillow decodes without the GIL) and kept decoded in a cache keyed by the files' identity."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from .download import DataError
from .imageset import SPLITS, ImageSet
from .locate import cache_home


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
