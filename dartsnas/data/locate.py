"""Where data is found: one order for every dataset with official files (images here, corpora in
recurrent/text.py), and one line when it is nowhere.

1. `data_dir` (`root=`) when given, and only there;
2. else `$DARTSNAS_DATA/<name>`, when that variable is set;
3. the user's cache, `~/.cache/dartsnas/data/<name>` (`$DARTSNAS_CACHE/data/<name>`);
4. the folder where a system package installs it (Debian's dataset-fashion-mnist: /usr/share/datasets/...);
5. with `download` true, the official files are fetched (md5 checked) into `data_dir` when given, else
   `$DARTSNAS_DATA/<name>` when set, else the cache.

When none holds it, or the download fails (no network), the DataError names the dataset and split, every
place looked and the fix, on one line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .download import DataError, DownloadError, fetch_file


def cache_home() -> Path:
    """dartsnas's own cache: downloads, extracted archives, decoded images."""
    return Path(os.environ.get("DARTSNAS_CACHE") or "~/.cache/dartsnas").expanduser()


def cache_data(name: str) -> Path:
    return cache_home() / "data" / name


def env_data(name: str) -> Path | None:
    home = os.environ.get("DARTSNAS_DATA")
    return Path(home).expanduser() / name if home else None


def places(name: str, root=None) -> list[Path]:
    """Where a dataset is looked for, in order (steps 1-4 above)."""
    if root is not None:
        return [Path(root).expanduser()]
    found = [p for p in (env_data(name), cache_data(name), SYSTEM_DIRS.get(name)) if p is not None]
    return list(dict.fromkeys(found))  # DARTSNAS_DATA may be the cache's own data folder


def download_folder(name: str, root=None) -> Path:
    """Where download=true puts a dataset's official files (step 5)."""
    return Path(root).expanduser() if root is not None else env_data(name) or cache_data(name)


@dataclass(frozen=True)
class Wanted:
    """What a dataset needs, in words for the one-line error."""

    files: str  # what was looked for: "data_batch_1, ..., data_batch_5 and batches.meta"
    example: str  # what DIR/<name>/ may hold to fix it: "cifar-10-python.tar.gz"
    url: str  # where download=true fetches it from
    subfolders: tuple[str, ...] = ()  # looked in too, below each place ("cifar-10-batches-py")
    other: str = ""  # another way to get it: "apt-get install -y dataset-fashion-mnist (Debian/Ubuntu)"


def find(
    name: str,
    split: str | None,
    root,
    download: bool,
    present: Callable[[Path], Path | None],
    fetch: Callable[[Path], None],
    wanted: Wanted,
) -> Path:
    """The folder to read `name` from: `present(place)` (the folder holding the files, or None) of the first
    place that has it; else, with download, the download folder once `fetch` filled it; else a DataError."""
    looked = places(name, root)
    for place in looked:
        if (folder := present(place)) is not None:
            return folder
    if download:
        target = download_folder(name, root)
        made = not target.exists()
        try:
            fetch(target)
        except DownloadError as error:
            if made and target.is_dir() and not any(target.iterdir()):  # leave no empty folder behind
                target.rmdir()
            raise DataError(_not_found(name, split, looked, wanted, root, error)) from None
        if (folder := present(target)) is not None:
            return folder
    raise DataError(_not_found(name, split, looked, wanted, root))


def _not_found(name, split, looked, wanted: Wanted, root, failed: DownloadError | None = None) -> str:
    # One line: the command line prints an error as one line, "dartsnas <command>: error: ...".
    shown = [p for place in looked for p in (place, *(place / s for s in wanted.subfolders))]
    what = f"{name} {split} split" if split else name
    where = words([str(p) for p in shown])
    if failed is not None:
        head = f"{what} not found in {where}, and could not download {failed.url} ({failed.reason})"
        online = "or download it on a machine with internet"
    else:
        head = f"{what} not found: looked for {wanted.files} in {where}"
        online = f"or --set download=true on a machine with internet (fetches {wanted.url} into {download_folder(name, root)})"
    if root is not None:
        return f"{head}. To get it: put {wanted.example} in {root}, {online}."
    other = f", or {wanted.other}" if wanted.other else ""
    return (
        f"{head}. To get it: set DARTSNAS_DATA=DIR with {wanted.example} in DIR/{name}/, or --set data_dir=DIR, "
        f"{online}{other}."
    )


def words(items: list[str]) -> str:
    """a, b and c"""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# Official files of the image datasets and their md5s. Module-level so a mirror (or a test's file:// folder)
# can replace "url".
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


# Where system packages put the files (Debian's dataset-fashion-mnist): step 4, after the cache.
SYSTEM_DIRS = {"mnist": Path("/usr/share/datasets/mnist"), "fashion_mnist": Path("/usr/share/datasets/fashion-mnist")}

HOW_TO_GET = {"fashion_mnist": "apt-get install -y dataset-fashion-mnist (Debian/Ubuntu)"}


def source_url(name: str, filename: str) -> str:
    return SOURCES[name]["url"].rstrip("/") + "/" + filename


def fetch_official(name: str, filename: str, folder: Path) -> Path:
    """Fetch one official file of a dataset into folder, checked against its md5."""
    return fetch_file(source_url(name, filename), folder / filename, SOURCES[name]["files"][filename])
