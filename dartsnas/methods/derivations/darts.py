"""The paper's rule (Sec. 2.4): for every intermediate node keep the `k` strongest incoming edges (k = 2 in
convolutional cells, 1 in recurrent ones), an edge's strength being its best non-`none` probability, and
give each its best non-`none` op. Ties keep the official code's order: among equal strengths the lower input
index wins, among equal ops the earlier candidate; the kept edges are listed strongest first, as the official
code prints them.
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
    """(op, input) edges of one cell: per node, its `k` strongest inputs with their best non-`none` op
    (base.py: the arguments). The op choice on an edge does not depend on `edge_probs`."""
    candidates, rows = checked(probs, ops, fan_in)
    kept_edges, start = [], 0
    for n in fan_in:
        best_op = {j: max(candidates, key=lambda o: (rows[start + j][o], -o)) for j in range(n)}

        def strength(j):
            scale = 1.0 if edge_probs is None else float(edge_probs[start + j])
            return rows[start + j][best_op[j]] * scale

        kept = sorted(range(n), key=lambda j: -strength(j))[:k]  # stable: lower index wins ties
        kept_edges.extend((ops[best_op[j]], j) for j in kept)
        start += n
    return kept_edges


UNIT = edges
