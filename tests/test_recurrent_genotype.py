"""Recurrent genotypes: every published cell round-trips, the official printed form parses, bad input is named."""

import json

import pytest

from dartsnas.core.genotype import PUBLISHED, GenotypeError, load_genotype
from dartsnas.recurrent.genotype import (
    RECURRENT_PUBLISHED,
    RecurrentGenotype,
    load_recurrent_genotype,
    names_recurrent,
    parse_recurrent,
)

# Verbatim from quark0/darts rnn/genotypes.py.
OFFICIAL_V2 = (
    "DARTS_V2 = Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), "
    "('tanh', 2), ('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))"
)
OFFICIAL_ENAS = """Genotype(
    recurrent = [
        ('tanh', 0),
        ('tanh', 1),
        ('relu', 1),
        ('tanh', 3),
        ('tanh', 3),
        ('relu', 3),
        ('relu', 4),
        ('relu', 7),
        ('relu', 8),
        ('relu', 8),
        ('relu', 8),
    ],
    concat = [2, 5, 6, 9, 10, 11]
)"""


@pytest.mark.parametrize("name", sorted(RECURRENT_PUBLISHED))
def test_round_trips(name, tmp_path):
    g = RECURRENT_PUBLISHED[name]
    assert parse_recurrent(str(g)) == g
    assert RecurrentGenotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g
    g.save(tmp_path / "genotype.json")
    assert load_recurrent_genotype(tmp_path / "genotype.json") == g
    assert load_recurrent_genotype(str(tmp_path)) == g
    assert load_recurrent_genotype(json.dumps(g.to_dict())) == g
    assert load_recurrent_genotype(name) == g and hash(g) == hash(parse_recurrent(str(g)))
    assert names_recurrent(name) and names_recurrent(str(g)) and names_recurrent(tmp_path)


def test_published_cells_are_the_official_ones():
    assert parse_recurrent(OFFICIAL_V2) == RECURRENT_PUBLISHED["DARTS_RNN_V2"] == RECURRENT_PUBLISHED["DARTS_RNN"]
    assert parse_recurrent(OFFICIAL_ENAS) == RECURRENT_PUBLISHED["ENAS_RNN"]
    assert str(RECURRENT_PUBLISHED["DARTS_RNN_V1"]) == (
        "Genotype(recurrent=[('relu', 0), ('relu', 1), ('tanh', 2), ('relu', 3), ('relu', 4), ('identity', 1), "
        "('relu', 5), ('relu', 1)], concat=range(1, 9))"
    )
    assert RECURRENT_PUBLISHED["DARTS_RNN_V2"].nodes == 8


def test_other_class_name_and_positional_fields():
    text = "RecurrentGenotype([('tanh', 0), ('relu', 0)], [1, 2])"
    assert parse_recurrent(text) == RecurrentGenotype((("tanh", 0), ("relu", 0)), (1, 2))


def test_convolutional_and_recurrent_specs_are_told_apart():
    assert not names_recurrent("DARTS_V2") and not names_recurrent(str(PUBLISHED["DARTS_V2"]))
    assert not names_recurrent("no-such-thing")
    with pytest.raises(GenotypeError, match="convolutional genotype"):
        load_recurrent_genotype(str(PUBLISHED["DARTS_V2"]))
    with pytest.raises(GenotypeError, match="unknown genotype field 'recurrent'"):
        load_genotype(str(RECURRENT_PUBLISHED["DARTS_RNN"]))  # the convolutional loader is unchanged


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "Genotype(recurrent=[('relu', 0), ('tanh', 2)], concat=range(1, 3))",
            r"node 2 \('tanh', 2\): input 2 is out of range",
        ),
        ("Genotype(recurrent=[('relu', 0)], concat=[0, 2])", r"concat \[0, 2\]: nodes must lie in 0..1"),
        ("Genotype(recurrent=[('rellu', 0)], concat=[1])", r"unknown op 'rellu'; did you mean 'relu'"),
        ("Genotype(recurrent=[('none', 0)], concat=[1])", r"unknown op 'none'"),
        ("Genotype(recurrent=[], concat=[1])", "no nodes"),
        ("Genotype(recurent=[('relu', 0)], concat=[1])", "did you mean 'recurrent'"),
        ('{"recurrent": [["relu", 0]]}', r"missing field\(s\) \['concat'\]"),
        ("Genotype(recurrent=__import__('os').system('true'), concat=[1])", "unexpected expression"),
        ("DARTS_RNN_V3", "did you mean 'DARTS_RNN_V2'"),
    ],
)
def test_malformed_recurrent_genotypes_are_named(text, message):
    with pytest.raises(GenotypeError, match=message):
        load_recurrent_genotype(text)
