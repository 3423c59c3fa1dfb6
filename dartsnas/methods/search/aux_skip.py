"""DARTS- (Chu et al., ICLR 2021, Sec. 3.2): every edge gains an auxiliary skip beta * x outside the mixture,
beta decaying linearly from `aux_skip` (the paper's 1) to 0 over the search (core/collapse.py,
`aux_skip_coefficient`); the network holds the epoch's beta."""

from __future__ import annotations

from ...core.collapse import aux_skip_coefficient
from ...core.config import ConfigError
from .base import SearchUnit, is_number


class AuxSkip(SearchUnit):
    @classmethod
    def check(cls, config) -> None:
        value = getattr(config, "aux_skip", 0.0)
        if not (is_number(value) and value >= 0):
            raise ConfigError(
                f"aux_skip must be a number >= 0 (DARTS-'s starting coefficient, 1 in the paper; 0: off), got {value}"
            )

    @classmethod
    def enabled(cls, config) -> bool:
        return bool(getattr(config, "aux_skip", 0))

    def start_epoch(self, search) -> None:
        search.model.aux_skip = aux_skip_coefficient(search.epoch, self.config.epochs, self.config.aux_skip)


UNIT = AuxSkip
