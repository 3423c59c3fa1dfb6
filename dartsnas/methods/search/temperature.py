"""The relaxation's softmax temperature, from its start at the first epoch to its end at the last, linearly
or exponentially (core/relax.py); the relaxation's own [start, end] when the config sets none (GDAS's 10 to
0.1). The default of every convolutional search that does not anneal the entropy."""

from __future__ import annotations

from ...core.relax import temperature
from .base import SearchUnit


class Temperature(SearchUnit):
    @classmethod
    def enabled(cls, config) -> bool:
        return hasattr(config, "temperatures") and not config.anneal_entropy

    def start_epoch(self, search) -> None:
        cfg = self.config
        start, end = cfg.temperatures()
        search.model.temperature = temperature(search.epoch, cfg.epochs, start, end, cfg.temperature_schedule)


UNIT = Temperature
