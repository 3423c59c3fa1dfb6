"""Derivation rules, one per file, by name (Sec. 2.4: from a finished search to a discrete cell). Adding one:
a file whose `UNIT` answers base.py's hook, and one line here. Importing this module needs no torch (configs
are checked without it); `unit(name)` imports the file on use.

- `TOP_K`: rules over probabilities that keep `k` inputs per node (the config's `derive` in the DARTS
  space): darts.py (the paper's), gdas.py (GDAS's (op, input) pairs);
- `EVERY_EDGE`: rules over probabilities that keep every edge: argmax.py (NAS-Bench-201's);
- skip_cap.py (P-DARTS's cap on skip connections) wraps any of them (`skip_cap`);
- `NETWORK`: rules that evaluate the supernet after the search (`dartsnas derive --rule`): pt.py (DARTS-PT),
  bnb.py (branch and bound, dartsnas's own). The caller hands them a `Net` (base.py).

`derive` and `derive_cell` assemble a DARTS cell from a rule, `strongest_ops` NAS-Bench-201's.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from ...core.genotype import Genotype

# name -> its module in this folder.
TOP_K = {"darts": "darts", "gdas": "gdas"}
EVERY_EDGE = {"nas-bench-201": "argmax"}
NETWORK = {"pt": "pt", "bnb": "bnb"}
RULES = {**TOP_K, **EVERY_EDGE, **NETWORK}


def unit(name: str, among: dict | None = None):
    """The `UNIT` of the rule registered as `name` (in `among`, default every rule)."""
    among = RULES if among is None else among
    if name not in among:
        raise ValueError(f"unknown derivation rule {name!r}; available: {', '.join(among)}")
    return importlib.import_module(f"{__name__}.{among[name]}").UNIT


def derive_cell(
    probs: Sequence[Sequence[float]],
    ops: Sequence[str],
    nodes: int,
    k: int = 2,
    edge_probs: Sequence[float] | None = None,
    rule: str = "darts",
    skip_cap: int | None = None,
) -> list[tuple[str, int]]:
    """Edges (op, input) of one convolutional cell (edges in `edge_names` order: node i has 2 + i inputs) by a
    `TOP_K` rule; with `skip_cap`, at most that many skip connections (P-DARTS)."""
    edges = unit(rule, TOP_K)
    fan_in = [2 + i for i in range(nodes)]

    def cell(rows):
        return edges(rows, ops, fan_in, k, edge_probs)

    def kept(rows):  # (row, op) of each kept edge: node i's rows start after those of nodes < i
        starts = [sum(fan_in[:i]) for i in range(nodes)]
        return [(starts[n // k] + j, op) for n, (op, j) in enumerate(cell(rows))]

    if skip_cap is None:
        return cell(probs)
    from .skip_cap import cap_skips

    return cell(cap_skips(probs, ops, skip_cap, kept))


def derive(
    probs: dict,
    ops: Sequence[str],
    nodes: int,
    k: int = 2,
    edge_probs: dict | None = None,
    rule: str = "darts",
    skip_cap: int | None = None,
) -> Genotype:
    """Genotype from {'normal': probs, 'reduce': probs} by `rule` (a name in TOP_K); the output
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
    """Each edge's op by NAS-Bench-201's rule (argmax.py); `skip_cap`: at most that many skip connections."""
    edges = unit("nas-bench-201")

    def choose(rows):
        return [op for op, _ in edges(rows, ops)]

    rows = _rows(probs)
    if skip_cap is not None:
        from .skip_cap import cap_skips

        rows = cap_skips(rows, ops, skip_cap, lambda r: list(enumerate(choose(r))))
    return choose(rows)


def _rows(x):
    return x.tolist() if hasattr(x, "tolist") else x
