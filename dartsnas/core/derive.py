"""Derivation (Sec. 2.4): from continuous mixing probabilities to a discrete cell, as pure functions.

The paper's rule: for every intermediate node keep the `k` strongest incoming edges (k = 2 in
convolutional cells, 1 in recurrent ones), an edge's strength being its best non-`none` probability,
and give each its best non-`none` op. Ties keep the official code's order: among equal strengths the
lower input index wins, among equal ops the earlier candidate; the kept edges are listed strongest
first, as the official code prints them.

GDAS's rule (Dong & Yang, CVPR 2019; xautodl search_model_gdas_nasnet.py, `genotype`) ranks the
(op, input) pairs of a node instead: its `k` strongest non-`none` pairs, so two kept edges may come
from the same input through different ops (the paper's rule keeps `k` distinct inputs).

A new derivation rule is one function here, from probabilities to edges, and one line in `RULES`.
"""

from __future__ import annotations

from typing import Callable, Sequence

from .genotype import Genotype


def strongest_edges(probs: Sequence[Sequence[float]], ops: Sequence[str], fan_in: Sequence[int], k: int,
                    edge_probs: Sequence[float] | None = None) -> list[tuple[str, int]]:
    """(op, input) edges of one cell: per node, its `k` strongest inputs with their best non-`none` op.

    `probs` is edges x ops, the edges of node i (which has `fan_in[i]` inputs, 0..fan_in[i]-1) after those
    of node i-1. `edge_probs` optionally scales each edge's strength (PC-DARTS edge normalisation); the
    op choice on an edge does not depend on it.
    """
    candidates, rows = _checked(probs, ops, fan_in)
    edges, start = [], 0
    for n in fan_in:
        best_op = {j: max(candidates, key=lambda o: (rows[start + j][o], -o)) for j in range(n)}

        def strength(j):
            scale = 1.0 if edge_probs is None else float(edge_probs[start + j])
            return rows[start + j][best_op[j]] * scale

        kept = sorted(range(n), key=lambda j: -strength(j))[:k]  # stable: lower index wins ties
        edges.extend((ops[best_op[j]], j) for j in kept)
        start += n
    return edges


def strongest_pairs(probs: Sequence[Sequence[float]], ops: Sequence[str], fan_in: Sequence[int], k: int,
                    edge_probs: Sequence[float] | None = None) -> list[tuple[str, int]]:
    """(op, input) edges of one cell by GDAS's rule: per node, its `k` strongest non-`none` (op, input)
    pairs, strongest first; two of them may share an input. Arguments as `strongest_edges` (`edge_probs`
    scales every pair of its edge). Ties, as GDAS's stable sort over pairs listed input by input, op by
    op: the lower input wins, then the earlier candidate.
    """
    candidates, rows = _checked(probs, ops, fan_in)
    edges, start = [], 0
    for n in fan_in:
        pairs = [(j, o) for j in range(n) for o in candidates]

        def strength(pair):
            j, o = pair
            return rows[start + j][o] * (1.0 if edge_probs is None else float(edge_probs[start + j]))

        kept = sorted(pairs, key=lambda pair: -strength(pair))[:k]  # stable: listing order wins ties
        edges.extend((ops[o], j) for j, o in kept)
        start += n
    return edges


Rule = Callable[..., list[tuple[str, int]]]  # (probs, ops, fan_in, k, edge_probs) -> edges
RULES: dict[str, Rule] = {"darts": strongest_edges, "gdas": strongest_pairs}


def derive_cell(probs: Sequence[Sequence[float]], ops: Sequence[str], nodes: int, k: int = 2,
                edge_probs: Sequence[float] | None = None, rule: str = "darts") -> list[tuple[str, int]]:
    """Edges (op, input) of one convolutional cell (edges in `edge_names` order: node i has 2 + i inputs)."""
    if rule not in RULES:
        raise ValueError(f"unknown derivation rule {rule!r}; available: {', '.join(RULES)}")
    return RULES[rule](probs, ops, [2 + i for i in range(nodes)], k, edge_probs)


def derive(probs: dict, ops: Sequence[str], nodes: int, k: int = 2, edge_probs: dict | None = None,
           rule: str = "darts") -> Genotype:
    """Genotype from {'normal': probs, 'reduce': probs} by `rule` (a name in RULES); the output
    concatenates all intermediate nodes."""
    cells = {kind: derive_cell(probs[kind], ops, nodes, k, None if edge_probs is None else _rows(edge_probs[kind]),
                               rule)
             for kind in ("normal", "reduce")}
    concat = tuple(range(2, 2 + nodes))
    return Genotype(tuple(cells["normal"]), concat, tuple(cells["reduce"]), concat)


def strongest_ops(probs: Sequence[Sequence[float]], ops: Sequence[str]) -> list[str]:
    """Each edge's most probable op, `none` included: NAS-Bench-201's rule (its authors' `genotype()`), where
    every edge is kept and `none` is a choice that cuts it. Ties: the earlier op (argmax's first maximum)."""
    rows = [list(map(float, row)) for row in _rows(probs)]
    if any(len(r) != len(ops) for r in rows):
        raise ValueError(f"probabilities must have one value per op ({len(ops)}) on every edge")
    return [ops[max(range(len(ops)), key=lambda o: (row[o], -o))] for row in rows]


def _checked(probs, ops, fan_in) -> tuple[list[int], list[list[float]]]:
    """(indices of the non-`none` candidates, probabilities as rows of floats), checked for shape."""
    candidates = [i for i, name in enumerate(ops) if name != "none"]
    if not candidates:
        raise ValueError("the candidate set has no op besides 'none'; nothing can be derived")
    rows = [list(map(float, row)) for row in _rows(probs)]
    if len(rows) != sum(fan_in) or any(len(r) != len(ops) for r in rows):
        raise ValueError(f"probabilities must be {sum(fan_in)} edges x {len(ops)} ops for {len(fan_in)} nodes")
    return candidates, rows


def _rows(x):
    return x.tolist() if hasattr(x, "tolist") else x
