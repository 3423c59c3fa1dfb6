"""Behavioural tests of derive.py: hand-written probabilities with known cells, the official tie rules,
and agreement with an independent plain statement of the official rule."""

import random

import pytest
import torch

from dartsnas.methods.derivations import derive, derive_cell
from dartsnas.core.genotype import PUBLISHED, Genotype, edge_names, parse
from dartsnas.conv.spaces import DARTS_OPS
from dartsnas.conv.supernet import Supernet

NONE = DARTS_OPS.index("none")


def row(ops=DARTS_OPS, floor=0.01, **probs):
    """One edge's probabilities: the named ops get their value, every other op `floor`."""
    assert set(probs) <= set(ops)
    return [probs.get(name, floor) for name in ops]


def reference_rule(rows, ops, nodes):
    """The paper's rule written out plainly, independently of derive.py: per node, the two inputs whose
    best non-`none` probability is largest (the earlier input on ties), strongest first, each with the
    first of its best non-`none` ops -- the order and tie rules of the official code."""
    keep = [k for k, name in enumerate(ops) if name != "none"]
    cell, start = [], 0
    for node in range(nodes):
        scored = []
        for j in range(node + 2):
            row = rows[start + j]
            best = max(row[k] for k in keep)
            scored.append((-best, j, ops[next(k for k in keep if row[k] == best)]))
        cell += [(op, j) for _, j, op in sorted(scored)[:2]]
        start += node + 2
    return cell


# ---------------------------------------------------------------------------------------------------
# Known answers

TWO_NODES = [  # edges 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
    row(sep_conv_3x3=0.5),
    row(skip_connect=0.6),
    row(max_pool_3x3=0.3),
    row(dil_conv_5x5=0.4),
    row(sep_conv_5x5=0.7),
]


def test_two_node_cell_known_answer():
    assert derive_cell(TWO_NODES, DARTS_OPS, nodes=2) == [
        ("skip_connect", 1),
        ("sep_conv_3x3", 0),  # node 2: input 1 is stronger, so it is listed first
        ("sep_conv_5x5", 2),
        ("dil_conv_5x5", 1),  # node 3: 3<-0 (0.3) is dropped
    ]


# Probabilities whose derivation is the published DARTS_V2 cell (edges in edge_names(4) order).
V2_NORMAL = [
    row(sep_conv_3x3=0.6),
    row(sep_conv_3x3=0.5),  # node 2
    row(sep_conv_3x3=0.55),
    row(sep_conv_3x3=0.45),
    row(avg_pool_3x3=0.2),  # node 3
    row(skip_connect=0.4),
    row(sep_conv_3x3=0.5),
    row(max_pool_3x3=0.1),
    row(dil_conv_5x5=0.3),  # node 4
    row(skip_connect=0.45),
    row(avg_pool_3x3=0.2),
    row(dil_conv_3x3=0.35),
    row(sep_conv_5x5=0.3),
    row(max_pool_3x3=0.25),  # node 5
]
V2_REDUCE = [
    row(max_pool_3x3=0.5),
    row(max_pool_3x3=0.4),
    row(sep_conv_3x3=0.2),
    row(max_pool_3x3=0.3),
    row(skip_connect=0.6),
    row(max_pool_3x3=0.5),
    row(avg_pool_3x3=0.1),
    row(skip_connect=0.3),
    row(dil_conv_3x3=0.2),
    row(sep_conv_5x5=0.1),
    row(max_pool_3x3=0.35),
    row(skip_connect=0.6),
    row(avg_pool_3x3=0.2),
    row(dil_conv_5x5=0.15),
]


def test_four_node_cell_known_answer_is_darts_v2():
    assert len(V2_NORMAL) == len(V2_REDUCE) == len(edge_names(4)) == 14
    g = derive({"normal": V2_NORMAL, "reduce": V2_REDUCE}, DARTS_OPS, nodes=4)
    assert g == PUBLISHED["DARTS_V2"]
    assert list(g.normal) == reference_rule(V2_NORMAL, DARTS_OPS, 4)
    assert list(g.reduce) == reference_rule(V2_REDUCE, DARTS_OPS, 4)


@pytest.mark.parametrize("nodes", [1, 2, 4, 5])
def test_output_is_a_valid_genotype(nodes):
    rng = random.Random(nodes)
    probs = {kind: [[rng.random() for _ in DARTS_OPS] for _ in edge_names(nodes)] for kind in ("normal", "reduce")}
    g = derive(probs, DARTS_OPS, nodes)
    assert isinstance(g, Genotype)
    assert g.nodes == nodes
    assert g.normal_concat == g.reduce_concat == tuple(range(2, 2 + nodes))
    assert len(g.normal) == len(g.reduce) == 2 * nodes
    for kind in ("normal", "reduce"):
        for k, (op, j) in enumerate(getattr(g, kind)):
            assert op in DARTS_OPS and op != "none"
            assert 0 <= j < 2 + k // 2
        node_inputs = (
            [getattr(g, kind)[2 * i][1] for i in range(nodes)],
            [getattr(g, kind)[2 * i + 1][1] for i in range(nodes)],
        )
        assert all(a != b for a, b in zip(*node_inputs))  # two distinct inputs per node
    assert parse(str(g)) == g


# ---------------------------------------------------------------------------------------------------
# `none`


def test_none_dominated_edges_compete_by_their_best_real_op():
    probs = TWO_NODES[:2] + [
        row(none=0.9, sep_conv_3x3=0.03),  # 3<-0: the largest 'none', weakest real op
        row(none=0.1, max_pool_3x3=0.06),
        row(none=0.2, dil_conv_3x3=0.07),
    ]
    # Ranking by the overall max (none included) would keep 3<-0 and 3<-2 instead.
    assert derive_cell(probs, DARTS_OPS, nodes=2)[2:] == [("dil_conv_3x3", 2), ("max_pool_3x3", 1)]


def test_none_is_never_chosen_even_when_it_dominates_everywhere():
    def swamp(rows):  # 'none' gets 0.95, the rest is scaled down: the order among real ops is unchanged
        return [[0.95 if k == NONE else 0.05 * p for k, p in enumerate(r)] for r in rows]

    normal, reduce = swamp(V2_NORMAL), swamp(V2_REDUCE)
    assert all(max(range(len(r)), key=r.__getitem__) == NONE for r in normal + reduce)
    g = derive({"normal": normal, "reduce": reduce}, DARTS_OPS, nodes=4)
    assert g == PUBLISHED["DARTS_V2"]
    assert "none" not in g.ops()


def test_none_ties_with_a_real_op_the_real_op_wins():
    probs = [row(none=0.3, skip_connect=0.3), row(none=0.3, avg_pool_3x3=0.3)]
    assert derive_cell(probs, DARTS_OPS, nodes=1) == [("skip_connect", 0), ("avg_pool_3x3", 1)]


# ---------------------------------------------------------------------------------------------------
# Ties


def test_edge_ties_keep_the_lower_input_first():
    uniform = [row(floor=1 / 8)] * len(edge_names(4))
    # Every op and edge equal: the first candidate after 'none', inputs 0 and 1 on every node.
    assert derive_cell(uniform, DARTS_OPS, nodes=4) == [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4


@pytest.mark.parametrize(
    "strengths, expected_inputs",
    [
        ((0.1, 0.5, 0.5), [1, 2]),  # tie for first place
        ((0.6, 0.3, 0.3), [0, 1]),  # tie for the second place: the lower input index is kept
        ((0.3, 0.3, 0.6), [2, 0]),
        ((0.2, 0.2, 0.2), [0, 1]),
    ],
)
def test_edge_ties_follow_the_official_stable_sort(strengths, expected_inputs):
    probs = TWO_NODES[:2] + [row(sep_conv_3x3=s) for s in strengths]
    cell = derive_cell(probs, DARTS_OPS, nodes=2)
    assert [j for _, j in cell[2:]] == expected_inputs
    assert cell == reference_rule(probs, DARTS_OPS, 2)


def test_op_ties_pick_the_earlier_candidate():
    probs = [row(sep_conv_3x3=0.3, dil_conv_3x3=0.3), row(max_pool_3x3=0.2, skip_connect=0.2)]
    assert derive_cell(probs, DARTS_OPS, nodes=1) == [("sep_conv_3x3", 0), ("max_pool_3x3", 1)]
    # The candidate list's order decides, not the op's name.
    reordered = ["none", "dil_conv_3x3", "skip_connect", "sep_conv_3x3", "max_pool_3x3"]
    probs = [row(reordered, sep_conv_3x3=0.3, dil_conv_3x3=0.3), row(reordered, max_pool_3x3=0.2, skip_connect=0.2)]
    assert derive_cell(probs, reordered, nodes=1) == [("dil_conv_3x3", 0), ("skip_connect", 1)]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 1], ids=["distinct", "many_ties"])
def test_agrees_with_the_reference_rule(seed, decimals):
    rng = random.Random(seed)
    logits = torch.tensor([[rng.gauss(0, 1) for _ in DARTS_OPS] for _ in edge_names(4)])
    probs = logits.softmax(-1).tolist()
    if decimals is not None:  # coarse values: ties between edges and between ops are frequent
        probs = [[round(p, decimals) for p in r] for r in probs]
    assert derive_cell(probs, DARTS_OPS, nodes=4) == reference_rule(probs, DARTS_OPS, 4)


# ---------------------------------------------------------------------------------------------------
# Edge weights, other candidate sets


def test_edge_probs_change_the_kept_edges_not_their_ops():
    probs = TWO_NODES[:2] + [row(sep_conv_3x3=0.5), row(max_pool_3x3=0.4), row(dil_conv_3x3=0.3)]
    assert derive_cell(probs, DARTS_OPS, nodes=2)[2:] == [("sep_conv_3x3", 0), ("max_pool_3x3", 1)]
    weights = [1.0, 1.0, 0.1, 1.0, 2.0]  # strengths 0.05, 0.4, 0.6
    assert derive_cell(probs, DARTS_OPS, nodes=2, edge_probs=weights)[2:] == [("dil_conv_3x3", 2), ("max_pool_3x3", 1)]
    # Each edge keeps its own best op whatever the scaling; node 2 (both inputs kept) is unchanged.
    assert derive_cell(probs, DARTS_OPS, nodes=2, edge_probs=weights)[:2] == derive_cell(probs, DARTS_OPS, nodes=2)[:2]
    g = derive(
        {"normal": probs, "reduce": probs},
        DARTS_OPS,
        nodes=2,
        edge_probs={"normal": torch.tensor(weights), "reduce": [1.0] * 5},
    )
    assert list(g.normal[2:]) == [("dil_conv_3x3", 2), ("max_pool_3x3", 1)]
    assert list(g.reduce[2:]) == [("sep_conv_3x3", 0), ("max_pool_3x3", 1)]


def test_candidate_set_without_none():
    ops = ["max_pool_3x3", "skip_connect", "sep_conv_3x3"]
    probs = [[0.2, 0.5, 0.3], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [0.5, 0.45, 0.05]]
    assert derive_cell(probs, ops, nodes=2) == [
        ("max_pool_3x3", 1),
        ("skip_connect", 0),
        ("sep_conv_3x3", 0),
        ("max_pool_3x3", 2),
    ]
    assert derive_cell(probs, ops, nodes=2, edge_probs=[1, 1, 1, 1, 1]) == derive_cell(probs, ops, nodes=2)


def test_none_anywhere_in_the_candidate_list_is_skipped():
    ops = ["skip_connect", "none", "sep_conv_3x3"]
    probs = [[0.1, 0.8, 0.1 + 1e-3], [0.2, 0.7, 0.1]]
    assert derive_cell(probs, ops, nodes=1) == [("skip_connect", 1), ("sep_conv_3x3", 0)]


# ---------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("shape", [(4, 8), (6, 8), (5, 7), (5, 9)])
def test_wrong_shape_is_rejected(shape):
    probs = torch.full(shape, 0.1)
    with pytest.raises(ValueError, match="5 edges x 8 ops"):
        derive_cell(probs.tolist(), DARTS_OPS, nodes=2)
    with pytest.raises(ValueError, match="5 edges x 8 ops"):
        derive({"normal": probs, "reduce": probs}, DARTS_OPS, nodes=2)


def test_ragged_rows_are_rejected():
    probs = [row() for _ in range(5)]
    probs[3] = probs[3][:-1]
    with pytest.raises(ValueError, match="edges x"):
        derive_cell(probs, DARTS_OPS, nodes=2)


def test_only_none_is_rejected():
    with pytest.raises(ValueError, match="'none'"):
        derive_cell([[1.0]] * 5, ["none"], nodes=2)


# ---------------------------------------------------------------------------------------------------
# From a real supernet


@pytest.mark.parametrize("ops", [DARTS_OPS, ["none", "max_pool_3x3", "skip_connect"]], ids=["darts", "small"])
def test_derive_from_a_supernet(ops):
    torch.manual_seed(0)
    model = Supernet(3, 10, init_channels=2, layers=3, nodes=2, ops=ops)
    g = derive(model.probs(), model.ops, model.nodes)
    assert isinstance(g, Genotype) and g.nodes == 2
    assert g.ops() <= set(ops) - {"none"}
    assert g.normal_concat == (2, 3)


def test_derive_from_supernet_alphas_set_by_hand():
    ops = ["none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"]
    model = Supernet(3, 10, init_channels=2, layers=3, nodes=2, ops=ops)
    with torch.no_grad():
        model.alphas["normal"].copy_(
            torch.tensor(
                [
                    [5.0, 0.0, 1.0, 0.0],  # 2<-0: skip_connect (none ignored)
                    [0.0, 0.0, 0.0, 2.0],  # 2<-1: sep_conv_3x3
                    [0.0, 3.0, 0.0, 0.0],  # 3<-0: max_pool, strongest of node 3
                    [0.0, 0.0, 0.0, 0.5],  # 3<-1: weakest, dropped
                    [0.0, 0.0, 2.0, 0.0],  # 3<-2: skip_connect
                ]
            )
        )
        model.alphas["reduce"].zero_()
    g = derive(model.probs(), model.ops, model.nodes)
    assert g.normal == (("sep_conv_3x3", 1), ("skip_connect", 0), ("max_pool_3x3", 0), ("skip_connect", 2))
    assert g.reduce == (("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 2  # uniform: all ties
