"""Helpers of the reliability tests. `every_case`: the table behind the generated bad-input tests, one test per
kind of input that runs every case of its table and fails once, naming every case that failed and why (a
parametrized test per case checked the same inputs but paid pytest's setup, fixtures and report ~1,300 times).
`tally`: what a Hypothesis property test's draws reached, checked after it ran."""

from __future__ import annotations

import itertools
from collections import Counter
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


class Tally:
    """What the draws of one Hypothesis property test reached: a count per outcome, and the distinct inputs. A
    property test passes on every draw it makes; this says whether its draws made the cases it is about (a config
    that loads, a genotype that parses), so a strategy that stops making them fails the test instead of passing
    having checked nothing."""

    def __init__(self):
        self.outcomes: Counter[str] = Counter()
        self.inputs: set[str] = set()

    def record(self, value, outcome: str) -> None:
        self.outcomes[outcome] += 1
        self.inputs.add(repr(value))

    def check(self, outcome: str, at_least: float, distinct: float = 0.5, min_draws: int = 50) -> None:
        """At least `min_draws` draws ran (Hypothesis stops early once a strategy has nothing new to give), at least
        this share of them reached `outcome`, and at least `distinct` of them were different."""
        draws = self.outcomes.total()
        assert draws >= min_draws, f"only {draws} draws ran (at least {min_draws} expected): {dict(self.outcomes)}"
        reached = self.outcomes[outcome]
        assert reached >= at_least * draws, (
            f"only {reached} of {draws} draws reached {outcome!r} (at least {at_least:.0%} expected): the strategy "
            f"no longer makes the cases this property is about; outcomes: {dict(self.outcomes)}"
        )
        assert len(self.inputs) >= distinct * draws, (
            f"only {len(self.inputs)} of {draws} draws were different (at least {distinct:.0%} expected)"
        )


@pytest.fixture
def tally():
    """A Tally for the draws of one property test: record in the @given function, check after it ran."""
    return Tally()
