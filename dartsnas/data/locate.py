"""Where image data is found, and where its official files come from.

Data lives at `root=` when given; otherwise under `$DARTSNAS_DATA/<name>`, which defaults to
`~/.cache/dartsnas/data/<name>` (`$DARTSNAS_CACHE` moves the whole `~/.cache/dartsnas`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .download import fetch_file


def cache_home() -> Path:
    return Path(os.environ.get("DARTSNAS_CACHE") or "~/.cache/dartsnas").expanduser()


def data_home() -> Path:
    return Path(os.environ.get("DARTSNAS_DATA") or cache_home() / "data").expanduser()


def default_root(name: str, root) -> Path:
    return Path(root).expanduser() if root is not None else data_home() / name


def list_paths(paths) -> str:
    # One line: the command line prints an error as one line, "dartsnas <command>: error: ...".
    return " " + " and ".join(str(p) for p in paths) + "."


# Official files of the image datasets and their md5s. Module-level so a mirror (or a test's file:// folder) can replace "url".
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


# Where system packages put the files (Debian's dataset-fashion-mnist); searched after the cache dir.
SYSTEM_DIRS = {"mnist": Path("/usr/share/datasets/mnist"), "fashion_mnist": Path("/usr/share/datasets/fashion-mnist")}

HOW_TO_GET = {"fashion_mnist": "apt-get install -y dataset-fashion-mnist (Debian/Ubuntu), or "}


def source_url(name: str, filename: str) -> str:
    return SOURCES[name]["url"].rstrip("/") + "/" + filename


def fetch_official(name: str, filename: str, folder: Path) -> Path:
    """Fetch one official file of a dataset into folder, checked against its md5."""
    return fetch_file(source_url(name, filename), folder / filename, SOURCES[name]["files"][filename])
