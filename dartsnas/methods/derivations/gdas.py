"""GDAS's rule (Dong & Yang, CVPR 2019; xautodl search_model_gdas_nasnet.py, `genotype`): it ranks the
(op, input) pairs of a node: its `k` strongest non-`none` pairs, so two kept edges may come from the same
input through different ops (the paper's rule, darts.py, keeps `k` distinct inputs).
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import checked


def edges(
    probs: Sequence[Sequence[float]],
    ops: Sequence[str],
    fan_in: Sequence[int],
    k: int,
    edge_probs: Sequence[float] | None = None,
) -> list[tuple[str, int]]:
    """(op, input) edges of one cell by GDAS's rule: per node, its `k` strongest non-`none` (op, input)
    pairs, strongest first; two of them may share an input (base.py: the arguments; `edge_probs` scales every
    pair of its edge). Ties, as GDAS's stable sort over pairs listed input by input, op by op: the lower
    input wins, then the earlier candidate.
    """
    candidates, rows = checked(probs, ops, fan_in)
    kept_edges, start = [], 0
    for n in fan_in:
        pairs = [(j, o) for j in range(n) for o in candidates]

        def strength(pair):
            j, o = pair
            return rows[start + j][o] * (1.0 if edge_probs is None else float(edge_probs[start + j]))

        kept = sorted(pairs, key=lambda pair: -strength(pair))[:k]  # stable: listing order wins ties
        kept_edges.extend((ops[o], j) for j, o in kept)
        start += n
    return kept_edges


UNIT = edges
