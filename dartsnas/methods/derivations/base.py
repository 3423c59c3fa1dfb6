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

where `net` is a small object the caller provides (`Net` below; the convolutional side's adapter is
conv/rederive.py's `SearchNet`) that evaluates the supernet on held-out batches and tunes it; each such rule
says which of its members it uses. Neither kind imports the spaces that call it.

The skip cap (P-DARTS, skip_cap.py) wraps any rule over probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

Edges = list[tuple[str, int]]
Rule = Callable[..., Edges]  # edges(probs, ops, fan_in, k, edge_probs) -> edges


class Net(Protocol):
    """What a rule that evaluates the network asks of its caller."""

    model: Any  # the search network: ops, kinds, fan_in, kept_per_node, probs(), decided, masks, decide(),
    # overridden(decided, masks) (a context computing other decisions and masks), edge_names(), relaxation
    space: str  # the search space's name
    lr: float  # the search's weight learning rate

    def accuracy(self) -> float:
        """The supernet's accuracy as it computes now, on held-out batches (DARTS-PT's measure)."""

    def held_out(self, batches: int) -> Iterable[tuple[Any, Any]]:
        """The first `batches` held-out (inputs, labels), inputs ready for `model`, in a fixed order."""

    def tune(self, epochs: int, lr: float) -> None:
        """`epochs` epochs of the search's own steps, weights in a fresh SGD at the constant rate `lr`."""

    def derive(self) -> Any:
        """The space's genotype of the model as it computes now (its rule over probabilities)."""


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
