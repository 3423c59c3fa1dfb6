"""DARTS+ (Liang et al., arXiv:1909.06035, Sec. 3.2): after an epoch, stop when the derived normal cell (or
NAS-Bench-201's cell) has the space's count of skip connections or more (criterion 1; the config's
`skip_threshold()`: the paper's 2 in the DARTS normal cell, 3 in NAS-Bench-201's 6 edges), or when the
learnable ops' ranking has not changed for `early_stop_patience` epochs (criterion 2; core/collapse.py,
`darts_plus_stop`)."""

from __future__ import annotations

import logging
from pathlib import Path

from ...core.collapse import darts_plus_stop
from ...core.runs import read_jsonl
from ...core.config import ConfigError
from .base import SearchUnit, check_whole

log = logging.getLogger("dartsnas")


class EarlyStop(SearchUnit):
    @classmethod
    def check(cls, config) -> None:
        if not hasattr(config, "early_stop"):
            return
        for name in ("early_stop_skips", "early_stop_skips_nb201", "early_stop_patience"):
            check_whole(config, name)
        if config.early_stop and config.skip_threshold() is None and config.early_stop_patience is None:
            skips = "early_stop_skips_nb201" if config.space == "nas-bench-201" else "early_stop_skips"
            raise ConfigError(f"early_stop needs a criterion: set {skips} or early_stop_patience")

    @classmethod
    def enabled(cls, config) -> bool:
        return bool(getattr(config, "early_stop", False))

    def stop(self, search, run_dir: Path) -> str | None:
        cfg, model = self.config, search.model
        kind = model.kinds[0]
        cell = search.last_genotype.normal if kind == "normal" else search.last_genotype.edges
        history = [r["probs"][kind] for r in read_jsonl(run_dir / "alphas.jsonl") if r["epoch"] > 0]
        reason = darts_plus_stop(cell, history, model.learnable_ops(), cfg.skip_threshold(), cfg.early_stop_patience)
        if reason:
            log.info(f"DARTS+ early stop after epoch {search.epoch}: {reason}")
        return reason


UNIT = EarlyStop
