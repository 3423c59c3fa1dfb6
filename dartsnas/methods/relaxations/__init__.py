"""Relaxations, one per file, by the name the config's `mixed_op` takes. Adding one: a file with a
`Relaxation` subclass named `UNIT`, and one line here. Importing this module needs no torch (configs are
checked without it); `unit(name)` imports the file on use.
"""

from __future__ import annotations

import importlib

# name -> its module in this folder.
RELAXATIONS = {"exact": "exact", "lean": "lean", "partial": "partial", "sample": "sample"}


def unit_class(name: str):
    """The Relaxation subclass registered as `name`."""
    if name not in RELAXATIONS:
        raise ValueError(f"mixed-op relaxation must be one of {', '.join(RELAXATIONS)}, got {name!r}")
    return importlib.import_module(f"{__name__}.{RELAXATIONS[name]}").UNIT


def make(name: str, **settings):
    """The relaxation `name`, configured by the settings it knows (partial_k, sample_grad); others are ignored,
    so one call serves every unit."""
    return unit_class(name)(**settings)
