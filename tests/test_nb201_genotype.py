"""NAS-Bench-201 cells: every cell of the space round-trips through its string and its index, the
published cells are the benchmark's, and every malformed string is a GenotypeError naming the problem."""

import json
import subprocess
import sys

import pytest

from dartsnas.core.genotype import PUBLISHED, GenotypeError
from dartsnas.conv.nb201.genotype import (
    EDGES,
    OPS,
    PUBLISHED_NB201,
    SPACE_SIZE,
    CellGenotype,
    load_nb201_genotype,
    names_nb201,
)

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


def test_modules_import_without_torch():
    code = (
        "import dartsnas.conv.nb201.genotype, dartsnas.conv.nb201.table, dartsnas.conv.nb201.build_table, sys; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_every_cell_round_trips_through_its_string_and_its_index():
    strings = set()
    for i in range(SPACE_SIZE):
        cell = CellGenotype.from_index(i)
        text = str(cell)
        assert cell.index == i and CellGenotype.parse(text) == cell
        strings.add(text)
    assert len(strings) == SPACE_SIZE == 15_625


def test_string_form_and_canonical_order():
    cell = CellGenotype.parse(BEST)
    assert cell.edges == (
        "nor_conv_3x3",
        "nor_conv_3x3",
        "nor_conv_3x3",
        "skip_connect",
        "nor_conv_3x3",
        "nor_conv_1x1",
    )
    assert str(cell) == BEST and f"{cell}" == BEST
    assert cell.nodes == 3 and cell.ops() == {"nor_conv_3x3", "skip_connect", "nor_conv_1x1"}
    # base-5 digits, edge 1<-0 most significant
    assert cell.index == sum(OPS.index(op) * 5 ** (5 - k) for k, op in enumerate(cell.edges))
    assert CellGenotype.from_index(0).edges == ("none",) * 6
    assert CellGenotype.from_index(1).edges == ("none",) * 5 + ("skip_connect",)
    assert CellGenotype.from_index(5**5).edges == ("skip_connect",) + ("none",) * 5
    assert CellGenotype.from_index(SPACE_SIZE - 1).edges == ("avg_pool_3x3",) * 6
    assert CellGenotype.parse(ALL_SKIP).index == sum(5**p for p in range(6))


def test_whitespace_json_and_hashing():
    cell = CellGenotype.parse(BEST)
    assert CellGenotype.parse(f"  \n{BEST}\t ") == cell
    assert CellGenotype.parse(BEST.replace("+", " + ")) == cell
    assert CellGenotype.parse(" " + json.dumps(cell.to_dict()) + "\n") == cell
    assert cell.to_dict() == {"nas_bench_201": BEST}
    assert CellGenotype.from_dict(json.loads(json.dumps(cell.to_dict()))) == cell
    assert hash(cell) == hash(CellGenotype(list(cell.edges))) and {cell, CellGenotype.parse(BEST)} == {cell}


def test_resnet_cell_is_the_benchmarks():
    # AutoDL-Projects' ResNet_CODE lists only the edges that are not `none`: node 1 <- conv3x3(0),
    # node 2 <- conv3x3(1), node 3 <- skip(0) + skip(2); the benchmark's full string fills in `none`.
    sparse = {(1, 0): "nor_conv_3x3", (2, 1): "nor_conv_3x3", (3, 0): "skip_connect", (3, 2): "skip_connect"}
    edges = tuple(sparse.get(tuple(int(n) for n in name.split("<-")), "none") for name in EDGES)
    assert PUBLISHED_NB201["NB201_RESNET"] == CellGenotype(edges)
    assert str(CellGenotype(edges)) == "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"
    assert PUBLISHED_NB201["NB201_ALL_SKIP"].ops() == {"skip_connect"}
    assert PUBLISHED_NB201["NB201_ALL_CONV3X3"].ops() == {"nor_conv_3x3"}
    assert PUBLISHED_NB201["NB201_ALL_CONV1X1"].ops() == {"nor_conv_1x1"}
    assert str(PUBLISHED_NB201["NB201_BEST_CIFAR10"]) == BEST and str(PUBLISHED_NB201["NB201_ALL_SKIP"]) == ALL_SKIP


@pytest.mark.parametrize("name", sorted(PUBLISHED_NB201))
def test_published_cells_load_every_way(name, tmp_path):
    cell = PUBLISHED_NB201[name]
    assert name.startswith("NB201_") and name not in PUBLISHED
    assert load_nb201_genotype(name) == cell
    assert load_nb201_genotype(f"  {cell}\n") == cell
    assert load_nb201_genotype(json.dumps(cell.to_dict())) == cell
    cell.save(tmp_path / "genotype.json")
    assert load_nb201_genotype(tmp_path / "genotype.json") == cell
    assert load_nb201_genotype(str(tmp_path)) == cell
    (tmp_path / "cell.txt").write_text(str(cell) + "\n")
    assert load_nb201_genotype(tmp_path / "cell.txt") == cell
    assert names_nb201(name) and names_nb201(str(cell)) and names_nb201(tmp_path) and names_nb201(tmp_path / "cell.txt")


def test_names_nb201_tells_other_genotypes_apart(tmp_path):
    assert not names_nb201("DARTS_V2")
    assert not names_nb201(str(PUBLISHED["DARTS_V2"]))
    assert not names_nb201("NO_SUCH_CELL")
    assert not names_nb201(tmp_path / "absent.json")
    PUBLISHED["DARTS_V2"].save(tmp_path / "genotype.json")
    assert not names_nb201(tmp_path)
    with pytest.raises(GenotypeError, match="DARTS genotype"):
        load_nb201_genotype(tmp_path)
    with pytest.raises(GenotypeError, match="did you mean 'NB201_RESNET'"):
        load_nb201_genotype("NB201_RESNT")


GOOD_2 = "|nor_conv_3x3~0|nor_conv_3x3~1|"
GOOD_3 = "|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
MALFORMED = [
    ("", "not a NAS-Bench-201 cell string"),
    ("nor_conv_3x3", "not a NAS-Bench-201 cell string"),
    (str(PUBLISHED["DARTS_V2"]), "DARTS genotype"),
    (f"|nor_conv_3x3~0|+{GOOD_2}", "3 nodes joined by '\\+'.*got 2"),
    (f"|nor_conv_3x3~0|+{GOOD_2}+{GOOD_3}+{GOOD_3}", "3 nodes.*got 4"),
    (f"nor_conv_3x3~0|+{GOOD_2}+{GOOD_3}", "node 1 .*missing bar"),
    (f"|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1+{GOOD_3}", "node 2 .*missing bar"),
    (f"|nor_conv_3x3~0|+|+{GOOD_3}", "node 2 .*missing bar"),
    (f"|nor_conv_3x3~0|+|nor_conv_3x3~1|+{GOOD_3}", "node 2 .*has 1 edge.*takes exactly 2.*none~j"),
    (f"|nor_conv_3x3~0|+{GOOD_2}+|skip_connect~0|nor_conv_3x3~1|", "node 3 .*has 2 edge"),
    (f"|nor_conv_3x3~1|+{GOOD_2}+{GOOD_3}", "input 1, out of range \\(node 1 takes inputs 0..0\\)"),
    (f"|nor_conv_3x3~0|+{GOOD_2}+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~3|", "input 3, out of range"),
    (f"|nor_conv_3x3~0|+|nor_conv_3x3~1|nor_conv_3x3~0|+{GOOD_3}", "wrong order: input 1 is listed where input 0"),
    (f"|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~0|+{GOOD_3}", "wrong order: input 0 is listed where input 1"),
    (f"|conv_3x3~0|+{GOOD_2}+{GOOD_3}", "edge 1<-0: unknown op 'conv_3x3'; did you mean 'nor_conv_3x3'"),
    (
        f"|nor_conv_3x3~0|+{GOOD_2}+|skip_connect~0|nor_conv_3x3~1|max_pool_3x3~2|",
        "edge 3<-2: unknown op 'max_pool_3x3'; did you mean 'avg_pool_3x3'",
    ),
    (f"|nor_conv_3x3|+{GOOD_2}+{GOOD_3}", "'nor_conv_3x3', which is not op~input"),
    (f"|nor_conv_3x3~0~1|+{GOOD_2}+{GOOD_3}", "not op~input"),
    (f"||+{GOOD_2}+{GOOD_3}", "node 1 .*an empty edge"),
    (f"|nor_conv_3x3~a|+{GOOD_2}+{GOOD_3}", "input 'a', which is not a node number"),
    ('{"nas_bench_201": ', "JSON is malformed"),
    ('{"normal": [], "reduce": []}', "DARTS genotype"),
    ('{"recurrent": []}', "recurrent genotype"),
    ('{"nas_bench_201": 3}', "must be the cell's string"),
    ('{"nas_bench_201": "|none~0|", "extra": 1}', "field\\(s\\) \\['extra', 'nas_bench_201'\\]"),
]


@pytest.mark.parametrize("text, message", MALFORMED)
def test_malformed_strings_name_the_problem(text, message):
    with pytest.raises(GenotypeError, match=message):
        CellGenotype.parse(text)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CellGenotype(("none",) * 5), "has 6 edges .*1<-0.*got 5"),
        (lambda: CellGenotype(BEST), "CellGenotype.parse"),
        (lambda: CellGenotype(("none",) * 5 + ("sep_conv_3x3",)), "edge 3<-2: unknown op 'sep_conv_3x3'"),
        (lambda: CellGenotype(3), "sequence of 6 op names"),
        (lambda: CellGenotype.from_index(-1), "out of range; the cells are numbered 0..15624"),
        (lambda: CellGenotype.from_index(SPACE_SIZE), "out of range"),
        (lambda: CellGenotype.from_index("3"), "whole number"),
        (lambda: CellGenotype.from_dict([BEST]), "object"),
        (lambda: CellGenotype.parse(None), "is text"),
    ],
)
def test_bad_construction_names_the_problem(make, message):
    with pytest.raises(GenotypeError, match=message):
        make()
