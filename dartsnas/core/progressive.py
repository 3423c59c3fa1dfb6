"""Progressive discretisation: SGAS (Li et al., "SGAS: Sequential Greedy Architecture Search", CVPR 2020).

Instead of deriving every edge at the end, SGAS decides edges during the search, one at a time, as the
continuous solution firms up: after a warm-up, every `interval` epochs, the undecided edge with the best
score is fixed to its best op and leaves the mixture (its coefficient becomes 1 for that op; the network
keeps training around it), until every edge is decided. Scores (Sec. 3.2), over the undecided edges:

- edge importance: the edge's total probability of ops other than `none` (how much it is worth keeping);
- selection certainty: 1 - the normalised entropy of those ops' probabilities, renormalised (how clear the
  choice of op is);
- selection stability (criterion 2): the mean histogram intersection sum_o min(p_o now, p_o then) between
  the edge's current probabilities and each of the last `history` epochs' (how settled it is).

Criterion 1 scores importance x certainty, criterion 2 importance x certainty x stability, each factor
min-max normalised over the candidate edges first (as SGAS's code does). In a space that keeps `k` edges per
node (DARTS), a node whose `k` edges are decided has its other edges cut; in a space that keeps every edge
and has `none` as a choice (NAS-Bench-201), importance is 1 for every edge and certainty and the chosen op
count `none` like any op.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

FREE, REMOVED = -1, -2  # a decision entry besides an op index (conv.supernet uses the same values)


def normalise(values: Sequence[float]) -> list[float]:
    """Min-max to [0, 1]; all ones when the values are all equal (a factor that tells edges apart no better
    than chance leaves the others to decide, e.g. importance in a space that keeps every edge)."""
    lo, hi = min(values), max(values)
    return [1.0 if hi == lo else (v - lo) / (hi - lo) for v in values]


def edge_scores(row: Sequence[float], ops: Sequence[str], every_edge_kept: bool) -> tuple[float, float, int]:
    """(importance, certainty, best op) of one edge's probabilities, as the module docstring says."""
    choosable = [o for o, name in enumerate(ops) if every_edge_kept or name != "none"]
    mass = sum(float(row[o]) for o in choosable)
    importance = 1.0 if every_edge_kept else mass
    p = [float(row[o]) / mass if mass > 0 else 1.0 / len(choosable) for o in choosable]
    entropy = -sum(q * math.log(q) for q in p if q > 0)
    certainty = 1.0 - (entropy / math.log(len(p)) if len(p) > 1 else 0.0)
    best = max(choosable, key=lambda o: (float(row[o]), -o))
    return importance, certainty, best


def stability(now: Sequence[float], past: Sequence[Sequence[float]]) -> float:
    """Mean histogram intersection of an edge's probabilities now with each past row (1: unchanged)."""
    if not past:
        return 1.0
    return sum(sum(min(float(a), float(b)) for a, b in zip(now, row)) for row in past) / len(past)


def candidates(decided: Sequence[int], fan_in: Sequence[int], k: int | None) -> list[int]:
    """Undecided edges that may still be chosen: all of them, or in a space that keeps `k` edges per node,
    those of nodes with fewer than `k` decided edges."""
    out, start = [], 0
    for n in fan_in:
        edges = range(start, start + n)
        if k is None or sum(decided[e] >= 0 for e in edges) < k:
            out.extend(e for e in edges if decided[e] == FREE)
        start += n
    return out


def decide_one(
    probs: Sequence[Sequence[float]],
    ops: Sequence[str],
    decided: list[int],
    fan_in: Sequence[int],
    k: int | None,
    history: Sequence[Sequence[Sequence[float]]] = (),
) -> dict | None:
    """SGAS's greedy decision for one cell kind: updates `decided` in place (the chosen edge gets its op; with
    `k`, a node that now has `k` decided edges has its other free edges REMOVED) and returns the evidence
    {edge, op, score, importance, certainty, stability, removed}; None when nothing is left to decide.
    `history`: earlier probability tables of this kind, oldest first (criterion 2 when given)."""
    free = candidates(decided, fan_in, k)
    if not free:
        return None
    parts = [edge_scores(probs[e], ops, k is None) for e in free]
    factors = [normalise([p[0] for p in parts]), normalise([p[1] for p in parts])]
    stab = [stability(probs[e], [h[e] for h in history]) for e in free] if history else None
    if stab is not None:
        factors.append(normalise(stab))
    scores = [math.prod(f[i] for f in factors) for i in range(len(free))]
    # Ties (e.g. every factor normalised to 0 when two edges are equal): the larger raw importance x
    # certainty, then the earlier edge.
    i = max(range(len(free)), key=lambda i: (scores[i], parts[i][0] * parts[i][1], -free[i]))
    edge, op = free[i], parts[i][2]
    decided[edge] = op
    removed = []
    if k is not None:
        start = 0
        for n in fan_in:
            edges = range(start, start + n)
            if edge in edges and sum(decided[e] >= 0 for e in edges) >= k:
                removed = [e for e in edges if decided[e] == FREE]
                for e in removed:
                    decided[e] = REMOVED
            start += n
    return {
        "edge": edge,
        "op": op,
        "score": scores[i],
        "importance": parts[i][0],
        "certainty": parts[i][1],
        "stability": None if stab is None else stab[i],
        "removed": removed,
    }


def decision_epoch(epoch: int, warmup: int, interval: int) -> bool:
    """Whether SGAS decides after `epoch` epochs have finished: at `warmup`, then every `interval`."""
    return epoch >= warmup and (epoch - warmup) % interval == 0
