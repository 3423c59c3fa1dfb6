"""Derivation (Sec. 2.4): from continuous mixing probabilities to a discrete cell, as pure functions.

For every intermediate node keep the `k` = 2 strongest incoming edges, an edge's strength being its
best non-`none` probability, and give each its best non-`none` op. Ties keep the official code's
order: among equal strengths the lower input index wins, among equal ops the earlier candidate;
the kept edges are listed strongest first, as the official code prints them.
"""

from __future__ import annotations

from typing import Sequence

from .genotype import Genotype, RecurrentGenotype


def derive_cell(probs: Sequence[Sequence[float]], ops: Sequence[str], nodes: int, k: int = 2,
                edge_weights: Sequence[float] | None = None) -> list[tuple[str, int]]:
    """Edges (op, input) of one cell from its probabilities (edges x ops, edges in `edge_names` order).

    `edge_weights` optionally scales each edge's strength (PC-DARTS edge normalisation); the op choice
    on an edge does not depend on it.
    """
    candidates = [i for i, name in enumerate(ops) if name != "none"]
    if not candidates:
        raise ValueError("the candidate set has no op besides 'none'; nothing can be derived")
    rows = [list(map(float, row)) for row in probs]
    expected = sum(2 + i for i in range(nodes))
    if len(rows) != expected or any(len(r) != len(ops) for r in rows):
        raise ValueError(f"probabilities must be {expected} edges x {len(ops)} ops for {nodes} nodes")
    edges, start = [], 0
    for node in range(nodes):
        inputs = range(2 + node)
        best_op = {j: max(candidates, key=lambda o: (rows[start + j][o], -o)) for j in inputs}

        def strength(j):
            scale = 1.0 if edge_weights is None else float(edge_weights[start + j])
            return rows[start + j][best_op[j]] * scale

        kept = sorted(inputs, key=lambda j: -strength(j))[:k]  # stable: lower index wins ties
        edges.extend((ops[best_op[j]], j) for j in kept)
        start += len(inputs)
    return edges


def derive(probs: dict, ops: Sequence[str], nodes: int, k: int = 2, edge_weights: dict | None = None) -> Genotype:
    """Genotype from {'normal': probs, 'reduce': probs}; the output concatenates all intermediate nodes."""
    cells = {kind: derive_cell(_rows(probs[kind]), ops, nodes, k,
                               None if edge_weights is None else _rows(edge_weights[kind]))
             for kind in ("normal", "reduce")}
    concat = tuple(range(2, 2 + nodes))
    return Genotype(tuple(cells["normal"]), concat, tuple(cells["reduce"]), concat)


def _rows(x):
    return x.tolist() if hasattr(x, "tolist") else x


def derive_recurrent(probs: Sequence[Sequence[float]], ops: Sequence[str], nodes: int) -> RecurrentGenotype:
    """A recurrent genotype from the search cell's probabilities (edges x ops, rows '1<-0', '2<-0', '2<-1', ...).

    Each node keeps one predecessor, the one whose best non-`none` op is strongest, through that op
    (Sec. 2.4: "retain the top-1 (...) for recurrent cells"); ties as above: lower input, earlier op.
    The output averages all nodes 1..N.
    """
    candidates = [i for i, name in enumerate(ops) if name != "none"]
    if not candidates:
        raise ValueError("the candidate set has no op besides 'none'; nothing can be derived")
    rows = [list(map(float, row)) for row in _rows(probs)]
    expected = nodes * (nodes + 1) // 2
    if len(rows) != expected or any(len(r) != len(ops) for r in rows):
        raise ValueError(f"probabilities must be {expected} edges x {len(ops)} ops for {nodes} recurrent nodes")
    edges, start = [], 0
    for node in range(1, nodes + 1):
        best_op = {j: max(candidates, key=lambda o: (rows[start + j][o], -o)) for j in range(node)}
        j = max(range(node), key=lambda j: (rows[start + j][best_op[j]], -j))
        edges.append((ops[best_op[j]], j))
        start += node
    return RecurrentGenotype(tuple(edges), tuple(range(1, nodes + 1)))
