"""Entropy annealing (dartsnas's own, `anneal_entropy: [start, end]`): each epoch's softmax temperature, never
above the paper's 1, is the one at which the mixture's mean normalised entropy is the epoch's point on the
line from start to end, found from the alphas at the epoch's start (core/relax.py, `temperature_for_entropy`,
whose docstring gives the nearest prior art: SNAS's and GDAS's fixed temperature schedules, ASAP, Zhang &
Ding's small temperature, DA2S's entropy losses). An epoch resumed from inside keeps the temperature it had
(the search's resume position carries it: the alphas have moved since the epoch began)."""

from __future__ import annotations

from ...core.collapse import linear
from ...core.relax import temperature_for_entropy
from ...core.config import ConfigError
from ..relaxations import RELAXATIONS, unit_class
from .base import SearchUnit, is_number


class AnnealEntropy(SearchUnit):
    @classmethod
    def check(cls, config) -> None:
        value = getattr(config, "anneal_entropy", None)
        if value is None:
            return
        if len(value) != 2 or not all(is_number(x) and 0 < x <= 1 for x in value):
            raise ConfigError(
                f"anneal_entropy must be two numbers in (0, 1], [start, end] of the mixture's "
                f"normalised entropy, or null; got {value}"
            )
        draws = config.mixed_op in RELAXATIONS and unit_class(config.mixed_op).draws
        if getattr(config, "temperature", None) is not None or draws:
            raise ConfigError(
                "anneal_entropy sets the softmax temperature itself: it cannot be combined with "
                "temperature, nor with mixed_op: sample (whose probabilities ignore the temperature)"
            )

    @classmethod
    def enabled(cls, config) -> bool:
        return getattr(config, "anneal_entropy", None) is not None

    def start_epoch(self, search) -> None:
        target = linear(search.epoch, self.config.epochs, *self.config.anneal_entropy)
        search.model.temperature = temperature_for_entropy(search.op_alphas(), target, high=1.0)


UNIT = AnnealEntropy
