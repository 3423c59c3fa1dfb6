"""The search's regularisers, schedules and progressive schemes, one per file, by name. A search builds the
units its config switches on (`build`), asks each what it needs of the config (`check`), and calls their hooks (`base.SearchUnit`); nothing else learns their
names. Adding one: a file with a `SearchUnit` subclass named `UNIT`, and one line here. Importing this module
needs no torch; `build` imports a unit's file on use.
"""

from __future__ import annotations

import importlib

# name -> its module in this folder, in the order the hooks are called.
SEARCH_UNITS = {
    "temperature": "temperature",  # the relaxation's temperature, linear or exponential (the default)
    "anneal_entropy": "anneal_entropy",  # dartsnas's own: the temperature that puts the mixture at an entropy
    "beta_decay": "beta_decay",  # beta-DARTS: a penalty on the alphas' logsumexp
    "aux_skip": "aux_skip",  # DARTS-: an auxiliary skip on every edge, decaying to 0
    "sgas": "sgas",  # SGAS: edges decided during the search
    "early_stop": "early_stop",  # DARTS+: stop when the cell collapses or settles
}


def unit_class(name: str):
    """The SearchUnit subclass registered as `name`."""
    if name not in SEARCH_UNITS:
        raise ValueError(f"search unit must be one of {', '.join(SEARCH_UNITS)}, got {name!r}")
    return importlib.import_module(f"{__name__}.{SEARCH_UNITS[name]}").UNIT


def check(config) -> None:
    """Every registered unit's check of the config, switched on or not (a bad value in an unused setting is
    still refused); a config without a unit's fields (the recurrent search's) passes its check."""
    for name in SEARCH_UNITS:
        unit_class(name).check(config)


def build(config) -> dict:
    """name -> unit, for every registered unit the config switches on, in registry order."""
    classes = {name: unit_class(name) for name in SEARCH_UNITS}
    return {name: cls(config) for name, cls in classes.items() if cls.enabled(config)}


def total_penalty(units, search):
    """The units' penalties on the alphas (beta-DARTS's beta decay), summed; None when no unit has one (the
    architect then adds nothing)."""
    terms = [p for p in (unit.penalty(search) for unit in units) if p is not None]
    return sum(terms[1:], terms[0]) if terms else None
