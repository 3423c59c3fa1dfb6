"""Genotypes: the discrete cell a search hands to training, as plain data.

A convolutional cell has two input nodes (0 and 1: the outputs of the two previous cells) and N
intermediate nodes (2 .. N+1). Node i takes exactly two inputs, each through one operation, and the
cell output concatenates the nodes listed in `*_concat`. The official code prints genotypes as

    Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), reduce=[...], reduce_concat=range(2, 6))

which `parse` reads back without `eval`, as users paste that form from papers and logs.
This module needs no torch: genotypes are data.
"""

from __future__ import annotations

import ast
import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

Edge = tuple[str, int]  # (op name, input node index)

CELL_KINDS = ("normal", "reduce")


class GenotypeError(ValueError):
    """A genotype that is malformed or names something unknown; the message names the bad element."""


def edge_names(nodes: int) -> list[str]:
    """Readable names of the supernet's edges in their canonical order: '2<-0', '2<-1', '3<-0', ..."""
    return [f"{2 + i}<-{j}" for i in range(nodes) for j in range(2 + i)]


@dataclass(frozen=True)
class Genotype:
    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self):
        # Normalise lists (from JSON or literals) to tuples so genotypes hash and compare by value.
        for kind in CELL_KINDS:
            edges = tuple((str(op), int(j)) for op, j in getattr(self, kind))
            object.__setattr__(self, kind, edges)
            object.__setattr__(self, f"{kind}_concat", tuple(int(i) for i in getattr(self, f"{kind}_concat")))
        _check_structure(self)

    @property
    def nodes(self) -> int:
        return len(self.normal) // 2

    def ops(self) -> set[str]:
        return {op for kind in CELL_KINDS for op, _ in getattr(self, kind)}

    def __str__(self) -> str:
        return format_genotype(self)

    def to_dict(self) -> dict:
        return {
            kind: [[op, j] for op, j in getattr(self, kind)] for kind in CELL_KINDS
        } | {f"{kind}_concat": list(getattr(self, f"{kind}_concat")) for kind in CELL_KINDS}

    @classmethod
    def from_dict(cls, data: dict) -> "Genotype":
        fields = ("normal", "normal_concat", "reduce", "reduce_concat")
        missing = [f for f in fields if f not in data]
        if missing:
            raise GenotypeError(f"genotype is missing field(s) {missing}; a genotype has {list(fields)}")
        try:
            return cls(*(edge_pairs(data[f]) if "concat" not in f else list(data[f]) for f in fields))
        except (TypeError, ValueError) as err:
            if isinstance(err, GenotypeError):
                raise
            raise GenotypeError(f"malformed genotype: {err}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


def edge_pairs(items) -> list[Edge]:
    """Edges as (op, input) pairs; also accepts the per-node pair form ((op, i), (op, j)) of AutoDL."""
    out = []
    for item in items:
        if len(item) == 2 and all(isinstance(e, (list, tuple)) for e in item):
            out.extend(edge_pairs(item))
        elif len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], int) and not isinstance(item[1], bool):
            out.append((item[0], item[1]))
        else:
            raise GenotypeError(f"edge {item!r} is not an (op name, input index) pair")
    return out


def _check_structure(g: Genotype) -> None:
    for kind in CELL_KINDS:
        edges = getattr(g, kind)
        if not edges or len(edges) % 2:
            raise GenotypeError(f"{kind} has {len(edges)} edges; each intermediate node takes exactly 2 inputs")
        nodes = len(edges) // 2
        for k, (op, j) in enumerate(edges):
            node = 2 + k // 2
            if not 0 <= j < node:
                raise GenotypeError(
                    f"{kind} edge {k} ({op!r}, {j}) of node {node}: input {j} is out of range "
                    f"(node {node} can take inputs 0..{node - 1})")
        concat = getattr(g, f"{kind}_concat")
        bad = [i for i in concat if not 0 <= i < 2 + nodes]
        if bad or not concat:
            raise GenotypeError(f"{kind}_concat {list(concat)}: nodes must lie in 0..{1 + nodes}")
    if len(g.normal) != len(g.reduce):
        raise GenotypeError(f"normal has {len(g.normal) // 2} nodes but reduce has {len(g.reduce) // 2}; they must match")


def check_ops(g: Genotype, known_ops: Iterable[str]) -> Genotype:
    """Reject a genotype that names an op outside `known_ops` (the OPS registry), naming the edge."""
    known = list(known_ops)
    for kind in CELL_KINDS:
        for k, (op, j) in enumerate(getattr(g, kind)):
            if op not in known:
                close = difflib.get_close_matches(op, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise GenotypeError(f"{kind} edge {k} ({op!r}, {j}): unknown op {op!r}; {hint}known ops: {', '.join(known)}")
    return g


def format_concat(concat: tuple[int, ...]) -> str:
    if len(concat) > 1 and list(concat) == list(range(concat[0], concat[-1] + 1)):
        return f"range({concat[0]}, {concat[-1] + 1})"
    return str(list(concat))


def format_genotype(g: Genotype) -> str:
    """The official code's printed form, so logs and papers stay interchangeable."""
    parts = []
    for kind in CELL_KINDS:
        parts.append(f"{kind}={[tuple(e) for e in getattr(g, kind)]!r}")
        parts.append(f"{kind}_concat={format_concat(getattr(g, f'{kind}_concat'))}")
    return f"Genotype({', '.join(parts)})"


# ----------------------------------------------------------------------------------------------
# Parsing without eval: walk the syntax tree and accept only literals, lists, tuples and range().

_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


def literal(node: ast.AST):
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float)):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [literal(e) for e in node.elts]
    if isinstance(node, ast.Call) and call_name(node) == "range" and not node.keywords:
        args = [literal(a) for a in node.args]
        if all(isinstance(a, int) for a in args) and 1 <= len(args) <= 3:
            return list(range(*args))
    raise GenotypeError(f"unexpected expression {ast.unparse(node)!r} in genotype text")


def call_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _drop_weights(items):
    # Some forks print edges as (op, input, probability); the probability is not part of the cell.
    return [item[:2] if isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) else item
            for item in items]


def parse(text: str) -> Genotype:
    """Parse the official printed form, or this package's JSON form, into a Genotype."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return Genotype.from_dict(json.loads(text))
        except json.JSONDecodeError as err:
            raise GenotypeError(f"genotype JSON is malformed: {err}") from None
    if "=" in text.split("(", 1)[0]:  # "DARTS_V2 = Genotype(...)" pasted from a genotypes.py
        text = text.split("=", 1)[1].strip()
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as err:
        raise GenotypeError(f"cannot read genotype text: {err.msg} at column {err.offset}") from None
    if not (isinstance(tree, ast.Call) and call_name(tree) == "Genotype"):
        raise GenotypeError("genotype text must look like Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)")
    if len(tree.args) > len(_FIELDS):
        raise GenotypeError(f"Genotype takes {len(_FIELDS)} fields, got {len(tree.args)} positional values")
    values = dict(zip(_FIELDS, (literal(a) for a in tree.args)))
    for kw in tree.keywords:
        if kw.arg in ("connectN", "connects") and isinstance(kw.value, ast.Constant) and kw.value.value is None:
            continue  # AutoDL's genotypes carry these extra fields, None for every DARTS-space cell
        if kw.arg not in _FIELDS:
            close = difflib.get_close_matches(str(kw.arg), _FIELDS, n=1)
            raise GenotypeError(f"unknown genotype field {kw.arg!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
        values[kw.arg] = literal(kw.value)
    for kind in CELL_KINDS:
        if kind in values:
            values[kind] = _drop_weights(values[kind])
    return Genotype.from_dict(values)


# ----------------------------------------------------------------------------------------------
# Published cells (CIFAR-10 searches), by name. Sources: the papers' released genotypes.

def _g(normal, reduce, normal_concat=(2, 3, 4, 5), reduce_concat=(2, 3, 4, 5)) -> Genotype:
    return Genotype(tuple(normal), tuple(normal_concat), tuple(reduce), tuple(reduce_concat))


PUBLISHED: dict[str, Genotype] = {
    # Liu et al., DARTS (ICLR 2019), first order: 3.00 % on CIFAR-10.
    "DARTS_V1": _g(
        [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
         ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
         ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)]),
    # DARTS second order: 2.76 +- 0.09 % with 3.3M parameters (the paper's headline cell).
    "DARTS_V2": _g(
        [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
         ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
        [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
         ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)]),
    # Xu et al., PC-DARTS (ICLR 2020), CIFAR-10 search: 2.57 %.
    "PC_DARTS": _g(
        [("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
         ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)],
        [("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
         ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)]),
    # Chen et al., P-DARTS (ICCV 2019): 2.50 %.
    "PDARTS": _g(
        [("skip_connect", 0), ("dil_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
         ("sep_conv_3x3", 1), ("sep_conv_3x3", 3), ("sep_conv_3x3", 0), ("dil_conv_5x5", 4)],
        [("avg_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("dil_conv_5x5", 2),
         ("max_pool_3x3", 0), ("dil_conv_3x3", 1), ("dil_conv_3x3", 1), ("dil_conv_5x5", 3)]),
    # Dong & Yang, GDAS (CVPR 2019), as released by the authors: 2.93 %.
    "GDAS": _g(
        [("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 0), ("sep_conv_5x5", 2),
         ("sep_conv_3x3", 3), ("skip_connect", 0), ("sep_conv_5x5", 4), ("sep_conv_3x3", 3)],
        [("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("sep_conv_5x5", 2), ("sep_conv_5x5", 1),
         ("dil_conv_5x5", 2), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("sep_conv_5x5", 1)]),
    # Zoph et al., NASNet-A (CVPR 2018), as transcribed in the DARTS release: 5 nodes.
    "NASNet": _g(
        [("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
         ("avg_pool_3x3", 1), ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
         ("sep_conv_3x3", 1), ("skip_connect", 1)],
        [("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
         ("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2),
         ("sep_conv_3x3", 2), ("max_pool_3x3", 1)],
        normal_concat=(2, 3, 4, 5, 6), reduce_concat=(4, 5, 6)),
    # Real et al., AmoebaNet-A (AAAI 2019), as transcribed in the DARTS release: 5 nodes.
    "AmoebaNet": _g(
        [("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2),
         ("sep_conv_3x3", 0), ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1),
         ("skip_connect", 0), ("avg_pool_3x3", 1)],
        [("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2),
         ("sep_conv_7x7", 0), ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1),
         ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)],
        normal_concat=(4, 5, 6), reduce_concat=(3, 4, 6)),
}
PUBLISHED["DARTS"] = PUBLISHED["DARTS_V2"]  # the official code's alias


def load_genotype(spec: str | Path, known_ops: Iterable[str] | None = None) -> Genotype:
    """A genotype from a registry name, a genotype.json, a search run folder, or pasted text."""
    g = load_named(spec, PUBLISHED, parse, "published genotype")
    return check_ops(g, known_ops) if known_ops is not None else g


def load_named(spec: str | Path, registry: dict, parse_text, what: str):
    """registry[spec], or the genotype in the file, run folder or text `spec` names, read by `parse_text`."""
    spec_str = str(spec)
    if spec_str in registry:
        return registry[spec_str]
    text = genotype_text(spec_str)
    if text is None:
        close = difflib.get_close_matches(spec_str, registry, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise GenotypeError(f"{spec_str!r} is neither a {what}, a file nor genotype text; {hint}"
                            f"published: {', '.join(sorted(registry))}")
    return parse_text(text)


def genotype_text(spec: str) -> str | None:
    """The genotype text a spec names: the file's, the run folder's genotype.json, or the spec itself."""
    path = Path(spec)
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except OSError:  # text longer than a file name may be
        is_dir = is_file = False
    if is_dir:
        path = path / "genotype.json"
        if not path.exists():
            raise GenotypeError(f"{spec} is a folder without genotype.json; give a finished search run folder")
        return path.read_text()
    if is_file:
        return _unwrapped(path.read_text())
    if path.suffix == ".json":
        raise GenotypeError(f"genotype file {path} does not exist")
    if "(" in spec or spec.lstrip().startswith("{"):
        return spec
    return None


def _unwrapped(text: str) -> str:
    """A file's genotype text: a record that holds its genotype under "genotype" (RUN/derived/<name>.json of
    `dartsnas derive`) gives that genotype's JSON; anything else is returned as it is."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(data, dict) and isinstance(data.get("genotype"), dict):
            return json.dumps(data["genotype"])
    return text


def is_convolutional_text(text: str) -> bool:
    text = text.strip()
    if text.startswith("{"):
        try:
            return "normal" in json.loads(text)
        except (json.JSONDecodeError, TypeError):
            return False
    return "normal" in text.split("[", 1)[0]
