"""Every registered derivation rule (methods/derivations/), generated from the registry: each rule over
probabilities derives a valid cell from a random probability table, each rule that evaluates the network a
valid cell of a tiny supernet of each space; the spaces name only registered rules; the registry imports no
torch."""

import random
import subprocess
import sys
from types import SimpleNamespace

import pytest

from dartsnas.conv.spaces import DARTS_OPS, DERIVATIONS
import torch

from dartsnas.conv.nb201.model import Supernet201
from dartsnas.conv.rederive import SearchNet
from dartsnas.conv.supernet import Supernet
from dartsnas.core.genotype import Genotype
from dartsnas.methods.derivations.base import Net
from dartsnas.methods.derivations import EVERY_EDGE, NETWORK, RULES, TOP_K, derive_cell, strongest_ops, unit


def random_table(edges: int, ops: int, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    rows = [[rng.random() for _ in range(ops)] for _ in range(edges)]
    return [[p / sum(r) for p in r] for r in rows]


@pytest.mark.parametrize("name", sorted({**TOP_K, **EVERY_EDGE}))
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


class TinyNet:
    """The `Net` of base.py over a tiny supernet, measured without data: accuracy a fixed function of the
    mixture, held-out batches of random images whose labels are the first class, tuning a no-op."""

    def __init__(self, model, space):
        self.model, self.space, self.lr, self.tuned = model, space, 0.1, 0

    def accuracy(self) -> float:
        return float(sum(self.model.mix(k)[:, -1].sum() for k in self.model.kinds)) / 100

    def held_out(self, batches):
        g = torch.Generator().manual_seed(0)
        return [(torch.randn(4, 3, 8, 8, generator=g), torch.zeros(4, dtype=torch.long)) for _ in range(batches)]

    def tune(self, epochs, lr):
        self.tuned += epochs

    def derive(self):
        return self.model.derive("nas-bench-201" if self.space == "nas-bench-201" else "darts")


@pytest.mark.parametrize("name", sorted(NETWORK))
@pytest.mark.parametrize("space", ["nas-bench-201", "darts"])
def test_every_network_rule_derives_a_valid_cell_of_a_tiny_supernet(name, space):
    torch.manual_seed(0)
    if space == "nas-bench-201":
        model = Supernet201(3, 4, init_channels=4, stage_cells=1, ops=["none", "skip_connect", "nor_conv_1x1"])
    else:
        model = Supernet(3, 4, init_channels=4, layers=3, nodes=2, ops=["none", "skip_connect", "max_pool_3x3"])
    options = {"tune_epochs": 1} if name == "pt" else {"batches": 1}
    genotype, evidence = unit(name)(TinyNet(model, space), torch.Generator().manual_seed(0), **options)
    if space == "nas-bench-201":
        assert len(genotype.edges) == 6 and set(genotype.edges) <= set(model.ops)
    else:
        assert isinstance(genotype, Genotype) and len(genotype.normal) == len(genotype.reduce) == 4
        for cell in (genotype.normal, genotype.reduce):  # 2 kept edges per node, node n has inputs 0..n+1
            assert all(op in model.ops and op != "none" and 0 <= j < 2 + e // 2 for e, (op, j) in enumerate(cell))
    assert isinstance(evidence, dict)


def test_the_search_adapter_answers_every_member_of_net():
    members = set(Net.__annotations__) | {m for m in vars(Net) if not m.startswith("_")}
    net = SearchNet(SimpleNamespace(model=object(), config=SimpleNamespace(space="darts", lr=0.1)))
    assert members >= {"model", "accuracy", "held_out", "tune", "derive"} and all(hasattr(net, m) for m in members)
