"""Branch-and-bound derivation: the discrete cell of a finished search that scores best on held-out batches.

The search (core/discretise.py states the objective, the bound and why it is one) runs over units built
from the supernet's probabilities `model.probs()`:

- NAS-Bench-201 (`kept_per_node is None`): a unit per edge; its choices are every op, `none` included;
- DARTS (`kept_per_node == 2`): a unit per (cell kind, node); its choices are the pairs of distinct inputs
  j1 < j2, each with a non-`none` op.

A choice scores the sum of its (edge, op) log-probabilities; choices of probability 0 are left out, and a
node's edges that a progressive search (SGAS) decided must be in every choice, so decided edges stay as
decided and removed ones stay removed. A cell is evaluated on the shared weights: the supernet computes it
with `model.overridden(decided=...)` (a kept edge one-hot on its op, every other edge REMOVED) on the first
`batches` batches of the search's validation half (`data.arch_half`, no augmentation, fixed order), under
no_grad in training mode: batch norm normalises by each batch's own statistics, as DARTS-PT evaluates, and
the running statistics it moves are restored after (`evaluating`). A sampling relaxation is swapped for the
softmax meanwhile (decided rows are one-hot anyway; no draw moves the search's generator), and DARTS-'s
auxiliary skip is off (it would add a skip to cut edges). This derivation is dartsnas's own
(core/discretise.py says which published work is nearest).
The genotype is the space's own derivation of the best cell's one-hot probabilities, without a skip cap.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time

import torch

from ..core.discretise import branch_and_bound, exhaustive as exhaustive_search, ranked
from ..core.progressive import FREE, REMOVED
from ..methods.relaxations import make
from ..data.batches import batches as image_batches
from .nb201.genotype import CellGenotype

Choice = tuple[tuple[str, int, int], ...]  # the (cell kind, edge, op index) pairs a choice keeps


def units_of(model) -> tuple[list[list[tuple[Choice, float]]], int]:
    """(units, kept edges) of the model's space, as the module docstring says."""
    probs = {k: p.double().cpu().tolist() for k, p in model.probs().items()}
    every_op = range(len(model.ops))
    not_none = [o for o in every_op if model.ops[o] != "none"]
    units = []
    for kind in model.kinds:
        decided = model.decided.get(kind, [FREE] * sum(model.fan_in))
        start = 0
        for n in model.fan_in:
            edges = range(start, start + n)
            if model.kept_per_node is None:  # every edge kept, `none` a choice: a unit per edge
                units += [_choices(kind, (e,), every_op, probs[kind]) for e in edges]
            else:  # kept_per_node distinct inputs, each with a non-`none` op; decided edges among them
                must = {e for e in edges if decided[e] >= 0}
                units.append(
                    [
                        c
                        for group in itertools.combinations(edges, model.kept_per_node)
                        if must <= set(group)
                        for c in _choices(kind, group, not_none, probs[kind])
                    ]
                )
            start += n
    if any(not u for u in units):
        raise ValueError("a unit has no choice of non-zero probability: nothing can be derived")
    return units, sum(len(u[0][0]) for u in units)


def _choices(kind: str, edges, ops, rows) -> list[tuple[Choice, float]]:
    """Every op assignment of `edges` whose probabilities are all positive, scored by summed log-probability."""
    out = []
    for assignment in itertools.product(ops, repeat=len(edges)):
        ps = [rows[e][o] for e, o in zip(edges, assignment)]
        if all(p > 0 for p in ps):
            out.append((tuple((kind, e, o) for e, o in zip(edges, assignment)), sum(math.log(p) for p in ps)))
    return out


def decisions(model, cell) -> dict[str, list[int]]:
    """The `decided` table that makes the supernet compute `cell` (a choice per unit): kept edges one-hot on
    their op, every other edge REMOVED."""
    table = {kind: [REMOVED] * sum(model.fan_in) for kind in model.kinds}
    for choice in cell:
        for kind, e, o in choice:
            table[kind][e] = o
    return table


@contextlib.contextmanager
def evaluating(model):
    """No gradient, the softmax relaxation and no auxiliary skip inside; the model's own after. Batch norm
    normalises by the batch's own statistics (training mode, as DARTS-PT evaluates): the running statistics
    were gathered under the mixture, not under the discrete cell being evaluated. They are restored after."""
    saved = model.training, model.relaxation, model.aux_skip
    buffers = [b.clone() for b in model.buffers()]
    model.train()
    if model.relaxation.draws:
        model.relaxation = make("exact")
    model.aux_skip = 0.0
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(saved[0])
        model.relaxation, model.aux_skip = saved[1], saved[2]
        with torch.no_grad():
            for b, kept in zip(model.buffers(), buffers):
                b.copy_(kept)


def bnb_derive(
    searcher, generator=None, batches: int = 4, prior_weight: float = 1.0, exhaustive: bool = False
) -> tuple:
    """(genotype, evidence) of the best cell by branch and bound (exhaustive: by evaluating every cell, the
    reference). `generator` is unused: the held-out batches come in a fixed order without augmentation and
    nothing is drawn; it is taken so that every derivation rule has the same signature."""
    if batches < 1:
        raise ValueError(f"batches must be >= 1, got {batches}")
    model, data, config = searcher.model, searcher.data, searcher.config
    started = time.perf_counter()
    units, kept = units_of(model)
    held = [
        (searcher.prepare_inputs(x), y)
        for x, y in itertools.islice(
            image_batches(data.arch_half, config.batch_size, None, data.eval_augment, shuffle=False), batches
        )
    ]
    total = sum(len(y) for _, y in held)
    accuracy = {}  # cell -> held-out accuracy, for the cells evaluated to the last batch

    def evaluate(cell):
        table, correct = decisions(model, cell), 0
        for x, y in held:
            with model.overridden(decided=table):  # per batch: a stopped evaluation leaves nothing overridden
                c = int((model(x).argmax(1) == y).sum())
            correct += c
            yield c, len(y)
        accuracy[cell] = correct / total

    def score(cell) -> float:  # mean log-probability per kept edge, summed in unit order as the search does
        return sum(scores[u][c] for u, c in enumerate(cell)) / kept

    def describe(cell) -> dict:
        s = score(cell)
        return {
            "genotype": str(genotype_of(model, config, cell)),
            "J": accuracy[cell] + prior_weight * s,
            "acc": accuracy[cell],
            "score": s,
        }

    scores = [dict(u) for u in units]
    with evaluating(model):
        search = exhaustive_search if exhaustive else branch_and_bound
        best, _, counts = search(units, evaluate, prior_weight, kept, total)
        argmax = tuple(u[0][0] for u in ranked(units))  # the relaxation's most probable cell
        if argmax not in accuracy:  # both searches evaluate it first, to the end; this is a safeguard
            list(evaluate(argmax))
        genotype = genotype_of(model, config, best)
        # The best first (it wins the ties too), then the other cells evaluated to the end, by J.
        others = sorted((c for c in accuracy if c != best), key=lambda c: -(accuracy[c] + prior_weight * score(c)))
        evidence = {
            "rule": "bnb",
            "exhaustive": exhaustive,
            "prior_weight": prior_weight,
            "held_out_batches": len(held),
            "images": total,
            **counts,
            "exhaustive_batches": counts["space"] * len(held),
            **describe(best),
            "argmax": describe(argmax),
            "top": [describe(c) for c in [best] + others[:4]],
        }
    evidence["seconds"] = time.perf_counter() - started
    return genotype, evidence


def genotype_of(model, config, cell):
    """The space's genotype of `cell`: its derivation rule on the cell's one-hot probabilities (no skip cap),
    checked to keep exactly the cell's edges and ops."""
    with model.overridden(decided=decisions(model, cell)):
        genotype = model.derive(config.derivation())
    if genotype_edges(model, genotype) != {(kind, e, model.ops[o]) for choice in cell for kind, e, o in choice}:
        raise RuntimeError(f"the derivation did not reproduce the chosen cell: {genotype}")
    return genotype


def genotype_edges(model, genotype) -> set[tuple[str, int, str]]:
    """(cell kind, edge index, op name) of every edge a genotype keeps."""
    if isinstance(genotype, CellGenotype):
        return {(model.kinds[0], e, op) for e, op in enumerate(genotype.edges)}
    starts = [sum(model.fan_in[:i]) for i in range(len(model.fan_in))]
    return {
        (kind, starts[n // model.kept_per_node] + j, op)
        for kind in model.kinds
        for n, (op, j) in enumerate(getattr(genotype, kind))
    }
