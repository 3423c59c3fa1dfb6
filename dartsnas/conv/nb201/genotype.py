"""NAS-Bench-201 cells (Dong & Yang, ICLR 2020, Sec. 2.1) as plain data.

A cell has 4 nodes: node 0 is the cell's input and node i = 1..3 sums every earlier node, each through one
op on its edge; node 3 is the cell's output. Each of the 6 edges carries exactly one of 5 ops (`none` cuts
the edge), so the space holds 5**6 = 15,625 cells, every one trained by the benchmark. The benchmark
writes a cell as

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|

per node 1..3 its incoming edges `op~input` between bars, nodes joined by `+`. `CellGenotype.parse`
reads that (and this package's JSON, {"nas_bench_201": "<string>"}) without eval.

`CellGenotype.index` numbers the cells 0..15,624 (each edge's op index a base-5 digit, edge 1<-0 the
most significant): this package's canonical order, the row order of table.py, and not the benchmark
API's arch index (which follows the order of its own files). This module needs no torch.
"""

from __future__ import annotations

import difflib
import json
import operator
from dataclasses import dataclass
from pathlib import Path

from ...core.genotype import GenotypeError, check_size, genotype_text, load_named

# The benchmark's op names and edge order (NAS-Bench-201, Sec. 2.1; the authors' code lists the ops in
# this order as NAS_BENCH_201 in xautodl/models/cell_operations.py).
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ("1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2")
NODES = 3  # intermediate nodes 1..3 after the input node 0
SPACE_SIZE = len(OPS) ** len(EDGES)  # 15,625 cells

EXAMPLE = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"
JSON_KEY = "nas_bench_201"


def edge_position(node: int, source: int) -> int:
    """Position of edge node<-source in EDGES."""
    return node * (node - 1) // 2 + source


@dataclass(frozen=True)
class CellGenotype:
    edges: tuple[str, ...]  # the op on each edge, in EDGES order

    def __post_init__(self):
        if isinstance(self.edges, str):
            raise GenotypeError(
                "CellGenotype takes the op names of its 6 edges; read the benchmark's string "
                f"form ({EXAMPLE}) with CellGenotype.parse"
            )
        try:
            edges = tuple(self.edges)
        except TypeError:
            raise GenotypeError(f"CellGenotype takes a sequence of 6 op names, got {self.edges!r}") from None
        if len(edges) != len(EDGES):
            raise GenotypeError(f"a NAS-Bench-201 cell has {len(EDGES)} edges ({', '.join(EDGES)}), got {len(edges)}")
        for name, op in zip(EDGES, edges):
            check_op(op, name)
        object.__setattr__(self, "edges", edges)

    @property
    def nodes(self) -> int:
        return NODES

    def ops(self) -> set[str]:
        """The ops the cell uses, `none` included (here it is a choice: a cut edge)."""
        return set(self.edges)

    @property
    def index(self) -> int:
        """Position in the canonical enumeration: op indices as base-5 digits, edge 1<-0 most significant."""
        index = 0
        for op in self.edges:
            index = index * len(OPS) + OPS.index(op)
        return index

    @classmethod
    def from_index(cls, index: int) -> CellGenotype:
        try:
            index = operator.index(index)
        except TypeError:
            raise GenotypeError(f"a cell index is a whole number, got {index!r}") from None
        if not 0 <= index < SPACE_SIZE:
            raise GenotypeError(f"cell index {index} is out of range; the cells are numbered 0..{SPACE_SIZE - 1}")
        ops = []
        for _ in EDGES:
            index, digit = divmod(index, len(OPS))
            ops.append(OPS[digit])
        return cls(tuple(reversed(ops)))

    def __str__(self) -> str:
        """The benchmark's string form."""
        return "+".join(
            "|" + "".join(f"{self.edges[edge_position(i, j)]}~{j}|" for j in range(i)) for i in range(1, NODES + 1)
        )

    @classmethod
    def parse(cls, text: str) -> CellGenotype:
        """The benchmark's string form, or this package's JSON form, surrounding whitespace allowed."""
        if not isinstance(text, str):
            raise GenotypeError(f"a NAS-Bench-201 cell string is text like {EXAMPLE}, got {type(text).__name__}")
        check_size(text)
        text = text.strip()
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except ValueError as err:  # JSONDecodeError, and integers longer than Python converts
                raise GenotypeError(f"NAS-Bench-201 genotype JSON is malformed: {str(err)[:200]}") from None
            return cls.from_dict(data)
        return cls(parse_edges(text))

    def to_dict(self) -> dict:
        return {JSON_KEY: str(self)}

    @classmethod
    def from_dict(cls, data: dict) -> CellGenotype:
        form = f'{{"{JSON_KEY}": "{EXAMPLE}"}}'
        if not isinstance(data, dict):
            raise GenotypeError(f"a NAS-Bench-201 genotype in JSON is an object {form}, got {type(data).__name__}")
        if set(data) != {JSON_KEY}:
            kind = (
                " (a DARTS genotype)" if "normal" in data else " (a recurrent genotype)" if "recurrent" in data else ""
            )
            raise GenotypeError(f"a NAS-Bench-201 genotype in JSON is {form}; got the field(s) {sorted(data)}{kind}")
        if not isinstance(data[JSON_KEY], str):
            raise GenotypeError(f"{JSON_KEY} must be the cell's string like {EXAMPLE}, got {data[JSON_KEY]!r}")
        return cls(parse_edges(data[JSON_KEY].strip()))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


def check_op(op, edge: str) -> None:
    if op not in OPS:
        close = difflib.get_close_matches(str(op), OPS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise GenotypeError(f"edge {edge}: unknown op {short(op)}; {hint}NAS-Bench-201 ops: {', '.join(OPS)}")


def parse_edges(text: str) -> tuple[str, ...]:
    """The 6 ops of the benchmark's string form, in EDGES order; every malformation named."""
    if "|" not in text:
        kind = " (that is a DARTS genotype)" if text.startswith("Genotype(") else ""
        raise GenotypeError(f"{short(text)} is not a NAS-Bench-201 cell string{kind}; write one like {EXAMPLE}")
    parts = text.split("+")
    if len(parts) != NODES:
        raise GenotypeError(
            f"a NAS-Bench-201 cell has {NODES} nodes joined by '+' ({EXAMPLE}), got {len(parts)} in {short(text)}"
        )
    ops = []
    for node, part in enumerate(parts, 1):
        ops.extend(parse_node(node, part.strip()))
    return tuple(ops)


def short(text, limit: int = 60) -> str:
    if not isinstance(text, str):  # an op given as a number or None by CellGenotype(...)
        return repr(text)[:limit]
    return repr(text) if len(text) <= limit else repr(text[:limit] + "...")


def parse_node(node: int, part: str) -> list[str]:
    where = f"node {node} ({short(part)})"
    if len(part) < 2 or not (part.startswith("|") and part.endswith("|")):
        raise GenotypeError(f"{where}: missing bar; a node's edges sit between bars, like |op~0|op~1|")
    entries = [e.strip() for e in part[1:-1].split("|")]
    if len(entries) != node:
        raise GenotypeError(
            f"{where} has {len(entries)} edge(s); node {node} takes exactly {node}, one from "
            f"each of nodes 0..{node - 1} in that order (write none~j for an absent one)"
        )
    ops = []
    for k, entry in enumerate(entries):
        if entry.count("~") != 1:
            problem = "an empty edge" if not entry else f"edge {short(entry)}, which is not op~input"
            raise GenotypeError(f"{where}: {problem}; write each edge as op~input, like nor_conv_3x3~{k}")
        op, source = entry.split("~")
        if not (source.isascii() and source.isdigit()):
            raise GenotypeError(f"{where}: edge {short(entry)} has input {short(source)}, which is not a node number")
        j = int(source)
        if not 0 <= j < node:
            raise GenotypeError(
                f"{where}: edge {short(entry)} has input {j}, out of range (node {node} takes inputs 0..{node - 1})"
            )
        if j != k:
            raise GenotypeError(
                f"{where}: edge {short(entry)} is in the wrong order: input {j} is listed where input "
                f"{k} belongs (a node lists inputs 0..{node - 1}, once each, in order)"
            )
        check_op(op, f"{node}<-{j}")
        ops.append(op)
    return ops


# ----------------------------------------------------------------------------------------------
# Cells the benchmark names or its paper discusses. Accuracies: table.py (test %, 200 epochs, seed mean,
# CIFAR-10 / CIFAR-100 / ImageNet16-120).

PUBLISHED_NB201: dict[str, CellGenotype] = {
    name: CellGenotype.parse(text)
    for name, text in {
        # The optimum of the paper's Table 5 ("optimal" row) on CIFAR-10: 94.37 %. Two cells tie at exactly
        # 94.37333333333333; this one, and the one with nor_conv_1x1 on 3<-1 and nor_conv_3x3 on 3<-2.
        "NB201_BEST_CIFAR10": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
        # Table 5's optimum on CIFAR-100: 73.51 % (the table's only cell at its maximum).
        "NB201_BEST_CIFAR100": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        # Table 5's optimum on ImageNet16-120: 47.31 % (the table's only cell at its maximum).
        "NB201_BEST_IMAGENET16": "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        # The ResNet basic block as a cell, the paper's hand-made baseline (Table 5, "ResNet"); the benchmark's
        # code names it "resnet" (AutoDL-Projects, xautodl/models/cell_searchs/genotypes.py, ResNet_CODE).
        "NB201_RESNET": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
        # Every edge skip_connect: the cell DARTS collapses to on this benchmark (the paper's Table 5, DARTS-V1
        # and V2: 54.30 % on CIFAR-10); the benchmark's code names it "all_idnt".
        "NB201_ALL_SKIP": "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
        # Every edge nor_conv_3x3 and every edge nor_conv_1x1: named "all_c3x3" and "all_c1x1" by the
        # benchmark's code (same file as ResNet_CODE).
        "NB201_ALL_CONV3X3": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "NB201_ALL_CONV1X1": "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|",
    }.items()
}


def load_nb201_genotype(spec: str | Path) -> CellGenotype:
    """A NAS-Bench-201 cell from a registry name, a genotype.json, a run folder, or pasted text."""
    if str(spec).strip().startswith("|"):  # pasted text: core.genotype.genotype_text spots only ( and {
        return CellGenotype.parse(str(spec))
    return load_named(spec, PUBLISHED_NB201, CellGenotype.parse, "published NAS-Bench-201 cell")


def is_nb201_text(text: str) -> bool:
    """Does genotype text (the benchmark's string or JSON) describe a NAS-Bench-201 cell?"""
    text = text.strip()
    if text.startswith("{"):
        try:
            return JSON_KEY in json.loads(text)
        except (ValueError, TypeError, RecursionError):
            return False
    return text.startswith("|")


def names_nb201(spec: str | Path) -> bool:
    """Does a spec (name, file, folder or text) name a NAS-Bench-201 cell? False when it names nothing."""
    text = str(spec)
    if text in PUBLISHED_NB201 or text.strip().startswith("|"):
        return True
    try:
        text = genotype_text(text)
    except GenotypeError:
        return False
    return text is not None and is_nb201_text(text)
