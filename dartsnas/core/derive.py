"""Derivation (Sec. 2.4): from continuous mixing probabilities to a discrete cell, as pure functions.

The paper's rule: for every intermediate node keep the `k` strongest incoming edges (k = 2 in
convolutional cells, 1 in recurrent ones), an edge's strength being its best non-`none` probability,
and give each its best non-`none` op. Ties keep the official code's order: among equal strengths the
lower input index wins, among equal ops the earlier candidate; the kept edges are listed strongest
first, as the official code prints them.

GDAS's rule (Dong & Yang, CVPR 2019; xautodl search_model_gdas_nasnet.py, `genotype`) ranks the
(op, input) pairs of a node instead: its `k` strongest non-`none` pairs, so two kept edges may come
from the same input through different ops (the paper's rule keeps `k` distinct inputs).

P-DARTS's cap (Chen et al., "Progressive Differentiable Architecture Search", ICCV 2019, Sec. 3.3) limits
the skip connections of the derived normal cell to M (theirs: 2): while the cell has more, the kept skip edge
with the smallest skip probability loses its skip (its probability set below every other) and the cell is
derived again, so the M strongest skips stay and the others take their edge's next op (`cap_skips`).

A new derivation rule is one function here, from probabilities to edges, and one line in `RULES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .genotype import Genotype


def strongest_edges(
    probs: Sequence[Sequence[float]],
    ops: Sequence[str],
    fan_in: Sequence[int],
    k: int,
    edge_probs: Sequence[float] | None = None,
) -> list[tuple[str, int]]:
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


def strongest_pairs(
    probs: Sequence[Sequence[float]],
    ops: Sequence[str],
    fan_in: Sequence[int],
    k: int,
    edge_probs: Sequence[float] | None = None,
) -> list[tuple[str, int]]:
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


def derive_cell(
    probs: Sequence[Sequence[float]],
    ops: Sequence[str],
    nodes: int,
    k: int = 2,
    edge_probs: Sequence[float] | None = None,
    rule: str = "darts",
    skip_cap: int | None = None,
) -> list[tuple[str, int]]:
    """Edges (op, input) of one convolutional cell (edges in `edge_names` order: node i has 2 + i inputs);
    with `skip_cap`, at most that many skip connections (P-DARTS)."""
    if rule not in RULES:
        raise ValueError(f"unknown derivation rule {rule!r}; available: {', '.join(RULES)}")
    fan_in = [2 + i for i in range(nodes)]

    def cell(rows):
        return RULES[rule](rows, ops, fan_in, k, edge_probs)

    def kept(rows):  # (row, op) of each kept edge: node i's rows start after those of nodes < i
        starts = [sum(fan_in[:i]) for i in range(nodes)]
        return [(starts[n // k] + j, op) for n, (op, j) in enumerate(cell(rows))]

    return cell(probs if skip_cap is None else cap_skips(probs, ops, skip_cap, kept))


def derive(
    probs: dict,
    ops: Sequence[str],
    nodes: int,
    k: int = 2,
    edge_probs: dict | None = None,
    rule: str = "darts",
    skip_cap: int | None = None,
) -> Genotype:
    """Genotype from {'normal': probs, 'reduce': probs} by `rule` (a name in RULES); the output
    concatenates all intermediate nodes. `skip_cap` (P-DARTS) caps the normal cell's skip connections."""
    cells = {
        kind: derive_cell(
            probs[kind],
            ops,
            nodes,
            k,
            None if edge_probs is None else _rows(edge_probs[kind]),
            rule,
            skip_cap if kind == "normal" else None,
        )
        for kind in ("normal", "reduce")
    }
    concat = tuple(range(2, 2 + nodes))
    return Genotype(tuple(cells["normal"]), concat, tuple(cells["reduce"]), concat)


def strongest_ops(probs: Sequence[Sequence[float]], ops: Sequence[str], skip_cap: int | None = None) -> list[str]:
    """Each edge's most probable op, `none` included: NAS-Bench-201's rule (its authors' `genotype()`), where
    every edge is kept and `none` is a choice that cuts it. Ties: the earlier op (argmax's first maximum).
    `skip_cap`: at most that many skip connections (P-DARTS)."""
    rows = [list(map(float, row)) for row in _rows(probs)]
    if any(len(r) != len(ops) for r in rows):
        raise ValueError(f"probabilities must have one value per op ({len(ops)}) on every edge")

    def choose(rows):
        return [ops[max(range(len(ops)), key=lambda o: (row[o], -o))] for row in rows]

    if skip_cap is not None:
        rows = cap_skips(rows, ops, skip_cap, lambda r: list(enumerate(choose(r))))
    return choose(rows)


def cap_skips(probs, ops: Sequence[str], cap: int, kept: Callable) -> list[list[float]]:
    """P-DARTS's cap: probabilities (a copy) in which the derived cell keeps at most `cap` skip connections.
    `kept(rows)` derives the cell and returns (row, op) per kept edge. While more than `cap` skips are kept,
    the one with the smallest skip probability gets a skip probability below every other op's (-1), so it
    takes its next op (or, in a space that keeps `k` edges per node, may give its place to another input)."""
    if cap < 0:
        raise ValueError(f"the skip cap must be 0 or more, got {cap}")
    rows = [list(map(float, row)) for row in _rows(probs)]
    if "skip_connect" not in ops:
        return rows
    s = list(ops).index("skip_connect")
    while True:
        skips = [r for r, op in kept(rows) if op == "skip_connect"]
        if len(skips) <= cap:
            return rows
        weakest = min(skips, key=lambda r: (rows[r][s], -r))
        if rows[weakest][s] < 0:
            raise ValueError(f"cannot cap the skip connections at {cap}: an edge has no op besides skip_connect")
        rows[weakest][s] = -1.0


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
