"""Properties of the three genotype parsers (DARTS, NAS-Bench-201, recurrent), over genotypes and text drawn by
Hypothesis: (a) a valid genotype survives text -> parse and its JSON form unchanged; (b) any text at all, and any
small mutation of a valid genotype's text, either parses to a valid genotype or raises GenotypeError, never
another exception."""

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dartsnas.conv.nb201.genotype import EDGES, OPS as NB201_OPS, PUBLISHED_NB201, CellGenotype, load_nb201_genotype
from dartsnas.conv.ops import OPS
from dartsnas.core.genotype import PUBLISHED, Genotype, GenotypeError, load_genotype, parse
from dartsnas.recurrent.genotype import (
    RECURRENT_OPS,
    RECURRENT_PUBLISHED,
    RecurrentGenotype,
    load_recurrent_genotype,
    parse_recurrent,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Op names: the registry's, and made-up identifiers (the parsers check structure; ops are checked on loading).
op_names = st.one_of(st.sampled_from(list(OPS)), st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True))


@st.composite
def darts_genotypes(draw):
    nodes = draw(st.integers(1, 6))

    def cell():
        edges = tuple((draw(op_names), draw(st.integers(0, 1 + i))) for i in range(nodes) for _ in range(2))
        concat = tuple(draw(st.lists(st.integers(0, 1 + nodes), min_size=1, max_size=nodes + 2)))
        return edges, concat

    (normal, normal_concat), (reduce, reduce_concat) = cell(), cell()
    return Genotype(normal, normal_concat, reduce, reduce_concat)


nb201_cells = st.tuples(*[st.sampled_from(NB201_OPS)] * len(EDGES)).map(CellGenotype)


@st.composite
def recurrent_genotypes(draw):
    nodes = draw(st.integers(1, 12))
    ops = st.sampled_from([op for op in RECURRENT_OPS if op != "none"])
    edges = tuple((draw(ops), draw(st.integers(0, k))) for k in range(nodes))
    concat = tuple(draw(st.lists(st.integers(0, nodes), min_size=1, max_size=nodes + 1)))
    return RecurrentGenotype(edges, concat)


# ---------------------------------------------------------------------------------------------- round trips


# Every draw of a round trip reaches the property; the tally checks that the draws are many different genotypes,
# and that a real share of them have more than one node (a strategy stuck on the smallest cell would pass).


def test_darts_text_and_json_round_trip(tally):
    @SETTINGS
    @given(darts_genotypes())
    def draws(g):
        assert parse(str(g)) == g
        assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g
        assert parse(json.dumps(g.to_dict())) == g
        assert parse(f"MY_CELL = {g}") == g  # as pasted from a genotypes.py
        tally.record(g, "several nodes" if len(g.normal) > 2 and len(g.reduce) > 2 else "one node")

    draws()
    tally.check("several nodes", at_least=0.5, distinct=0.9)


def test_nb201_text_json_and_index_round_trip(tally):
    @SETTINGS
    @given(nb201_cells)
    def draws(cell):
        assert CellGenotype.parse(str(cell)) == cell
        assert CellGenotype.from_dict(json.loads(json.dumps(cell.to_dict()))) == cell
        assert CellGenotype.parse(json.dumps(cell.to_dict())) == cell
        assert CellGenotype.from_index(cell.index) == cell
        tally.record(cell, "round trip")

    draws()
    tally.check("round trip", at_least=1.0, distinct=0.9)


def test_recurrent_text_and_json_round_trip(tally):
    @SETTINGS
    @given(recurrent_genotypes())
    def draws(g):
        assert parse_recurrent(str(g)) == g
        assert RecurrentGenotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g
        assert parse_recurrent(json.dumps(g.to_dict())) == g
        assert load_recurrent_genotype(str(g)) == g
        tally.record(g, "several nodes" if len(g.recurrent) > 1 else "one node")

    draws()
    tally.check("several nodes", at_least=0.5, distinct=0.9)


# ------------------------------------------------------------------------------------------- any text at all

PARSERS = {
    "darts": parse,
    "nb201": CellGenotype.parse,
    "recurrent": parse_recurrent,
    # The loaders also read files and folders: they run in an empty folder, where no text names one.
    "load_genotype": lambda text: load_genotype(text, known_ops=OPS),
    "load_nb201_genotype": load_nb201_genotype,
    "load_recurrent_genotype": load_recurrent_genotype,
}
KINDS = (Genotype, CellGenotype, RecurrentGenotype)


@pytest.fixture(scope="module")
def empty_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("empty")
    with contextlib.chdir(folder):
        yield folder
    assert list(folder.iterdir()) == []  # no text made a file


def parses_or_refuses(text: str) -> str:
    """Every parser either returns a valid genotype (one that survives its own round trip) or GenotypeError.
    Returns "parsed" if one of them gave a genotype, else "refused"."""
    outcome = "refused"
    for name, parser in PARSERS.items():
        try:
            g = parser(text)
        except GenotypeError as err:
            assert str(err) and "\n" not in str(err) and len(str(err)) < 2000, (name, str(err)[:300])
            continue
        outcome = "parsed"
        assert isinstance(g, KINDS), (name, g)
        again = (
            CellGenotype.parse(str(g))
            if isinstance(g, CellGenotype)
            else (parse_recurrent(str(g)) if isinstance(g, RecurrentGenotype) else parse(str(g)))
        )
        assert again == g, name
    return outcome


def test_arbitrary_text_parses_or_is_refused(empty_folder, tally):
    # Any text is nearly always refused: this one is about the refusal, made of many different texts.
    @SETTINGS
    @given(st.text(max_size=300))
    def draws(text):
        parses_or_refuses(text)
        tally.record(text, "checked")

    draws()
    tally.check("checked", at_least=1.0, distinct=0.9)


# Characters that matter to the grammars, so mutations hit structure rather than only op names.
SYNTAX = st.sampled_from(list("()[]{},'\"=|~+-_.: 0123456789\\\n\x00") + ["range", "Genotype", "None", "**"])
SEEDS = (
    [str(g) for g in PUBLISHED.values()]
    + [json.dumps(g.to_dict()) for g in PUBLISHED.values()]
    + [str(c) for c in PUBLISHED_NB201.values()]
    + [json.dumps(c.to_dict()) for c in PUBLISHED_NB201.values()]
    + [str(g) for g in RECURRENT_PUBLISHED.values()]
    + [json.dumps(g.to_dict()) for g in RECURRENT_PUBLISHED.values()]
)


@st.composite
def mutated(draw):
    """A valid genotype's text with 1 to 6 characters deleted, duplicated or replaced, or a span cut or doubled."""
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 6))):
        k = draw(st.integers(0, max(0, len(text) - 1)))
        action = draw(st.sampled_from(["delete", "duplicate", "replace", "insert", "cut", "double"]))
        if action == "delete":
            text = text[:k] + text[k + 1 :]
        elif action == "duplicate":
            text = text[: k + 1] + text[k:]
        elif action == "replace":
            text = text[:k] + draw(SYNTAX) + text[k + 1 :]
        elif action == "insert":
            text = text[:k] + draw(SYNTAX) + text[k:]
        else:
            end = draw(st.integers(k, len(text)))
            text = text[:k] + text[end:] if action == "cut" else text[:end] + text[k:end] + text[end:]
    return text


def test_mutated_genotype_text_parses_or_is_refused(empty_folder, tally):
    # Near valid text: some of it still parses (about 1 draw in 10), and it must then be a valid genotype.
    @SETTINGS
    @given(mutated())
    def draws(text):
        tally.record(text, parses_or_refuses(text))

    draws()
    tally.check("parsed", at_least=0.03, distinct=0.8)


# JSON values with a genotype's keys among others.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                ["normal", "normal_concat", "reduce", "reduce_concat", "recurrent", "concat", "nas_bench_201", "x"]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)


GENOTYPE_KEYS = {"normal", "normal_concat", "reduce", "reduce_concat", "recurrent", "concat", "nas_bench_201"}


def test_arbitrary_json_parses_or_is_refused(empty_folder, tally):
    # Reaching past "not a genotype's JSON" takes an object with a genotype's key: a share of the draws must be one.
    @SETTINGS
    @given(JSON_VALUES)
    def draws(value):
        parses_or_refuses(json.dumps(value))
        keyed = isinstance(value, dict) and GENOTYPE_KEYS & set(value)
        tally.record(value, "an object with a genotype's key" if keyed else "other JSON")

    draws()
    tally.check("an object with a genotype's key", at_least=0.2, distinct=0.8)
