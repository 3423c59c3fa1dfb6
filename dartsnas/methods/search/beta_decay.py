"""beta-DARTS (Ye et al., CVPR 2022, Eq. 9-11): the architecture loss gains lambda * the mean over edges of
logsumexp(alpha_edge) of the op logits (not PC-DARTS's edge logits), lambda moving with the epoch as their
code moves it (core/collapse.py: `beta_decay`, `beta_weight`)."""

from __future__ import annotations

from ...core.collapse import beta_decay, beta_weight
from ...core.config import ConfigError
from .base import SearchUnit, is_number


class BetaDecay(SearchUnit):
    @classmethod
    def check(cls, config) -> None:
        value = getattr(config, "beta_decay", None)
        if value is not None and (len(value) != 2 or not all(is_number(x) and x >= 0 for x in value)):
            raise ConfigError(f"beta_decay must be two numbers >= 0, [start, end] of its weight, or null; got {value}")

    @classmethod
    def enabled(cls, config) -> bool:
        return getattr(config, "beta_decay", None) is not None

    def weight(self, epoch: int) -> float:
        """lambda for `epoch` (0-based)."""
        cfg = self.config
        return beta_weight(epoch, cfg.epochs, *cfg.beta_decay, cfg.beta_decay_epochs)

    def penalty(self, search):
        return self.weight(search.epoch) * beta_decay(search.op_alphas())


UNIT = BetaDecay
