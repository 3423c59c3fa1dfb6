"""Non-finite and diverging values, caught in every step without a host synchronisation per step.

A search that diverged (NaN alphas, losses of 1e9) must never end with exit 0 and a genotype. Each step
hands its losses, gradient norms and, for the architecture step, the alphas to `Guard.watch`; on the
device that only records the first bad step and its phase, so the step stays asynchronous. `check()`
reads the record back (one sync) before every checkpoint, at the end of every epoch and every
`CHECK_EVERY` steps, and raises `Diverged`: the run stops and its last good checkpoint stays untouched.

With the `skip` policy a bad step is instead skipped (its update not applied; a sync per step, the price of
deciding at once), and the run stops only after `patience` bad steps in a row.
"""

from __future__ import annotations

import logging

import torch

from .distributed import any_rank, minimum, world

# A cross-entropy above this means the true class got probability e^-1000: the run has diverged,
# whatever the task (a language model starts near log(vocabulary), about 10).
DIVERGED_LOSS = 1e3
CHECK_EVERY = 10
PHASES = ("architecture step", "weight step")
POLICIES = ("stop", "skip")


class Diverged(RuntimeError):
    """A run whose losses, gradients or alphas stopped being finite numbers (or exploded)."""


class Guard:
    def __init__(self, device: torch.device, policy: str = "stop", patience: int = 5):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self.device, self.policy, self.patience = device, policy, patience
        self.first = torch.full((2,), -1, dtype=torch.long, device=device)  # the first bad step of each phase
        self.what = ["", ""]
        self.in_a_row = 0  # skip: bad steps in a row
        self.skipped = 0  # skip: bad steps skipped in this run
        self.epoch = 0
        self.step = 0  # the step of the epoch now running (0-based), set by the driver's loop

    def reset(self, epoch: int) -> None:
        """A new epoch (or a resumed one) starts: steps are counted from it."""
        self.first.fill_(-1)
        self.epoch = epoch

    @staticmethod
    def bad(losses: tuple[torch.Tensor, ...], others: tuple[torch.Tensor, ...] = ()) -> torch.Tensor:
        """A device bool: a loss not finite or above DIVERGED_LOSS, or any other value not finite."""
        # A sum is finite only if every element is (a finite sum that overflows is an explosion too): one
        # reduction per tensor, one check for all, whatever the number of alpha tensors.
        values = torch.stack(
            [x.detach().float().reshape(()) for x in losses] + [t.detach().float().sum() for t in others]
        )
        return ~torch.isfinite(values).all() | (values[: len(losses)] > DIVERGED_LOSS).any()

    def watch(self, phase: int, losses: tuple[torch.Tensor, ...], others=()) -> bool:
        """Record the values of this step's phase (0: architecture, 1: weights) before its update. Returns
        whether the update may be applied: always under the stop policy (a bad step is found by `check`
        later, before anything is saved); under skip, not for a bad step."""
        flag, step = self.bad(losses, tuple(others)), self.step
        if self.policy == "skip":
            if not any_rank(bool(flag.item())):  # every rank skips the same steps
                self.in_a_row = 0
                return True
            self.in_a_row += 1
            self.skipped += 1
            if self.in_a_row >= self.patience:
                self._raise(
                    phase,
                    step,
                    f"{self.in_a_row} bad steps in a row (nonfinite: skip, nonfinite_patience: {self.patience})",
                )
            logging.getLogger("dartsnas").warning(
                f"skipped the {PHASES[phase]} of step {step + 1} of epoch "
                f"{self.epoch + 1}: a non-finite or exploding value"
            )
            return False
        self.first[phase] = torch.where(flag & (self.first[phase] < 0), step, self.first[phase])
        return True

    def check(self) -> None:
        """Raise `Diverged` if a recorded step went bad (one host sync)."""
        if self.policy == "skip":
            return
        first = self.first
        if world().distributed:  # every rank stops together, at the earliest bad step of any
            never = torch.iinfo(torch.long).max
            first = minimum(torch.where(first < 0, never, first))
            first = torch.where(first == never, -1, first)
        first = first.tolist()
        bad = [(s, p) for p, s in enumerate(first) if s >= 0]
        if bad:
            step, phase = min(bad)
            self._raise(
                phase,
                step,
                f"a loss, gradient norm or alpha that is not a finite number, or a loss above {DIVERGED_LOSS:g}",
            )

    def _raise(self, phase: int, step: int, what: str) -> None:
        fix = "lower arch_lr, or add beta_decay" if phase == 0 else "lower lr, set grad_clip, or turn amp off"
        raise Diverged(
            f"the run diverged in the {PHASES[phase]} at step {step + 1} of epoch {self.epoch + 1}: {what}. "
            f"Likely fix: {fix}, and start a new run; the last good checkpoint is kept untouched"
        )
