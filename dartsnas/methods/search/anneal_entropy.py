"""Entropy annealing (dartsnas's own, `anneal_entropy: [start, end]`): each epoch's softmax temperature, never
above the paper's 1, is the one at which the mixture's mean normalised entropy is the epoch's point on the
line from start to end, found from the alphas at the epoch's start (core/relax.py, `temperature_for_entropy`,
whose docstring gives the nearest prior art: SNAS's and GDAS's fixed temperature schedules, ASAP, Zhang &
Ding's small temperature, DA2S's entropy losses). An epoch resumed from inside keeps the temperature it had
(the search's resume position carries it: the alphas have moved since the epoch began)."""

from __future__ import annotations

from ...core.collapse import linear
from ...core.relax import temperature_for_entropy
from .base import SearchUnit


class AnnealEntropy(SearchUnit):
    @classmethod
    def enabled(cls, config) -> bool:
        return getattr(config, "anneal_entropy", None) is not None

    def start_epoch(self, search) -> None:
        target = linear(search.epoch, self.config.epochs, *self.config.anneal_entropy)
        search.model.temperature = temperature_for_entropy(search.op_alphas(), target, high=1.0)


UNIT = AnnealEntropy
