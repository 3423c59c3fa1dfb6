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
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable

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
        return {kind: [[op, j] for op, j in getattr(self, kind)] for kind in CELL_KINDS} | {
            f"{kind}_concat": list(getattr(self, f"{kind}_concat")) for kind in CELL_KINDS
        }

    @classmethod
    def from_dict(cls, data: dict) -> Genotype:
        fields = ("normal", "normal_concat", "reduce", "reduce_concat")
        missing = [f for f in fields if f not in data]
        if missing:
            raise GenotypeError(f"genotype is missing field(s) {missing}; a genotype has {list(fields)}")
        unknown = sorted(set(data) - set(fields) - {"connectN", "connects"})  # AutoDL's extra fields
        if unknown:
            raise GenotypeError(f"unknown genotype field(s) {unknown}; a genotype has {list(fields)}")
        try:
            return cls(*(edge_pairs(data[f]) if "concat" not in f else node_list(data[f], f) for f in fields))
        except (TypeError, ValueError) as err:
            if isinstance(err, GenotypeError):
                raise
            raise GenotypeError(f"malformed genotype: {err}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


def edge_pairs(items) -> list[Edge]:
    """Edges as (op, input) pairs; also accepts the per-node pair form ((op, i), (op, j)) of AutoDL."""
    if not isinstance(items, (list, tuple)):
        raise GenotypeError(f"edges must be a list of (op name, input index) pairs, got {short(items)}")
    out = []
    for item in items:
        if not isinstance(item, (list, tuple)):
            raise GenotypeError(f"edge {short(item)} is not an (op name, input index) pair")
        if len(item) == 2 and all(isinstance(e, (list, tuple)) for e in item):
            out.extend(edge_pairs(item))
        elif len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], int) and not isinstance(item[1], bool):
            out.append((item[0], item[1]))
        else:
            raise GenotypeError(f"edge {short(item)} is not an (op name, input index) pair")
    return out


def node_list(value, field: str) -> list[int]:
    """A concat field as read from text: whole node numbers only, as a float or a string would be silently
    truncated or split into digits by int()."""
    if not (isinstance(value, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in value)):
        raise GenotypeError(
            f"{field} must be a list of node numbers like [2, 3, 4, 5] or range(2, 6), got {short(value)}"
        )
    return list(value)


def short(value, limit: int = 60) -> str:
    """repr of a value, cut to `limit` characters: a message quotes what was wrong, not a megabyte of it."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# A genotype is a few hundred characters (a 10-node cell about 1,000) nested 4 deep: text far larger or
# deeper is not one, and is refused before a parser spends seconds on it or runs out of recursion.
MAX_TEXT = 100_000
MAX_DEPTH = 20
MAX_FILE_BYTES = 16 * 2**20  # a genotype.json, or a derive record with all its evidence


def check_size(text: str) -> None:
    """Refuse genotype text too long or too deeply nested to be a genotype, quickly, before parsing it."""
    if len(text) > MAX_TEXT:
        raise GenotypeError(
            f"genotype text of {len(text):,} characters is too long to be a genotype (at most "
            f"{MAX_TEXT:,}); give a registry name, a genotype.json, a run folder or Genotype(...) text"
        )
    depth = deepest = 0
    for bracket in re.sub(r"[^][(){}]", "", text):
        depth += 1 if bracket in "([{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise GenotypeError(
            f"genotype text nests brackets {deepest} deep; a genotype nests at most {MAX_DEPTH} "
            "(a list of (op, input) pairs), so this is not one"
        )


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
                    f"{kind} edge {k} ({short(op)}, {j}) of node {node}: input {j} is out of range "
                    f"(node {node} can take inputs 0..{node - 1})"
                )
        concat = getattr(g, f"{kind}_concat")
        bad = [i for i in concat if not 0 <= i < 2 + nodes]
        if bad or not concat:
            raise GenotypeError(f"{kind}_concat {list(concat)}: nodes must lie in 0..{1 + nodes}")
    if len(g.normal) != len(g.reduce):
        raise GenotypeError(
            f"normal has {len(g.normal) // 2} nodes but reduce has {len(g.reduce) // 2}; they must match"
        )


def check_ops(g: Genotype, known_ops: Iterable[str]) -> Genotype:
    """Reject a genotype that names an op outside `known_ops` (the OPS registry), naming the edge."""
    known = list(known_ops)
    for kind in CELL_KINDS:
        for k, (op, j) in enumerate(getattr(g, kind)):
            if op not in known:
                close = difflib.get_close_matches(op, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise GenotypeError(
                    f"{kind} edge {k} ({short(op)}, {j}): unknown op {short(op)}; {hint}known ops: {', '.join(known)}"
                )
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
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) in (int, float)
    ):
        return -node.operand.value  # a negative index: read, so that the range check names it
    if isinstance(node, (ast.List, ast.Tuple)):
        return [literal(e) for e in node.elts]
    if isinstance(node, ast.Call) and call_name(node) == "range" and not node.keywords:
        args = [literal(a) for a in node.args]
        if all(isinstance(a, int) for a in args) and 1 <= len(args) <= 3 and (len(args) < 3 or args[2]):
            nodes = range(*args)
            if len(nodes) > MAX_TEXT:  # range(10**11) would fill the memory before any check sees it
                raise GenotypeError(f"{source(node)} lists {len(nodes):,} nodes; a cell has a handful")
            return list(nodes)
    raise GenotypeError(
        f"unexpected expression {source(node)} in genotype text; a genotype holds only "
        "quoted op names, whole numbers, lists, tuples and range()"
    )


def source(node: ast.AST) -> str:
    """An expression as written, quoted and cut short for a message."""
    try:
        return short(ast.unparse(node))
    except RecursionError:  # 1+1+1+... thousands deep
        return f"a {type(node).__name__} expression"


def parse_tree(text: str) -> ast.expr:
    """The expression `text` holds, as a syntax tree (nothing in it is run)."""
    try:
        with warnings.catch_warnings():  # "invalid escape sequence" in a quoted op name: the checks name it
            warnings.simplefilter("ignore")
            return ast.parse(text, mode="eval").body
    except SyntaxError as err:
        where = f" at column {err.offset}" if err.offset is not None else ""
        raise GenotypeError(f"cannot read genotype text: {err.msg}{where}") from None
    except (ValueError, RecursionError, MemoryError):  # null bytes; expressions nested too deep for the parser
        raise GenotypeError(
            "cannot read genotype text: it is not a genotype (nested too deeply, or holding "
            "null bytes); write it as Genotype(normal=[...], ...)"
        ) from None


def json_object(text: str) -> dict:
    """The JSON object `text` holds; malformed JSON, or JSON other than an object, is a GenotypeError."""
    try:
        data = json.loads(text)
    except ValueError as err:  # JSONDecodeError, and integers longer than Python converts
        raise GenotypeError(f"genotype JSON is malformed: {str(err)[:200]}") from None
    if not isinstance(data, dict):
        raise GenotypeError(f"genotype JSON must be an object {{...}}, got {type(data).__name__}")
    return data


def call_name(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _drop_weights(items):
    # Some forks print edges as (op, input, probability); the probability is not part of the cell.
    return [
        item[:2] if isinstance(item, list) and len(item) == 3 and isinstance(item[0], str) else item for item in items
    ]


def parse(text: str) -> Genotype:
    """Parse the official printed form, or this package's JSON form, into a Genotype."""
    check_size(text)
    text = text.strip()
    if text.startswith("{"):
        return Genotype.from_dict(json_object(text))
    if "=" in text.split("(", 1)[0]:  # "DARTS_V2 = Genotype(...)" pasted from a genotypes.py
        text = text.split("=", 1)[1].strip()
    tree = parse_tree(text)
    if not (isinstance(tree, ast.Call) and call_name(tree) == "Genotype"):
        raise GenotypeError(
            "genotype text must look like Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)"
        )
    if len(tree.args) > len(_FIELDS):
        raise GenotypeError(f"Genotype takes {len(_FIELDS)} fields, got {len(tree.args)} positional values")
    values = dict(zip(_FIELDS, (literal(a) for a in tree.args)))
    for kw in tree.keywords:
        if kw.arg is None:
            raise GenotypeError(f"unexpected expression **{source(kw.value)} in genotype text; name each field")
        if kw.arg in ("connectN", "connects") and isinstance(kw.value, ast.Constant) and kw.value.value is None:
            continue  # AutoDL's genotypes carry these extra fields, None for every DARTS-space cell
        if kw.arg not in _FIELDS:
            close = difflib.get_close_matches(str(kw.arg), _FIELDS, n=1)
            raise GenotypeError(
                f"unknown genotype field {kw.arg!r}" + (f"; did you mean {close[0]!r}?" if close else "")
            )
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
        [
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("skip_connect", 2),
        ],
        [
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("avg_pool_3x3", 0),
        ],
    ),
    # DARTS second order: 2.76 +- 0.09 % with 3.3M parameters (the paper's headline cell).
    "DARTS_V2": _g(
        [
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("skip_connect", 0),
            ("dil_conv_3x3", 2),
        ],
        [
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
            ("max_pool_3x3", 0),
            ("skip_connect", 2),
            ("skip_connect", 2),
            ("max_pool_3x3", 1),
        ],
    ),
    # Xu et al., PC-DARTS (ICLR 2020), CIFAR-10 search: 2.57 %.
    "PC_DARTS": _g(
        [
            ("sep_conv_3x3", 1),
            ("skip_connect", 0),
            ("sep_conv_3x3", 0),
            ("dil_conv_3x3", 1),
            ("sep_conv_5x5", 0),
            ("sep_conv_3x3", 1),
            ("avg_pool_3x3", 0),
            ("dil_conv_3x3", 1),
        ],
        [
            ("sep_conv_5x5", 1),
            ("max_pool_3x3", 0),
            ("sep_conv_5x5", 1),
            ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 3),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 2),
        ],
    ),
    # Chen et al., P-DARTS (ICCV 2019): 2.50 %.
    "PDARTS": _g(
        [
            ("skip_connect", 0),
            ("dil_conv_3x3", 1),
            ("skip_connect", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 3),
            ("sep_conv_3x3", 0),
            ("dil_conv_5x5", 4),
        ],
        [
            ("avg_pool_3x3", 0),
            ("sep_conv_5x5", 1),
            ("sep_conv_3x3", 0),
            ("dil_conv_5x5", 2),
            ("max_pool_3x3", 0),
            ("dil_conv_3x3", 1),
            ("dil_conv_3x3", 1),
            ("dil_conv_5x5", 3),
        ],
    ),
    # Dong & Yang, GDAS (CVPR 2019), as released by the authors: 2.93 %.
    "GDAS": _g(
        [
            ("skip_connect", 0),
            ("skip_connect", 1),
            ("skip_connect", 0),
            ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 3),
            ("skip_connect", 0),
            ("sep_conv_5x5", 4),
            ("sep_conv_3x3", 3),
        ],
        [
            ("sep_conv_5x5", 0),
            ("sep_conv_3x3", 1),
            ("sep_conv_5x5", 2),
            ("sep_conv_5x5", 1),
            ("dil_conv_5x5", 2),
            ("sep_conv_3x3", 1),
            ("sep_conv_5x5", 0),
            ("sep_conv_5x5", 1),
        ],
    ),
    # Zoph et al., NASNet-A (CVPR 2018), as transcribed in the DARTS release: 5 nodes.
    "NASNet": _g(
        [
            ("sep_conv_5x5", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_5x5", 0),
            ("sep_conv_3x3", 0),
            ("avg_pool_3x3", 1),
            ("skip_connect", 0),
            ("avg_pool_3x3", 0),
            ("avg_pool_3x3", 0),
            ("sep_conv_3x3", 1),
            ("skip_connect", 1),
        ],
        [
            ("sep_conv_5x5", 1),
            ("sep_conv_7x7", 0),
            ("max_pool_3x3", 1),
            ("sep_conv_7x7", 0),
            ("avg_pool_3x3", 1),
            ("sep_conv_5x5", 0),
            ("skip_connect", 3),
            ("avg_pool_3x3", 2),
            ("sep_conv_3x3", 2),
            ("max_pool_3x3", 1),
        ],
        normal_concat=(2, 3, 4, 5, 6),
        reduce_concat=(4, 5, 6),
    ),
    # Real et al., AmoebaNet-A (AAAI 2019), as transcribed in the DARTS release: 5 nodes.
    "AmoebaNet": _g(
        [
            ("avg_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("sep_conv_3x3", 0),
            ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 0),
            ("avg_pool_3x3", 3),
            ("sep_conv_3x3", 1),
            ("skip_connect", 1),
            ("skip_connect", 0),
            ("avg_pool_3x3", 1),
        ],
        [
            ("avg_pool_3x3", 0),
            ("sep_conv_3x3", 1),
            ("max_pool_3x3", 0),
            ("sep_conv_7x7", 2),
            ("sep_conv_7x7", 0),
            ("avg_pool_3x3", 1),
            ("max_pool_3x3", 0),
            ("max_pool_3x3", 1),
            ("conv_7x1_1x7", 0),
            ("sep_conv_3x3", 5),
        ],
        normal_concat=(4, 5, 6),
        reduce_concat=(3, 4, 6),
    ),
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
    if not spec_str.strip():
        raise GenotypeError(
            f"the genotype is empty; give a {what} ({', '.join(sorted(registry)[:3])}, ...), "
            "a genotype.json, a run folder or genotype text"
        )
    check_size(spec_str)
    text = genotype_text(spec_str)
    if text is None:
        close = difflib.get_close_matches(spec_str, registry, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise GenotypeError(
            f"{short(spec_str)} is neither a {what}, a file nor genotype text; {hint}"
            f"published: {', '.join(sorted(registry))}"
        )
    if text is spec_str:
        return parse_text(text)
    try:
        return parse_text(text)
    except GenotypeError as err:  # read from a file: name it, as the text the message quotes is not on screen
        raise GenotypeError(f"{genotype_file(spec_str)}: {err}") from None


def genotype_file(spec: str) -> Path:
    """The file a spec that names a file or run folder reads its genotype from."""
    path = Path(spec)
    return path / "genotype.json" if path.is_dir() else path


def read_genotype_file(path: Path) -> str:
    """A genotype file's text; too large, unreadable or not UTF-8 is a GenotypeError naming the file."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise GenotypeError(
                f"{path} is {path.stat().st_size:,} bytes, too large to be a genotype file (at most "
                f"{MAX_FILE_BYTES:,}); give the genotype.json a search wrote"
            )
        return path.read_bytes().decode("utf-8-sig")  # -sig: a byte order mark some editors write is no error
    except UnicodeDecodeError as err:
        raise GenotypeError(
            f"{path} is not UTF-8 text (byte {err.start}); give a genotype.json or a text file holding Genotype(...)"
        ) from None
    except OSError as err:
        raise GenotypeError(f"cannot read {path} ({err.strerror or err}); give a readable genotype file") from None


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
        return read_genotype_file(path)
    if is_file:
        return _unwrapped(read_genotype_file(path))
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
        except (ValueError, RecursionError):  # the parser reports it, once the size checks have run
            return text
        if isinstance(data, dict) and isinstance(data.get("genotype"), dict):
            return json.dumps(data["genotype"])
    return text


def is_convolutional_text(text: str) -> bool:
    text = text.strip()
    if text.startswith("{"):
        try:
            return "normal" in json.loads(text)
        except (ValueError, TypeError, RecursionError):
            return False
    return "normal" in text.split("[", 1)[0]
