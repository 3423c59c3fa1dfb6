"""The table behind the generated bad-input tests: one test per kind of input runs every case of its table and
fails once, naming every case that failed and why. A parametrized test per case checked the same inputs, but paid
pytest's setup, fixtures and report ~1,500 times."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest


@pytest.fixture
def every_case():
    """every_case(cases, check): check(case) for each (case_id, case) in cases; then one assertion that lists every
    case whose check failed (an AssertionError, or any other exception, a SystemExit included) with its message."""

    def run(cases: Iterable[tuple[str, object]], check: Callable[[object], object]) -> None:
        cases = list(cases)
        assert cases, "an empty table checks nothing"
        failures = []
        for case_id, case in cases:
            try:
                check(case)
            except (Exception, SystemExit) as err:  # every failure is reported, not only the first
                message = " ".join(str(err).split())[:500]
                failures.append(f"  {case_id}: {type(err).__name__}: {message}")
        assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures)

    return run


@pytest.fixture
def new_folder(tmp_path):
    """new_folder(): a fresh empty folder under tmp_path, one for each case of a table, as each had its own."""
    count = itertools.count()

    def make() -> Path:
        folder = tmp_path / f"case-{next(count)}"
        folder.mkdir()
        return folder

    return make
