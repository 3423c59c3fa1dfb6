"""Branch-and-bound discretisation: on synthetic spaces the bounded search returns exactly the exhaustive
search's best cell and J while evaluating fewer cells and batches; on tiny supernets of both spaces the same
holds through `bnb_derive`, whose genotype is the cell it evaluated, and the model is left as it was."""

import random

import pytest
import torch

from dartsnas.conv.rederive import bnb_derive
from dartsnas.conv.config import SearchConfig
from dartsnas.data.batches import batches
from dartsnas.conv.nb201.genotype import CellGenotype
from dartsnas.conv.search import Searcher, prepare_data
from dartsnas.methods.derivations.bnb import branch_and_bound, decisions, exhaustive, units_of
from dartsnas.core.progressive import REMOVED

BATCH = [4, 4, 3]  # held-out batch sizes of the synthetic spaces: 11 images


def synthetic(seed, ties=False):
    """(units, evaluate) of a random space: 4 units of 3-4 choices with random log-scores (with `ties`, drawn
    from two values so many cells score alike) and per-cell, per-batch correct counts from a seeded table."""
    rng = random.Random(seed)
    units = [
        [(f"u{u}c{c}", -float(rng.choice([1, 2])) if ties else rng.uniform(-3, 0)) for c in range(rng.choice([3, 4]))]
        for u in range(4)
    ]

    def evaluate(cell):
        r = random.Random(f"{seed}:{cell}")  # deterministic per cell; few accuracy levels in ties mode
        for n in BATCH:
            yield (r.choice([0, n]) if ties else r.randint(0, n)), n

    return units, evaluate


def test_bounded_search_returns_the_exhaustive_best_with_fewer_evaluations():
    totals = dict.fromkeys(("started", "evaluated", "batches", "space", "exhaustive_batches"), 0)
    for seed in range(60):
        for w in (0.0, 0.1, 0.5, 1.0, 3.0):
            for ties in (False, True):
                units, evaluate = synthetic(seed, ties)
                cell, j, counts = branch_and_bound(units, evaluate, w, 4, sum(BATCH))
                ref_cell, ref_j, ref = exhaustive(units, evaluate, w, 4, sum(BATCH))
                assert (cell, j) == (ref_cell, ref_j), (seed, w, ties)
                assert ref["cells_evaluated"] == ref["space"] and ref["batches"] == ref["space"] * len(BATCH)
                assert counts["batches"] <= ref["batches"] and counts["cells_started"] <= ref["space"]
                for key, value in (
                    ("started", counts["cells_started"]),
                    ("evaluated", counts["cells_evaluated"]),
                    ("batches", counts["batches"]),
                    ("space", ref["space"]),
                    ("exhaustive_batches", ref["batches"]),
                ):
                    totals[key] += value
                if w >= 1.0 and not ties:  # the prior spreads the bounds enough to cut whole branches
                    assert counts["cells_started"] < ref["space"], (seed, w, counts)
    # Over 600 searches: fewer cells started, far fewer evaluated to the end, fewer batches.
    assert totals["started"] < totals["space"], totals
    assert totals["evaluated"] < totals["space"] / 3, totals
    assert totals["batches"] < totals["exhaustive_batches"] / 2, totals


def test_an_incumbent_of_accuracy_one_ends_an_accuracy_only_search():
    """w = 0: every bound is 1, so a cell with accuracy 1 prunes everything left; here it is the first cell
    met (the best-scored), and only it is evaluated."""
    units = [[("a", -0.1), ("b", -1.0), ("c", -2.0)] for _ in range(4)]

    def evaluate(cell):
        return ((n if set(cell) == {"a"} else 0, n) for n in BATCH)

    cell, j, counts = branch_and_bound(units, evaluate, 0.0, 4, sum(BATCH))
    assert cell == ("a",) * 4 and j == 1.0
    assert counts["cells_started"] == counts["cells_evaluated"] == 1 and counts["space"] == 81
    # Found later (the worst-scored cell), it still ends the search at once: nothing after it is started.
    perfect = ("c",) * 4
    seen = []

    def later(cell):
        seen.append(cell)
        return ((n if cell == perfect else n // 2, n) for n in BATCH)

    cell, j, counts = branch_and_bound(units, later, 0.0, 4, sum(BATCH))
    assert cell == perfect and j == 1.0 and seen[-1] == perfect and counts["cells_started"] == 81


def test_ties_go_to_the_higher_score_then_the_earlier_cell():
    units = [[("x", -1.0), ("y", -1.0)], [("p", -0.5), ("q", -2.0)]]

    def flat(cell):
        return ((2, 4) for _ in range(2))  # every cell: accuracy 1/2

    for search in (branch_and_bound, exhaustive):
        assert search(units, flat, 1.0, 2, 8)[0] == ("x", "p")  # x, y tie on score: the earlier listed
        assert search(units, flat, 0.0, 2, 8)[0] == ("x", "p")  # J ties everywhere: the higher score


def test_a_stopped_evaluation_is_closed_and_bad_inputs_are_refused():
    units, batch_counts = synthetic(0)
    closed = []

    def evaluate(cell):
        try:
            yield from batch_counts(cell)
        finally:
            closed.append(cell)

    _, _, counts = branch_and_bound(units, evaluate, 1.0, 4, sum(BATCH))
    assert len(closed) == counts["cells_started"] and counts["cells_evaluated"] < counts["cells_started"]
    with pytest.raises(ValueError, match="prior_weight"):
        branch_and_bound(units, evaluate, -1.0, 4, sum(BATCH))
    with pytest.raises(ValueError, match="total_items"):
        branch_and_bound(units, evaluate, 1.0, 4, sum(BATCH) + 1)
    with pytest.raises(ValueError, match="at least one choice"):
        exhaustive([[]], evaluate, 1.0, 1, 1)


# ---------------------------------------------------------------------------------------------------
# Tiny supernets through a Searcher


def searcher(steps=10, **options):
    """A Searcher of a tiny supernet on 64 fake 8x8 images (32 held out), alphas spread at random and the
    weights fitted a little to the held-out half, so cells differ in accuracy as well as in score."""
    config = SearchConfig(
        dataset="fake",
        data_options={"shape": [3, 8, 8], "size": 64, "num_classes": 4},
        init_channels=4,
        batch_size=16,
        lr=0.1,
        device="cpu",
        progress=False,
        plot=False,
        **options,
    ).validate()
    s = Searcher(config, prepare_data(config, torch.device("cpu")), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for a in s.model.arch_parameters():
            a.copy_(1.5 * torch.randn(a.shape, generator=g))
    for _ in range(steps):
        for x, y in batches(s.data.arch_half, 16, g, s.data.eval_augment):
            s.weight_step(s.prepare_inputs(x), y)
    return s


def held_out_accuracy(s, decided):
    """Accuracy of the supernet computing the `decided` cell on the first two held-out batches, stated plainly:
    batch norm by batch statistics (training mode), the running statistics put back after."""
    kept = [b.clone() for b in s.model.buffers()]
    s.model.train()
    correct = total = 0
    with torch.no_grad(), s.model.overridden(decided=decided):
        for x, y in list(batches(s.data.arch_half, 16, None, s.data.eval_augment, shuffle=False))[:2]:
            correct += int((s.model(s.prepare_inputs(x)).argmax(1) == y).sum())
            total += len(y)
        for b, k in zip(s.model.buffers(), kept):
            b.copy_(k)
    return correct / total


def check(s, weights, genotype_table):
    """bnb_derive equals the exhaustive reference at every prior weight, evaluates fewer cells at the largest,
    and returns the genotype of the cell it scored (recomputed here from the genotype alone)."""
    for w in weights:
        genotype, ev = bnb_derive(s, None, batches=2, prior_weight=w)
        ref_genotype, ref = bnb_derive(s, None, batches=2, prior_weight=w, exhaustive=True)
        assert genotype == ref_genotype and ev["J"] == ref["J"] and ev["acc"] == ref["acc"]
        assert ref["cells_evaluated"] == ref["space"] and ref["batches"] == ref["exhaustive_batches"]
        assert ev["batches"] <= ev["exhaustive_batches"] and ev["J"] >= ev["argmax"]["J"]
        assert str(genotype) == ev["genotype"] == ev["top"][0]["genotype"]
        assert held_out_accuracy(s, genotype_table(genotype)) == ev["acc"]
        assert ev["J"] == pytest.approx(ev["acc"] + w * ev["score"])
    assert ev["cells_started"] < ev["space"] and ev["batches"] < ev["exhaustive_batches"], ev
    return ev


def test_nb201_bnb_derive_is_the_exhaustive_best():
    s = searcher(space="nas-bench-201", ops=["none", "nor_conv_3x3"], stage_cells=1)  # 2^6 = 64 cells
    before = {k: a.detach().clone() for k, a in s.model.alphas.items()}
    ev = check(s, (0.0, 1.0), lambda g: {"cell": [s.model.ops.index(op) for op in g.edges]})
    s.model.train()
    assert ev["space"] == 64 and isinstance(bnb_derive(s, batches=1)[0], CellGenotype)
    assert s.model.training and s.model.decided == {}  # as it was
    assert all(torch.equal(a, before[k]) for k, a in s.model.alphas.items())


@pytest.mark.slow
def test_nb201_three_ops_bnb_derive_is_the_exhaustive_best():
    s = searcher(space="nas-bench-201", ops=["none", "skip_connect", "nor_conv_3x3"], stage_cells=1)  # 729 cells
    ev = check(s, (0.3, 1.0), lambda g: {"cell": [s.model.ops.index(op) for op in g.edges]})
    assert ev["space"] == 729 and ev["cells_started"] < 100


def darts_table(s, genotype):
    table = {kind: [REMOVED] * sum(s.model.fan_in) for kind in s.model.kinds}
    starts = [sum(s.model.fan_in[:i]) for i in range(len(s.model.fan_in))]
    for kind in s.model.kinds:
        for n, (op, j) in enumerate(getattr(genotype, kind)):
            table[kind][starts[n // 2] + j] = s.model.ops.index(op)
    return table


@pytest.mark.parametrize("mixed_op", ["exact", "sample"])
def test_darts_bnb_derive_is_the_exhaustive_best_and_keeps_decisions(mixed_op):
    """nodes=2 and two non-`none` ops: a normal cell of 4 x 12 = 48 pairs; the reduce cell decided by SGAS
    (one choice per node), so the space is 48 cells and every one keeps the decisions."""
    s = searcher(space="darts", ops=["none", "skip_connect", "sep_conv_3x3"], nodes=2, layers=3, mixed_op=mixed_op)
    for e, op in enumerate([1, 2, REMOVED, 1, 2]):
        s.model.decide("reduce", e, op)
    decided, relaxation = list(s.model.decided["reduce"]), s.model.relaxation
    ev = check(s, (0.3, 1.0) if mixed_op == "exact" else (1.0,), lambda g: darts_table(s, g))
    assert ev["space"] == 48
    draws = s.model.generator.get_state()
    genotype, _ = bnb_derive(s, batches=2)
    assert genotype.reduce == (("skip_connect", 0), ("sep_conv_3x3", 1), ("skip_connect", 1), ("sep_conv_3x3", 2))
    assert s.model.decided["reduce"] == decided and s.model.relaxation is relaxation
    assert torch.equal(s.model.generator.get_state(), draws)  # evaluation draws nothing


def test_darts_units_keep_a_partly_decided_node():
    s = searcher(steps=0, space="darts", ops=["none", "skip_connect", "sep_conv_3x3"], nodes=2, layers=3)
    s.model.decide("normal", 3, 2)  # node 3's edge from input 1: sep_conv_3x3
    s.model.decide("normal", 4, REMOVED)  # node 3's edge from input 2: cut
    units, kept = units_of(s.model)
    assert kept == 8 and [len(u) for u in units] == [4, 2, 4, 12]  # node 3: inputs (0, 1) only, 2 x 1 ops
    assert all(("normal", 3, 2) in choice for choice, _ in units[1])
    table = decisions(s.model, tuple(u[0][0] for u in units))
    assert table["normal"][3] == 2 and table["normal"][4] == REMOVED and table["normal"].count(REMOVED) == 1


def test_cells_are_evaluated_with_batch_statistics_and_the_running_ones_kept():
    """The docstring's claim: batch norm in training mode (each batch's own statistics, as DARTS-PT
    evaluates), not eval mode, with the running statistics and the mode restored after."""
    from dartsnas.methods.derivations.bnb import evaluating
    from dartsnas.conv.nb201.model import Supernet201

    torch.manual_seed(0)
    model = Supernet201(3, 4, init_channels=4, stage_cells=1).eval()
    before = [b.clone() for b in model.buffers()]
    x = 3 + torch.randn(8, 3, 8, 8)  # far from the running mean of 0: the two modes differ
    with evaluating(model):
        assert model.training
        inside = model(x)
    assert not model.training and all(torch.equal(a, b) for a, b in zip(before, model.buffers()))
    with torch.no_grad():
        assert not torch.allclose(inside, model(x))  # eval mode would have given this
        model.train()
        assert torch.allclose(inside, model(x))
