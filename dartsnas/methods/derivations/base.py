"""What every derivation rule answers (Sec. 2.4): from a finished search to a discrete cell.

A rule over probabilities answers one hook,

    edges(probs, ops, fan_in, k, edge_probs) -> [(op, input), ...]

`probs` is edges x ops, the edges of node i (which has `fan_in[i]` inputs, 0..fan_in[i]-1) after those of
node i-1; `k` is how many inputs a node keeps (2 in convolutional cells, 1 in recurrent ones; None in a space
that keeps every edge, NAS-Bench-201's); `edge_probs` optionally scales each edge's strength (PC-DARTS edge
normalisation). It returns the kept (op, input) edges node by node, each node's strongest first. Rules over
probabilities are pure Python: they need no torch.

A rule that evaluates the network (DARTS-PT, branch and bound) answers

    select(net, generator, **options) -> (genotype, evidence)

where `net` is a small object the caller provides (the convolutional side's adapter, conv/rederive.py) that
evaluates cells or masked mixtures on held-out batches and tunes the supernet; each such rule's module says
what it asks of `net`. Neither kind imports the spaces that call it.

The skip cap (P-DARTS, skip_cap.py) wraps any rule over probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Edges = list[tuple[str, int]]
Rule = Callable[..., Edges]  # edges(probs, ops, fan_in, k, edge_probs) -> edges


def checked(probs, ops: Sequence[str], fan_in: Sequence[int]) -> tuple[list[int], list[list[float]]]:
    """(indices of the non-`none` candidates, probabilities as rows of floats), checked for shape."""
    candidates = [i for i, name in enumerate(ops) if name != "none"]
    if not candidates:
        raise ValueError("the candidate set has no op besides 'none'; nothing can be derived")
    rows = [list(map(float, row)) for row in as_rows(probs)]
    if len(rows) != sum(fan_in) or any(len(r) != len(ops) for r in rows):
        raise ValueError(f"probabilities must be {sum(fan_in)} edges x {len(ops)} ops for {len(fan_in)} nodes")
    return candidates, rows


def as_rows(x):
    """Nested lists of a tensor, array or list."""
    return x.tolist() if hasattr(x, "tolist") else x
