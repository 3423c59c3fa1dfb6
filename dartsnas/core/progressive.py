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

Criterion 1 scores importance x certainty, criterion 2 importance x certainty x stability. As SGAS's code
(lightaime/sgas, cnn/train_search.py, `edge_decision`), each factor is computed for every edge of the cell
kind from the softmax of its alphas (decided and cut edges included, their alphas frozen when they left the
mixture: methods/search/sgas.py's `freeze_decided`) and min-max
normalised over all of them (`utils.normalize`); only then are the decided and cut edges masked out and the
best remaining edge chosen. Stability compares the renormalised probabilities of the ops an edge may be
decided to (their `probs = mat[:, 1:] / importance`), not the whole row. Decisions come after the epoch
numbered `warmup` counted from 0 (their `warmup_dec_epoch`: 9, i.e. after 10 epochs), then every `interval`.

In a space that keeps `k` edges per node (DARTS), a node whose `k` edges are decided has its other edges
cut; in a space that keeps every edge and has `none` as a choice (NAS-Bench-201, which SGAS did not search:
dartsnas's adaptation), importance is 1 for every edge and certainty, stability and the chosen op count
`none` like any op.

Deliberate differences: a factor equal on every edge normalises to ones, not their zeros (which make every
score 0 and decide the first free edge: importance in NAS-Bench-201, stability before any history). Form
"v1" is dartsnas's earlier reading, kept for runs made with it: factors normalised over the free edges
only, stability on whole rows, ties to the larger raw importance x certainty, the first decision one epoch
earlier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

FREE, REMOVED = -1, -2  # a decision entry besides an op index (conv.supernet uses the same values)
FORMS = ("sgas", "v1")  # the authors' code; dartsnas's earlier form (module docstring)


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


def choice_probs(row: Sequence[float], ops: Sequence[str], every_edge_kept: bool) -> list[float]:
    """The edge's probabilities over the ops it may be decided to (all, or all but `none`), renormalised."""
    choosable = [float(row[o]) for o, name in enumerate(ops) if every_edge_kept or name != "none"]
    mass = sum(choosable)
    return [p / mass if mass > 0 else 1.0 / len(choosable) for p in choosable]


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
    form: str = "sgas",
) -> dict | None:
    """SGAS's greedy decision for one cell kind: updates `decided` in place (the chosen edge gets its op; with
    `k`, a node that now has `k` decided edges has its other free edges REMOVED) and returns the evidence
    {edge, op, score, importance, certainty, stability, removed}; None when nothing is left to decide.
    `probs`: every edge's probabilities from its alphas (a decided edge's too, not its one-hot row);
    `history`: earlier such tables of this kind, oldest first (criterion 2 when given); `form`: FORMS."""
    free = candidates(decided, fan_in, k)
    if not free:
        return None
    every = k is None
    scored = range(len(probs)) if form == "sgas" else free  # the edges each factor is normalised over
    parts = {e: edge_scores(probs[e], ops, every) for e in scored}
    factors = [normalise([parts[e][0] for e in scored]), normalise([parts[e][1] for e in scored])]
    stab = None
    if history:
        rows = (lambda row: choice_probs(row, ops, every)) if form == "sgas" else (lambda row: row)
        stab = [stability(rows(probs[e]), [rows(h[e]) for h in history]) for e in scored]
        factors.append(normalise(stab))
    scores = {e: math.prod(f[i] for f in factors) for i, e in enumerate(scored)}
    # Ties (a score is 0 wherever a factor is its minimum): the earlier edge, as their torch.argmax; v1 first
    # prefers the larger raw importance x certainty.
    tiebreak = (lambda e: 0.0) if form == "sgas" else (lambda e: parts[e][0] * parts[e][1])
    edge = max(free, key=lambda e: (scores[e], tiebreak(e), -e))
    i, op = list(scored).index(edge), parts[edge][2]
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
        "score": scores[edge],
        "importance": parts[edge][0],
        "certainty": parts[edge][1],
        "stability": None if stab is None else stab[i],
        "removed": removed,
    }


def decision_epoch(epoch: int, warmup: int, interval: int, form: str = "sgas") -> bool:
    """Whether SGAS decides after `epoch` epochs have finished: after the epoch numbered `warmup` from 0 (their
    `epoch >= warmup_dec_epoch and (epoch - warmup_dec_epoch) % decision_freq == 0` on the 0-based epoch just
    trained), then every `interval`; form "v1": after `warmup` epochs, one earlier."""
    last = epoch - 1 if form == "sgas" else epoch
    return last >= warmup and (last - warmup) % interval == 0


def decision_rounds(decided: dict[str, Sequence[int]]) -> int:
    """Decision epochs so far: each decides one edge of every cell kind that has one left (cut edges aside)."""
    return max((sum(d >= 0 for d in row) for row in decided.values()), default=0)
