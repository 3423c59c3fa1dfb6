"""Every bad genotype a user can give (text, JSON, a file, a run folder; DARTS, NAS-Bench-201, recurrent) ends in
one clear error line and exit status 2: no traceback, no hang, no code run, no file created or changed.

The bad inputs are generated from valid genotypes by rules (cut, unbalance, inject code, break arity, indices,
types, sizes), so each rule covers every place it applies to."""

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from dartsnas.cli import main
from dartsnas.conv.nb201.genotype import PUBLISHED_NB201, CellGenotype
from dartsnas.core.genotype import PUBLISHED, GenotypeError, parse
from dartsnas.recurrent.genotype import RECURRENT_PUBLISHED, parse_recurrent

DARTS = str(PUBLISHED["DARTS_V2"])
NB201 = str(PUBLISHED_NB201["NB201_BEST_CIFAR10"])
RNN = str(RECURRENT_PUBLISHED["DARTS_RNN"])
MARKER = "pwned-marker"  # what injected code would create in the working folder


def snapshot(folder: Path) -> dict:
    """Every file and folder under `folder`: its bytes' digest and mtime (folders: their listing)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        else:
            out[str(p.relative_to(folder))] = sorted(c.name for c in p.iterdir())
    return out


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working folder (relative specs resolve in it), checked unchanged after the test."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def refused(capsys, folder: Path, *argv: str) -> str:
    """Run the CLI in `folder`; assert exit 2, one error line, no traceback, no marker and nothing changed there."""
    os.chdir(folder)  # relative specs resolve in it; the test's monkeypatch.chdir (workdir) restores the cwd
    capsys.readouterr()  # what an earlier case printed is not this one's
    before = snapshot(folder)
    start = time.perf_counter()
    status = main(list(argv))
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2, (status, out[:300], err[:300])
    assert len(lines) == 1 and lines[0].startswith(f"dartsnas {argv[0]}: error: "), err[:500]
    assert "Traceback" not in err and len(lines[0]) < 1000, err[:500]
    assert not (folder / MARKER).exists() and snapshot(folder) == before
    assert seconds < 5, f"{seconds:.1f} s: a bad genotype must be refused at once"
    return lines[0]


# ---------------------------------------------------------------------------------------------------- generated


def cut_points(text: str, count: int = 8) -> list[str]:
    """The text cut short at `count` evenly spaced places (never whole)."""
    return [text[:k] for k in sorted({max(1, len(text) * i // count) for i in range(count)})]


def unbalanced(text: str) -> list[str]:
    """The text with one bracket of each kind removed, or one extra opened."""
    out = []
    for bracket in "()[]":
        k = text.rfind(bracket)
        out.append(text[:k] + text[k + 1 :])
    return out + [text.replace("[", "[[", 1), text + ")", "(" + text]


# Python code where a genotype goes: none of it may run (it would create MARKER), all of it is refused.
CODE = [
    f"__import__('os').system('touch {MARKER}')",
    f"Genotype(normal=__import__('os').system('touch {MARKER}'), normal_concat=[2], reduce=[], reduce_concat=[2])",
    f"Genotype(normal=[(open('{MARKER}', 'w').write('x'), 0)], normal_concat=[2], reduce=[], reduce_concat=[2])",
    f"Genotype(normal=[('skip_connect', exec('open(\"{MARKER}\", \"w\")'))])",
    "Genotype(normal=[('skip_connect', eval('1'))], normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(normal=(lambda: 1)(), normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(normal=[c for c in ()], normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(normal=().__class__.__bases__, normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(normal=[('skip_connect', 0)] * 2, normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(normal=[(f'{1}', 0)], normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(normal=[((x := 1), 0)], normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(normal=globals(), normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(**{'normal': []})",
    "Genotype(*[1, 2])",
    f"os.system('touch {MARKER}')",
    f"DARTS_V2 = __import__('os').system('touch {MARKER}')",
    DARTS.replace("range(2, 6)", f"range(__import__('os').system('touch {MARKER}'))", 1),
    f"Genotype(recurrent=__import__('os').system('touch {MARKER}'), concat=[1])",
]

EDGES2 = "[('skip_connect', 0), ('skip_connect', 1)]"


def darts(normal=EDGES2, normal_concat="[2]", reduce=EDGES2, reduce_concat="[2]") -> str:
    return f"Genotype(normal={normal}, normal_concat={normal_concat}, reduce={reduce}, reduce_concat={reduce_concat})"


STRUCTURE = [
    darts(normal="[('skip_connect', 0)]"),  # a node with 1 input
    darts(normal="[('skip_connect', 0), ('skip_connect', 1), ('skip_connect', 0)]"),  # 3 inputs
    darts(normal="[]"),
    darts(reduce="[]"),  # no node
    darts(normal=EDGES2[:-1] + ", ('skip_connect', 2), ('skip_connect', 0)]"),  # 2 nodes vs 1
    darts(normal_concat="[]"),
    darts(normal_concat="[0, 9]"),
    darts(reduce_concat="[-1]"),
    darts(normal_concat="range(2, 9)"),
    darts(normal_concat="range(5)"),
    darts(normal_concat="range(-3)"),
    darts(normal_concat="range(2, 6, 0)"),
    darts(normal_concat="range(10**12)"),
    darts(normal_concat="range(99999999999)"),
    darts(normal_concat="[2.5]"),
    darts(normal_concat="[2.0]"),
    darts(normal_concat="['2']"),
    darts(normal_concat="'2'"),
    darts(normal_concat="[True]"),
    darts(normal_concat="None"),
    darts(normal_concat="2"),
    darts(normal="'skip_connect'"),
    darts(normal="[1, 2]"),
    darts(normal="[('skip_connect',), ('skip_connect',)]"),
    darts(normal="[('skip_connect', 0, 1, 2), ('skip_connect', 1)]"),
    darts(normal="[(0, 'skip_connect'), (1, 'x')]"),
    darts(normal="[('skip_connect', 0.0), ('skip_connect', 1)]"),
    darts(normal="[('skip_connect', True), ('x', 1)]"),
    darts(normal="[('skip_connect', 1e400), ('skip_connect', 1)]"),
    darts(normal="[(None, 0), ('skip_connect', 1)]"),
    "Genotype(normal=[], normal=[])",
    "Genotype(normal_concat=[2])",
    "Genotype(1, 2, 3, 4, 5)",
    darts().replace("normal_concat", "normal_conact"),
    DARTS.replace("Genotype", "Genotyp", 1),
    DARTS.replace("Genotype(", "Genotype[", 1),
]

# Input indices: negative, the node itself, a later node, huge; in the first and the last edge of each cell.
INDICES = [
    DARTS.replace(f"('{op}', {j})", f"('{op}', {bad})", 1)
    for op, j in (("sep_conv_3x3", 0), ("dil_conv_3x3", 2), ("max_pool_3x3", 1))
    for bad in (-1, 5, 99, 10**30)
]

UNKNOWN_OPS = [
    DARTS.replace("sep_conv_3x3", "sep_conv_9x9", 1),
    DARTS.replace("skip_connect", "skip", 1),
    DARTS.replace("dil_conv_3x3", "", 1),
    DARTS.replace("max_pool_3x3", "MAX_POOL_3X3", 1),
    DARTS.replace("max_pool_3x3", "none ", 1),
    DARTS.replace("sep_conv_3x3", "sep_conv_3x3\x00", 1),
]

GOOD_JSON = json.loads(json.dumps(PUBLISHED["DARTS_V2"].to_dict()))
JSON_CASES = [
    "[]",
    "[1, 2]",
    "5",
    "null",
    '"DARTS_V2"',
    "true",
    "{}",
    "{",
    '{"normal": }',
    json.dumps({k: v for k, v in GOOD_JSON.items() if k != "reduce"}),
    json.dumps(GOOD_JSON | {"colour": "red"}),
    json.dumps(GOOD_JSON | {"normal": 5}),
    json.dumps(GOOD_JSON | {"normal": "sep_conv_3x3"}),
    json.dumps(GOOD_JSON | {"normal": [{"op": "skip_connect", "input": 0}] * 8}),
    json.dumps(GOOD_JSON | {"normal_concat": "2345"}),
    json.dumps(GOOD_JSON | {"normal_concat": 2}),
    json.dumps(GOOD_JSON | {"normal_concat": [2.0, 3]}),
    json.dumps(GOOD_JSON | {"normal_concat": [True]}),
    json.dumps(GOOD_JSON | {"normal_concat": [None]}),
    json.dumps(GOOD_JSON | {"reduce_concat": [2, 99]}),
    json.dumps(GOOD_JSON | {"normal": [["sep_conv_3x3", 0.5]] * 8}),
    json.dumps(GOOD_JSON | {"normal": [["sep_conv_3x3", "0"]] * 8}),
    json.dumps(GOOD_JSON).replace("[2, 3, 4, 5]", "[NaN]", 1),
    json.dumps(GOOD_JSON).replace("[2, 3, 4, 5]", "[Infinity]", 1),
    json.dumps(GOOD_JSON).replace("[2, 3, 4, 5]", "[1e999]", 1),
    json.dumps(GOOD_JSON).replace("[2, 3, 4, 5]", "[" + "9" * 5000 + "]", 1),
    json.dumps({"recurrent": 5, "concat": [1]}),
    json.dumps({"nas_bench_201": 5}),
]

HUGE = [
    "",
    " ",
    "\n\t",
    "x" * 10_000_000,
    "(" * 10_000_000,
    "Genotype(normal=[" + ", ".join(f"('skip_connect', {i // 2})" for i in range(200_000)) + "])",
    "Genotype(normal=" + "[" * 100_000 + "]" * 100_000 + ")",
    "Genotype(normal=" + "[" * 500 + "]" * 500 + ")",
    '{"normal": ' + "[" * 100_000 + "]" * 100_000 + "}",
    '{"normal": ' + "[" * 900 + "]" * 900 + "}",
    '{"recurrent": ' + "[" * 5000 + "]" * 5000 + "}",
    '{"nas_bench_201": ' + "[" * 5000 + "]" * 5000 + "}",
    "|" * 1_000_000,
    "|none~0|" * 200_000,
]


def nb201_cases() -> list[str]:
    """NAS-Bench-201 strings broken one way each, at each node where the rule applies."""
    nodes = NB201.split("+")
    cases = [
        "|",
        "||",
        "|+|+|",
        "+".join(nodes[:2]),
        NB201 + "+|none~0|",
        NB201.replace("+", "", 1),
        NB201.replace("|", "", 1),
        NB201[:-1],
        NB201.replace("~", "", 1),
        NB201.replace("~0", "~", 1),
        NB201.replace("~0", "~-1", 1),
        NB201.replace("~0", "~٠", 1),
        NB201.replace("~1", "~0", 1),
        NB201.replace("~2", "~3", 1),
        NB201.replace("~0|", "~0~0|", 1),
        NB201.replace("|", "||", 2),
        NB201.replace("nor_conv_3x3", "conv_3x3", 1),
        NB201.replace("skip_connect", "sep_conv_3x3", 1),
        NB201.replace("nor_conv_1x1", "", 1),
        '{"nas_bench_201": 5}',
        '{"nas_bench_201": null}',
        json.dumps({"nas_bench_201": NB201, "extra": 1}),
        json.dumps({"nas_bench_201": NB201[:-3]}),
    ]
    for k, node in enumerate(nodes):  # a node with one edge too few and one too many
        edges = node.strip("|").split("|")
        cases.append("+".join(nodes[:k] + ["|" + "|".join(edges[:-1]) + "|"] + nodes[k + 1 :]))
        cases.append("+".join(nodes[:k] + ["|" + "|".join(edges + ["none~9"]) + "|"] + nodes[k + 1 :]))
    return cases


def recurrent_cases() -> list[str]:
    edges = "[('relu', 0), ('tanh', 1)]"
    make = lambda recurrent=edges, concat="[1, 2]": f"Genotype(recurrent={recurrent}, concat={concat})"  # noqa: E731
    return [
        make(recurrent="[]"),
        make(recurrent="[('relu', 1)]"),
        make(recurrent="[('relu', -1)]"),
        make(recurrent="[('relu', 0), ('tanh', 2)]"),
        make(recurrent="[('relu', 0, 1)]"),
        make(recurrent="[('relu',)]"),
        make(recurrent="[('fly', 0)]"),
        make(recurrent="[('none', 0)]"),
        make(recurrent="[(1, 0)]"),
        make(recurrent="'relu'"),
        make(concat="[]"),
        make(concat="[3]"),
        make(concat="[-1]"),
        make(concat="[1.5]"),
        make(concat="'12'"),
        make(concat="None"),
        make(concat="[True]"),
        make(concat="range(10**12)"),
        "Genotype(recurrent=[('relu', 0)])",
        "Genotype(recurrent=[('relu', 0)], concat=[1], extra=1)",
        RNN.replace("recurrent", "recurent"),
        RNN[:-2],
        json.dumps({"recurrent": [["relu", 0]], "concat": [1.5]}),
        json.dumps({"recurrent": [["relu", 0]], "concat": [True]}),
        json.dumps({"recurrent": [["relu", "0"]], "concat": [1]}),
        json.dumps({"recurrent": [["relu", 0]]}),
        json.dumps({"recurrent": [["relu", 0]], "concat": [1], "normal": []}),
    ]


def table(cases: list[str]) -> list[tuple[str, str]]:
    """(case_id, spec): the index and the spec's first 30 characters."""
    return [(f"{k}-{c[:30]!r}", c) for k, c in enumerate(cases)]


DARTS_TEXT = (
    cut_points(DARTS)
    + unbalanced(DARTS)
    + CODE
    + STRUCTURE
    + INDICES
    + UNKNOWN_OPS
    + JSON_CASES
    + cut_points(NB201, 4)
    + cut_points(RNN, 4)
)


def test_bad_genotype_text_is_one_clear_error(every_case, new_folder, workdir, capsys):
    every_case(table(DARTS_TEXT), lambda spec: refused(capsys, new_folder(), "genotype", spec))


def test_huge_empty_or_deep_text_is_refused_at_once(every_case, new_folder, workdir, capsys):
    cases = [(f"{k}-{len(c)}-chars", c) for k, c in enumerate(HUGE)]
    every_case(cases, lambda spec: refused(capsys, new_folder(), "genotype", spec))


def test_bad_nas_bench_201_cell_is_one_clear_error(every_case, new_folder, workdir, capsys):
    def check(spec):
        refused(capsys, new_folder(), "genotype", spec)
        with pytest.raises(GenotypeError):
            CellGenotype.parse(spec)

    every_case(table(nb201_cases()), check)


def test_bad_recurrent_genotype_is_one_clear_error(every_case, new_folder, workdir, capsys):
    every_case(table(recurrent_cases()), lambda spec: refused(capsys, new_folder(), "genotype", spec))


@pytest.mark.parametrize("command", [["info"], ["train", "--config", "quick"]])
def test_other_commands_refuse_bad_genotypes_too(every_case, new_folder, workdir, capsys, command):
    def check(spec):
        folder = new_folder()
        argv = [command[0], spec, *command[1:]] + (["--out", str(folder / "runs")] if command[0] == "train" else [])
        refused(capsys, folder, *argv)
        assert not (folder / "runs").exists()  # refused before a run folder is made

    specs = [CODE[0], "", STRUCTURE[0], INDICES[0], UNKNOWN_OPS[0], HUGE[3]]
    every_case(zip(["code", "empty", "one-input", "index", "unknown-op", "10MB"], specs, strict=True), check)


def test_parsers_never_call_eval():
    import ast
    import inspect

    import dartsnas.conv.nb201.genotype as nb201
    import dartsnas.core.genotype as core
    import dartsnas.recurrent.genotype as recurrent

    for module in (core, nb201, recurrent):
        calls = [
            n.func.id
            for n in ast.walk(ast.parse(inspect.getsource(module)))
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        ]
        assert not {"eval", "exec", "compile", "__import__"} & set(calls), module.__name__


def test_each_parser_refuses_code_unrun(workdir):
    for text in CODE:
        for parser in (parse, parse_recurrent, CellGenotype.parse):
            with pytest.raises(GenotypeError):
                parser(text)
    assert not (workdir / MARKER).exists()


# ---------------------------------------------------------------------------------------------------- files

FILES = {
    "not-utf8.json": b'{"normal": "\xff\xfe\xfa"}',
    "binary.json": bytes(range(256)) * 4,
    "empty.json": b"",
    "blank.json": b"  \n\n",
    "list.json": b"[1, 2, 3]",
    "number.json": b"42",
    "null.json": b"null",
    "string.json": b'"DARTS_V2"',
    "truncated.json": json.dumps(GOOD_JSON).encode()[:40],
    "deep.json": b'{"normal": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "huge.json": b'{"normal": "' + b"x" * 2_000_000 + b'"}',
    "derived-record.json": json.dumps({"rule": "argmax", "genotype": {"normal": []}}).encode(),
    "code.txt": f"__import__('os').system('touch {MARKER}')".encode(),
    "nb201.json": b'{"nas_bench_201": "|none~0|"}',
    "recurrent.json": b'{"recurrent": [["relu", 1]], "concat": [1]}',
}


def test_bad_genotype_file_names_the_file(every_case, new_folder, workdir, capsys):
    def check(name):
        folder = new_folder()
        (folder / name).write_bytes(FILES[name])
        line = refused(capsys, folder, "genotype", name)
        assert name in line

    every_case([(name, name) for name in sorted(FILES)], check)


@pytest.mark.parametrize("layout", ["no-genotype", "genotype-is-folder", "bad-genotype", "not-utf8"])
def test_bad_run_folder_is_one_clear_error(layout, workdir, capsys):
    run = workdir / "run"
    run.mkdir()
    if layout == "genotype-is-folder":
        (run / "genotype.json").mkdir()
    elif layout == "bad-genotype":
        (run / "genotype.json").write_text('{"normal": [["skip_connect", 7]]}')
    elif layout == "not-utf8":
        (run / "genotype.json").write_bytes(b"\xff\xfe{}")
    refused(capsys, workdir, "genotype", "run")


def test_names_that_name_nothing(every_case, new_folder, workdir, capsys):
    specs = ["missing.json", "no/such/folder/genotype.json", "DARTS_V3", "darts_v2", "NB201_BEST", "DARTS_RNN_V3"]
    every_case([(spec, spec) for spec in specs], lambda spec: refused(capsys, new_folder(), "genotype", spec))


def test_byte_order_mark_and_good_files_still_read(workdir, capsys):
    (workdir / "bom.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD_JSON).encode())
    assert main(["genotype", "bom.json"]) == 0
    assert capsys.readouterr().out.strip() == DARTS
    assert main(["genotype", "--list"]) == 0 and "DARTS_V2" in capsys.readouterr().out


def test_oversized_genotype_file_is_refused_unread(workdir, capsys):
    with open(workdir / "big.json", "wb") as f:  # sparse: 17 MB on paper, nothing written
        f.truncate(17 * 2**20)
    line = refused(capsys, workdir, "genotype", "big.json")
    assert "too large to be a genotype file" in line
