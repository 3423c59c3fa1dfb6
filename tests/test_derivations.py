"""Every registered derivation rule (methods/derivations/), generated from the registry: each derives a valid
cell from a random probability table; the spaces name only registered rules; the registry imports no torch."""

import random
import subprocess
import sys

import pytest

from dartsnas.conv.spaces import DARTS_OPS, DERIVATIONS
from dartsnas.methods.derivations import EVERY_EDGE, RULES, TOP_K, derive_cell, strongest_ops, unit


def random_table(edges: int, ops: int, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    rows = [[rng.random() for _ in range(ops)] for _ in range(edges)]
    return [[p / sum(r) for p in r] for r in rows]


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("k", [1, 2])
def test_every_rule_derives_a_valid_cell(name, k):
    fan_in = [2, 3, 4, 5]
    probs = random_table(sum(fan_in), len(DARTS_OPS), seed=len(name) + k)
    edges = unit(name)(probs, DARTS_OPS, fan_in, k)
    kept = k if name in TOP_K else None  # EVERY_EDGE rules keep every edge
    node_of = [n for n, size in enumerate(fan_in) for _ in range(kept or size)]
    assert len(edges) == len(node_of)
    for (op, j), n in zip(edges, node_of):
        assert op in DARTS_OPS and 0 <= j < fan_in[n]
        assert name in EVERY_EDGE or op != "none"  # a top-k rule never keeps `none`


@pytest.mark.parametrize("name", sorted(TOP_K))
def test_every_top_k_rule_honours_the_skip_cap(name):
    probs = [[1.0 if op == "skip_connect" else 0.1 for op in DARTS_OPS] for _ in range(14)]
    assert sum(op == "skip_connect" for op, _ in derive_cell(probs, DARTS_OPS, 4, rule=name, skip_cap=2)) == 2
    assert strongest_ops(probs[:6], DARTS_OPS, skip_cap=1).count("skip_connect") == 1


def test_the_spaces_name_registered_rules():
    assert {r for rules in DERIVATIONS.values() for r in rules} <= set(RULES)


def test_an_unknown_rule_lists_the_registered_ones():
    with pytest.raises(ValueError, match=", ".join(RULES)):
        unit("top3")


def test_the_registry_imports_no_torch():
    code = "import sys, dartsnas.methods.derivations as d; d.unit('darts'); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
