"""Behavioural tests of genotype.py: every published cell round-trips, every pasted form parses, bad input is named."""

import json

import pytest

from dartsnas.core.genotype import (
    PUBLISHED,
    Genotype,
    GenotypeError,
    check_ops,
    edge_names,
    format_genotype,
    load_genotype,
    parse,
)

DARTS_OPS = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]

# Verbatim from quark0/darts cnn/genotypes.py (concat as a list) and from a train_search.py log (range).
OFFICIAL_LIST = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
OFFICIAL_RANGE = OFFICIAL_LIST.replace("[2, 3, 4, 5]", "range(2, 6)")

# Verbatim from D-X-Y/AutoDL-Projects: one (edge, edge) pair per node, plus AutoDL's two extra None fields.
AUTODL_GDAS = """Genotype(
  normal=[
    (('skip_connect', 0), ('skip_connect', 1)),
    (('skip_connect', 0), ('sep_conv_5x5', 2)),
    (('sep_conv_3x3', 3), ('skip_connect', 0)),
    (('sep_conv_5x5', 4), ('sep_conv_3x3', 3))],
  normal_concat=[2, 3, 4, 5],
  reduce=[
    (('sep_conv_5x5', 0), ('sep_conv_3x3', 1)),
    (('sep_conv_5x5', 2), ('sep_conv_5x5', 1)),
    (('dil_conv_5x5', 2), ('sep_conv_3x3', 1)),
    (('sep_conv_5x5', 0), ('sep_conv_5x5', 1))],
  reduce_concat=[2, 3, 4, 5],
  connectN=None, connects=None
)"""


def with_normal(edges, concat=(2, 3, 4, 5)) -> str:
    """DARTS_V2's text with the normal cell replaced, for malformed-input tests."""
    reduce = format_genotype(PUBLISHED["DARTS_V2"]).split("reduce=", 1)[1]
    return f"Genotype(normal={list(edges)!r}, normal_concat={list(concat)}, reduce={reduce}"


# ---------------------------------------------------------------------------------------------
# Round trips, for every registry entry


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_text_round_trip(name):
    g = PUBLISHED[name]
    assert parse(str(g)) == g
    assert parse(format_genotype(g)) == g


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_json_round_trip(name, tmp_path):
    g = PUBLISHED[name]
    assert Genotype.from_dict(g.to_dict()) == g
    assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    g.save(tmp_path / "genotype.json")
    assert load_genotype(tmp_path / "genotype.json") == g
    assert load_genotype(str(tmp_path)) == g  # a run folder holding genotype.json
    assert load_genotype(name) == g
    assert load_genotype(name, known_ops=g.ops()) == g


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_cells_are_well_formed(name):
    g = PUBLISHED[name]
    assert len(g.normal) == len(g.reduce) == 2 * g.nodes
    assert g.nodes in (4, 5)
    assert hash(g) == hash(parse(str(g)))  # frozen data: usable as a dict key or set member


def test_edge_names():
    assert edge_names(4)[:5] == ["2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    assert len(edge_names(4)) == 14 and edge_names(4)[-1] == "5<-4"


# ---------------------------------------------------------------------------------------------
# The forms users paste


@pytest.mark.parametrize("text", [OFFICIAL_LIST, OFFICIAL_RANGE], ids=["list", "range"])
def test_official_printed_text(text):
    assert parse(text) == PUBLISHED["DARTS_V2"]
    assert load_genotype(text) == PUBLISHED["DARTS_V2"]  # longer than a file name may be


def test_line_pasted_from_genotypes_py():
    assert parse("DARTS_V2 = " + OFFICIAL_LIST) == PUBLISHED["DARTS_V2"]
    assert parse("  DARTS = genotypes." + OFFICIAL_RANGE + "\n") == PUBLISHED["DARTS_V2"]


def test_autodl_nested_pairs():
    assert parse(AUTODL_GDAS) == PUBLISHED["GDAS"]


def test_edges_with_probabilities():
    # Some forks print (op, input, prob); the probability is dropped.
    text = OFFICIAL_RANGE.replace("', 0)", "', 0, 0.31)").replace("', 1)", "', 1, 0.27)")
    assert "0.31" in text
    assert parse(text) == PUBLISHED["DARTS_V2"]


def test_json_text():
    g = PUBLISHED["PC_DARTS"]
    assert parse(json.dumps(g.to_dict())) == g
    assert load_genotype(json.dumps(g.to_dict())) == g


# ---------------------------------------------------------------------------------------------
# Parsing never runs code


@pytest.mark.parametrize(
    "payload",
    [
        "__import__('os').system('touch {marker}')",
        "Genotype(normal=__import__('os').system('touch {marker}'), normal_concat=[2], reduce=[], reduce_concat=[2])",
        "Genotype(normal=(lambda: open('{marker}', 'w'))(), normal_concat=[2], reduce=[], reduce_concat=[2])",
        "Genotype(normal=lambda: 1, normal_concat=[2], reduce=[], reduce_concat=[2])",
        "Genotype(normal=[(open('{marker}', 'w').name, 0)], normal_concat=[2], reduce=[], reduce_concat=[2])",
    ],
)
def test_parse_never_evaluates(payload, tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(GenotypeError):
        parse(payload.format(marker=marker))
    with pytest.raises(GenotypeError):
        load_genotype(payload.format(marker=marker))
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# Malformed input: one clear message naming the bad element


def test_unknown_op_named_with_close_match():
    g = parse(OFFICIAL_RANGE.replace("dil_conv_3x3", "dil_conv_3x4"))
    with pytest.raises(GenotypeError, match=r"'dil_conv_3x4'.*did you mean 'dil_conv_3x3'"):
        check_ops(g, DARTS_OPS)
    with pytest.raises(GenotypeError, match=r"'dil_conv_3x4'.*did you mean 'dil_conv_3x3'"):
        load_genotype(OFFICIAL_RANGE.replace("dil_conv_3x3", "dil_conv_3x4"), known_ops=DARTS_OPS)
    assert check_ops(PUBLISHED["DARTS_V2"], DARTS_OPS) == PUBLISHED["DARTS_V2"]


def test_published_op_missing_from_space():
    # NASNet uses sep_conv_7x7, which the DARTS space lacks.
    with pytest.raises(GenotypeError, match="sep_conv_7x7"):
        load_genotype("NASNet", known_ops=DARTS_OPS)


@pytest.mark.parametrize("extra", [1, -1], ids=["three_inputs", "one_input"])
def test_node_without_exactly_two_inputs(extra):
    edges = list(PUBLISHED["DARTS_V2"].normal)
    edges = edges + [("skip_connect", 1)] if extra > 0 else edges[:-1]
    with pytest.raises(GenotypeError, match=rf"normal has {len(edges)} edges.*exactly 2 inputs"):
        parse(with_normal(edges))


def test_input_index_out_of_range():
    edges = list(PUBLISHED["DARTS_V2"].normal)
    edges[3] = ("sep_conv_3x3", 3)  # node 3 may read only 0..2
    with pytest.raises(GenotypeError, match=r"normal edge 3 \('sep_conv_3x3', 3\) of node 3: input 3 is out of range"):
        parse(with_normal(edges))


def test_concat_out_of_range():
    with pytest.raises(GenotypeError, match=r"normal_concat \[2, 3, 9\]"):
        parse(with_normal(PUBLISHED["DARTS_V2"].normal, concat=[2, 3, 9]))


def test_unknown_field_name():
    with pytest.raises(GenotypeError, match="unknown genotype field 'reduce_conact'; did you mean 'reduce_concat'"):
        parse(OFFICIAL_RANGE.replace("reduce_concat", "reduce_conact"))


def test_missing_field():
    with pytest.raises(GenotypeError, match="missing field.*reduce_concat"):
        Genotype.from_dict({k: v for k, v in PUBLISHED["DARTS_V2"].to_dict().items() if k != "reduce_concat"})


def test_edge_that_is_not_a_pair():
    with pytest.raises(GenotypeError, match=r"edge \['sep_conv_3x3'\] is not an \(op name, input index\) pair"):
        parse(OFFICIAL_RANGE.replace("('sep_conv_3x3', 0)", "('sep_conv_3x3',)", 1))


def test_unknown_registry_name_suggests_close_one():
    with pytest.raises(GenotypeError, match=r"'DARTS_V3'.*did you mean 'DARTS_V2'.*published:.*DARTS_V2"):
        load_genotype("DARTS_V3")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(GenotypeError, match="does not exist"):
        load_genotype(tmp_path / "nope.json")
    with pytest.raises(GenotypeError, match="folder without genotype.json"):
        load_genotype(tmp_path)


def test_garbage_text():
    with pytest.raises(GenotypeError, match="cannot read genotype text"):
        parse("Genotype(normal=[")
    with pytest.raises(GenotypeError, match="genotype JSON is malformed"):
        parse("{'normal': []}")
