"""NAS-Bench-201's rule (its authors' `genotype()`): every edge is kept, with its most probable op, `none`
included, where `none` is a choice that cuts the edge. Ties: the earlier op (argmax's first maximum).
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import as_rows


def edges(
    probs: Sequence[Sequence[float]],
    ops: Sequence[str],
    fan_in: Sequence[int] | None = None,
    k: int | None = None,
    edge_probs: Sequence[float] | None = None,
) -> list[tuple[str, int]]:
    """(op, input) of every edge, node by node (base.py: the arguments). `k` and `edge_probs` change nothing:
    no edge competes with another. Without `fan_in` the inputs are numbered as edges (0, 1, 2, ...)."""
    rows = [list(map(float, row)) for row in as_rows(probs)]
    if any(len(r) != len(ops) for r in rows):
        raise ValueError(f"probabilities must have one value per op ({len(ops)}) on every edge")
    inputs = list(range(len(rows))) if fan_in is None else [j for n in fan_in for j in range(n)]
    if len(inputs) != len(rows):
        raise ValueError(f"probabilities must be {len(inputs)} edges x {len(ops)} ops")
    return [(ops[max(range(len(ops)), key=lambda o: (row[o], -o))], j) for row, j in zip(rows, inputs)]


UNIT = edges
