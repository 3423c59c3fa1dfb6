"""Recurrent genotypes (Sec. 2.1 and 3.1.2), as plain data: node 0 is the cell's input state (x_t and
h_{t-1} combined); node i = 1..N takes exactly one predecessor j < i through one activation op; the cell's
output h_t averages the nodes in `concat`. The official code prints

    Genotype(recurrent=[('relu', 0), ('relu', 1), ('tanh', 2), ...], concat=range(1, 9))

with the same class name as the convolutional form; `parse_recurrent` reads that (and
`RecurrentGenotype(...)`, and this package's JSON) without eval, as core.genotype.parse does.
This module needs no torch.
"""

from __future__ import annotations

import ast
import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Sequence

from ..methods.derivations.darts import edges as strongest_edges
from ..core.genotype import (
    PUBLISHED,
    Edge,
    GenotypeError,
    call_name,
    check_size,
    edge_pairs,
    format_concat,
    genotype_text,
    is_convolutional_text,
    json_object,
    literal,
    load_named,
    node_list,
    parse_tree,
    short,
    source,
)

RECURRENT_OPS = ("none", "tanh", "relu", "sigmoid", "identity")  # the paper's candidates, official order


@dataclass(frozen=True)
class RecurrentGenotype:
    recurrent: tuple[Edge, ...]
    concat: tuple[int, ...]

    def __post_init__(self):
        try:
            edges = tuple((str(op), int(j)) for op, j in self.recurrent)
        except (TypeError, ValueError):
            raise GenotypeError(
                f"recurrent must be a list of (op name, input index) pairs, got {self.recurrent!r}"
            ) from None
        object.__setattr__(self, "recurrent", edges)
        object.__setattr__(self, "concat", tuple(int(i) for i in self.concat))
        if not edges:
            raise GenotypeError("recurrent has no nodes; each node is one (op, input) pair")
        for k, (op, j) in enumerate(edges):
            if not 0 <= j <= k:
                raise GenotypeError(
                    f"recurrent node {k + 1} ({short(op)}, {j}): input {j} is out of range "
                    f"(node {k + 1} can take inputs 0..{k})"
                )
        bad = [i for i in self.concat if not 0 <= i <= len(edges)]
        if bad or not self.concat:
            raise GenotypeError(f"concat {list(self.concat)}: nodes must lie in 0..{len(edges)}")

    @property
    def nodes(self) -> int:
        return len(self.recurrent)

    def ops(self) -> set[str]:
        return {op for op, _ in self.recurrent}

    def __str__(self) -> str:
        return format_recurrent(self)

    def to_dict(self) -> dict:
        return {"recurrent": [[op, j] for op, j in self.recurrent], "concat": list(self.concat)}

    @classmethod
    def from_dict(cls, data: dict) -> RecurrentGenotype:
        missing = [f for f in ("recurrent", "concat") if f not in data]
        if missing:
            raise GenotypeError(f"recurrent genotype is missing field(s) {missing}; it has ['recurrent', 'concat']")
        unknown = sorted(set(data) - {"recurrent", "concat"})
        if unknown:
            raise GenotypeError(f"unknown recurrent genotype field(s) {unknown}; it has ['recurrent', 'concat']")
        try:
            return cls(tuple(edge_pairs(data["recurrent"])), tuple(node_list(data["concat"], "concat")))
        except (TypeError, ValueError) as err:
            if isinstance(err, GenotypeError):
                raise
            raise GenotypeError(f"malformed recurrent genotype: {err}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


def format_recurrent(g: RecurrentGenotype) -> str:
    """The official code's printed form (its class is called Genotype too), so logs stay interchangeable."""
    return f"Genotype(recurrent={[tuple(e) for e in g.recurrent]!r}, concat={format_concat(g.concat)})"


def is_recurrent_text(text: str) -> bool:
    """Does genotype text (printed form or JSON) describe a recurrent cell?"""
    text = text.strip()
    if text.startswith("{"):
        try:
            return "recurrent" in json.loads(text)
        except (ValueError, TypeError, RecursionError):
            return False
    return "recurrent" in text.split("[", 1)[0]


def parse_recurrent(text: str) -> RecurrentGenotype:
    """Parse the official printed form of a recurrent cell, or this package's JSON form."""
    check_size(text)
    text = text.strip()
    if text.startswith("{"):
        return RecurrentGenotype.from_dict(json_object(text))
    if "=" in text.split("(", 1)[0]:  # "DARTS_V2 = Genotype(...)" pasted from rnn/genotypes.py
        text = text.split("=", 1)[1].strip()
    tree = parse_tree(text)
    if not (isinstance(tree, ast.Call) and call_name(tree) in ("Genotype", "RecurrentGenotype")):
        raise GenotypeError(
            "recurrent genotype text must look like Genotype(recurrent=[('relu', 0), ...], concat=range(1, 9))"
        )
    fields = ("recurrent", "concat")
    if len(tree.args) > len(fields):
        raise GenotypeError(f"a recurrent genotype has {len(fields)} fields, got {len(tree.args)} positional values")
    values = dict(zip(fields, (literal(a) for a in tree.args)))
    for kw in tree.keywords:
        if kw.arg is None:
            raise GenotypeError(f"unexpected expression **{source(kw.value)} in genotype text; name each field")
        if kw.arg not in fields:
            close = difflib.get_close_matches(str(kw.arg), fields, n=1)
            raise GenotypeError(
                f"unknown recurrent genotype field {kw.arg!r}" + (f"; did you mean {close[0]!r}?" if close else "")
            )
        values[kw.arg] = literal(kw.value)
    return RecurrentGenotype.from_dict(values)


def check_recurrent_ops(g: RecurrentGenotype, known_ops: Iterable[str] = RECURRENT_OPS) -> RecurrentGenotype:
    """Reject a recurrent genotype naming an op outside `known_ops`, or 'none' (a node needs an op)."""
    known = [op for op in known_ops if op != "none"]
    for k, (op, j) in enumerate(g.recurrent):
        if op not in known:
            close = difflib.get_close_matches(op, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise GenotypeError(
                f"recurrent node {k + 1} ({short(op)}, {j}): unknown op {short(op)}; {hint}known ops: {', '.join(known)}"
            )
    return g


def _r(edges, concat=range(1, 9)) -> RecurrentGenotype:
    return RecurrentGenotype(tuple(edges), tuple(concat))


# Published recurrent cells (PTB searches), as in the official rnn/genotypes.py.
RECURRENT_PUBLISHED: dict[str, RecurrentGenotype] = {
    # DARTS first order.
    "DARTS_RNN_V1": _r(
        [("relu", 0), ("relu", 1), ("tanh", 2), ("relu", 3), ("relu", 4), ("identity", 1), ("relu", 5), ("relu", 1)]
    ),
    # DARTS second order: the paper's cell, 55.7 test perplexity on PTB with 23M parameters.
    "DARTS_RNN_V2": _r(
        [
            ("sigmoid", 0),
            ("relu", 1),
            ("relu", 1),
            ("identity", 1),
            ("tanh", 2),
            ("sigmoid", 5),
            ("tanh", 3),
            ("relu", 5),
        ]
    ),
    # Pham et al., ENAS (ICML 2018), as transcribed in the DARTS release: 11 nodes.
    "ENAS_RNN": _r(
        [
            ("tanh", 0),
            ("tanh", 1),
            ("relu", 1),
            ("tanh", 3),
            ("tanh", 3),
            ("relu", 3),
            ("relu", 4),
            ("relu", 7),
            ("relu", 8),
            ("relu", 8),
            ("relu", 8),
        ],
        concat=(2, 5, 6, 9, 10, 11),
    ),
}
RECURRENT_PUBLISHED["DARTS_RNN"] = RECURRENT_PUBLISHED["DARTS_RNN_V2"]  # the official code's DARTS = DARTS_V2


def load_recurrent_genotype(spec: str | Path, known_ops: Iterable[str] | None = RECURRENT_OPS) -> RecurrentGenotype:
    """A recurrent genotype from a registry name, a genotype.json, a run folder, or pasted text."""

    def parse_text(text: str) -> RecurrentGenotype:
        if is_convolutional_text(text):
            raise GenotypeError(
                f"{short(str(spec))} is a convolutional genotype; a recurrent one has recurrent=[...] and concat"
            )
        return parse_recurrent(text)

    g = load_named(spec, RECURRENT_PUBLISHED, parse_text, "published recurrent genotype")
    return check_recurrent_ops(g, known_ops) if known_ops is not None else g


def names_recurrent(spec: str | Path) -> bool:
    """Does a spec (name, file, folder or text) name a recurrent genotype? False when it names nothing."""
    if str(spec) in RECURRENT_PUBLISHED:
        return True
    if str(spec) in PUBLISHED:
        return False
    try:
        text = genotype_text(str(spec))
    except GenotypeError:
        return False
    return text is not None and is_recurrent_text(text)


def recurrent_edge_names(nodes: int) -> list[str]:
    """Readable names of a recurrent search cell's edges in the alphas' row order: '1<-0', '2<-0', '2<-1', ..."""
    return [f"{i}<-{j}" for i in range(1, nodes + 1) for j in range(i)]


def derive_recurrent(probs, ops: Sequence[str], nodes: int) -> RecurrentGenotype:
    """A recurrent genotype from the search cell's probabilities (edges x ops, rows '1<-0', '2<-0', '2<-1', ...).

    Each node keeps one predecessor, the one whose best non-`none` op is strongest, through that op
    (Sec. 2.4: "retain the top-1 (...) for recurrent cells"), by the paper's rule (methods/derivations/darts.py) with k = 1.
    The output averages all nodes 1..N.
    """
    edges = strongest_edges(probs, ops, list(range(1, nodes + 1)), k=1)
    return RecurrentGenotype(tuple(edges), tuple(range(1, nodes + 1)))
