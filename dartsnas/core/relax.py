"""Temperature schedules of a relaxation's softmax, and how far a mixture is from a discrete cell.

The relaxations themselves (how alphas become an edge's mixing coefficients) are units of their own,
methods/relaxations/. A temperature annealed towards 0 pushes a softmax towards one-hot, which is one way of
closing the gap between the continuous mixture and the discrete cell.
"""

from __future__ import annotations

import math

import torch


SCHEDULES = ("linear", "exponential")  # how the temperature moves from its start to its end value


def temperature(epoch: int, epochs: int, start: float, end: float, schedule: str = "linear") -> float:
    """The temperature for `epoch` (0-based): `start` at the first epoch, `end` at the last."""
    if schedule not in SCHEDULES:
        raise ValueError(f"temperature schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if epochs <= 1 or start == end:
        return float(start)
    t = min(max(epoch, 0), epochs - 1) / (epochs - 1)
    if schedule == "linear":
        return start + (end - start) * t
    return start * math.exp(math.log(end / start) * t)


def temperature_for_entropy(alphas, target: float, low: float = 1e-6, high: float = 1e3) -> float:
    """The softmax temperature at which the mixture of the given logit tables (edges x ops each) has mean
    normalised entropy `target` (discreteness()'s alpha_entropy): an annealing schedule that says where the
    mixture should be, not the temperature, so that it ends close to one-hot whatever the logits' scale (at
    the paper's alpha learning rate the logits of a short search spread by about 0.1, and a fixed end
    temperature of 0.05 still leaves the mixture near uniform). Entropy grows with the temperature, so a
    bisection on log(temperature) finds it; targets beyond the reachable range give `low` or `high`.

    This schedule is dartsnas's own, not a published method. Nearest prior art: the temperature annealing of
    SNAS (Xie et al., ICLR 2019) and GDAS (Dong & Yang, CVPR 2019), fixed schedules of the temperature; ASAP
    (Noy et al., AISTATS 2020), which anneals it and prunes; Zhang & Ding, "Small Temperature is All You Need
    for Differentiable Architecture Search" (2023), which argues for searching at a small temperature; and
    entropy losses that push the mixture to one-hot (DA2S, Tian et al., 2020). Targeting the entropy itself
    is what is new here, and measured only in this project (docs/collapse.md)."""
    rows = torch.cat([a.detach().reshape(-1, a.shape[-1]).double() for a in alphas])

    def entropy(tau):
        return discreteness([(rows / tau).softmax(-1)])["alpha_entropy"]

    lo, hi = math.log(low), math.log(high)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if entropy(math.exp(mid)) < target else (lo, mid)
    return math.exp((lo + hi) / 2)


def discreteness(probs) -> dict[str, float]:
    """How far a mixture is from a discrete cell, over every edge of the given probability tables (edges x
    ops each): `alpha_entropy`, the mean entropy of an edge's probabilities as a share of log(ops) (1 for
    uniform, 0 for one-hot), and `onehot_gap`, the mean of 1 - an edge's largest probability (0 when every
    edge is one-hot). The gap between the continuous mixture and the cell derived from it shrinks with both."""
    rows = torch.cat([p.detach().reshape(-1, p.shape[-1]).double() for p in probs])
    entropy = -(rows * rows.clamp_min(1e-300).log()).sum(-1) / math.log(rows.shape[-1])
    gap = 1 - rows.max(-1).values
    return {"alpha_entropy": entropy.mean().item(), "onehot_gap": gap.mean().item()}
