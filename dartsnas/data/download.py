"""Downloads that are checked before they are kept, and the error a user can fix.

A download appears under its name only once its md5 matches the official file's.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.request
from pathlib import Path


class DataError(Exception):
    """A data problem the user can fix; the message says what is wrong, where we looked and what to do."""


class DownloadError(DataError):
    """A download that could not be made (no network, no such file there); locate.find says it with every
    place it looked."""

    def __init__(self, url: str, reason: str, target: Path):
        self.url, self.reason = url, reason
        super().__init__(
            f"could not download {url}: {reason}. Check the network, or fetch the file yourself and put it at {target}."
        )


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_file(url: str, target: Path, md5: str) -> Path:
    """Download url to target; the file appears under its name only once its md5 matches."""
    partial = target.with_name(target.name + ".part")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(
            f"cannot make {target.parent} to download {url} into ({error.strerror or error}); set DARTSNAS_DATA "
            "(or DARTSNAS_CACHE) to a folder you can write to, or give data_dir."
        ) from None
    print(f"downloading {url} -> {target}", file=sys.stderr, flush=True)
    try:
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
    except (OSError, http.client.HTTPException, ValueError) as error:  # URLError is an OSError; ValueError: a bad URL
        raise DownloadError(url, str(getattr(error, "reason", None) or error), target) from None
    finally:
        partial.unlink(missing_ok=True)
    return target
