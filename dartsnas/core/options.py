"""The config keys every run has for not losing work (core/checkpoints.py, core/runs.py, core/guard.py).

Each side's config dataclasses take these as a base; importing this module needs no torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .config import ConfigError


@dataclass
class RunOptions:
    # fmt: off
    checkpoint_minutes: float | None = 10.0  # also save inside an epoch every this many minutes (null: not by time)
    checkpoint_steps: int | None = None      # ... or every this many steps (null: not by steps)
    keep_checkpoints: int = 2                # the latest N checkpoints kept: a damaged latest falls back to the one before
    nonfinite: str = "stop"                  # on a NaN/inf or exploding loss, gradient or alpha: stop, or skip the step
    nonfinite_patience: int = 5              # skip: stop after this many bad steps in a row
    deterministic: bool = False              # deterministic kernels on CUDA (slower); CPU runs are anyway
    # fmt: on

    def __post_init__(self) -> None:
        minutes = self.checkpoint_minutes
        if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
            raise ConfigError(f"checkpoint_minutes must be a number of minutes > 0 (or null), got {minutes}")
        for key in ("checkpoint_steps", "keep_checkpoints", "nonfinite_patience"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ConfigError(
                    f"{key} must be an integer >= 1{' (or null)' * (key == 'checkpoint_steps')}, got {value!r}"
                )
        if self.nonfinite not in ("stop", "skip"):
            raise ConfigError(f"nonfinite must be stop or skip, got {self.nonfinite!r}")


# The run section's share of every config (its other keys are each side's own: seed, device, ...).
RUN_OPTIONS = tuple(f.name for f in dataclasses.fields(RunOptions))
