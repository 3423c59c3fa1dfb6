"""Downloads that are checked before they are kept, and the error a user can fix.

A download appears under its name only once its md5 matches the official file's.
"""

from __future__ import annotations

import hashlib
import os
import sys
import urllib.request
from pathlib import Path


class DataError(Exception):
    """A data problem the user can fix; the message says what is wrong, where we looked and what to do."""


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_file(url: str, target: Path, md5: str) -> Path:
    """Download url to target; the file appears under its name only once its md5 matches."""
    partial = target.with_name(target.name + ".part")
    print(f"downloading {url} -> {target}", file=sys.stderr, flush=True)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        actual = md5sum(partial)
        if actual != md5:
            raise DataError(
                f"download of {url} is corrupt (md5 {actual}, expected {md5}); the partial "
                f"file was deleted. Try again, or fetch the file yourself and put it at {target}."
            )
        os.replace(partial, target)
    except OSError as error:  # urllib's URLError is an OSError too
        raise DataError(
            f"could not download {url}: {error}. Check the network, or fetch the file yourself and put it at {target}."
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return target
