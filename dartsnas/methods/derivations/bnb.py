"""Branch-and-bound derivation: the discrete cell of a finished search that scores best on held-out batches.

dartsnas's own derivation, not a published method. Nearest prior art: DARTS-PT (Wang et al., ICLR 2021) and
random search with weight sharing (Li & Talwalkar, UAI 2019) and SPOS (Guo et al., ECCV 2020), which judge
discrete cells by the shared weights' accuracy; the search is classic branch and bound (Land & Doig, 1960).

A discrete cell is one choice per *unit* (`units_of` builds them: an edge of NAS-Bench-201's cell, whose
choices are its ops, `none` included; a node of a DARTS cell kind, whose choices are its pairs of distinct
inputs, each with a non-`none` op). Every choice carries a score, the log-probability the relaxation gives
its (edge, op) pairs; the cell's score s is the sum over its units divided by the number of kept edges
(the mean log-probability per kept edge, <= 0). The objective to maximise is

    J(cell) = acc(cell) + w * s(cell),

acc the cell's accuracy (the shared weights computing that cell) on fixed held-out batches and w >= 0
(`prior_weight`) how much the relaxation's belief counts against that evidence (w = 0: accuracy alone).

The bound. A branch decides the first units and leaves the rest free. Its bound is

    1 + w * (score of the decided units + sum over free units of their best choice's score) / kept edges,

an upper bound of J over every cell of the branch: acc <= 1, and no completion scores more on a free unit
than that unit's best choice. Branches are searched best-first (a max-heap by bound); a complete cell is
evaluated, an incomplete branch is expanded into its children (the next unit's choices), and the search
stops when the best bound left cannot beat the incumbent, so no cell it skipped could have been better.
Evaluation is bounded too: after some batches a cell's J is at most (correct so far + images not yet seen)
/ all images + w * s, and its evaluation stops as soon as that cannot beat the incumbent.

Ties, so the answer is deterministic and the same as `exhaustive`'s: cells compare by (J, s, then the
earlier cell when every unit's choices are listed best score first, the order the search meets them).
Bounds compare the same way, which keeps the search exact on ties: a branch is dropped only when even its
best conceivable cell (accuracy 1, every free unit at its best) is not ahead of the incumbent.
Floating-point sums are accumulated in unit order everywhere, so a bound is never below a J it covers.

The units, from the supernet's probabilities `model.probs()`:

- NAS-Bench-201 (`kept_per_node is None`): a unit per edge; its choices are every op, `none` included;
- DARTS (`kept_per_node == 2`): a unit per (cell kind, node); its choices are the pairs of distinct inputs
  j1 < j2, each with a non-`none` op.

A choice scores the sum of its (edge, op) log-probabilities; choices of probability 0 are left out, and a
node's edges that a progressive search (SGAS) decided must be in every choice, so decided edges stay as
decided and removed ones stay removed. A cell is evaluated on the shared weights: the supernet computes it
with `model.overridden(decided=...)` (a kept edge one-hot on its op, every other edge REMOVED) on the first
`batches` held-out batches (`net.held_out`: the search's validation half, no augmentation, fixed order), under
no_grad in training mode: batch norm normalises by each batch's own statistics, as DARTS-PT evaluates, and
the running statistics it moves are restored after (`evaluating`). A sampling relaxation is swapped for the
softmax meanwhile (decided rows are one-hot anyway; no draw moves the search's generator), and DARTS-'s
auxiliary skip is off (it would add a skip to cut edges). The genotype is the space's own derivation of the
best cell's one-hot probabilities, without a skip cap.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import time
from collections.abc import Callable, Hashable, Iterable, Sequence

import torch

from ...core.progressive import FREE, REMOVED
from ..relaxations import make


Unit = Sequence[tuple[Hashable, float]]  # the choices of one unit, as (choice, log-score)
Evaluate = Callable[[tuple], Iterable[tuple[int, int]]]  # cell -> (correct, seen) per batch


def ranked(units: Sequence[Unit]) -> list[list[tuple[Hashable, float]]]:
    """Each unit's choices best score first (a stable sort: equal scores keep their listed order)."""
    if not units or any(len(u) == 0 for u in units):
        raise ValueError("every unit needs at least one choice")
    return [sorted(u, key=lambda c: -c[1]) for u in units]


def _score(rows, index: Sequence[int]) -> float:
    """Sum of the units' scores for choice indices `index`, the missing tail at each unit's best; in unit order."""
    total = 0.0
    for u, row in enumerate(rows):
        total += row[index[u] if u < len(index) else 0][1]
    return total


def _check(prior_weight: float, edges_kept: int, total_items: int) -> None:
    if prior_weight < 0:
        raise ValueError(f"prior_weight must be >= 0 (the bound needs it), got {prior_weight}")
    if edges_kept < 1 or total_items < 1:
        raise ValueError(f"need edges_kept >= 1 and total_items >= 1, got {edges_kept} and {total_items}")


def _run(evaluate: Evaluate, cell: tuple, total: int, ahead: Callable[[float], bool], counts: dict) -> int | None:
    """Correct count of `cell` over every batch, or None when `ahead(optimistic accuracy)` turned false
    (the cell cannot beat the incumbent). The evaluation's iterator is closed when stopped early."""
    counts["cells_started"] += 1
    correct = seen = 0
    batches = iter(evaluate(cell))
    try:
        for c, n in batches:
            correct, seen = correct + int(c), seen + int(n)
            counts["batches"] += 1
            if seen < total and not ahead((correct + total - seen) / total):
                return None
    finally:
        getattr(batches, "close", lambda: None)()
    if seen != total:
        raise ValueError(f"evaluate saw {seen} items, not total_items={total}: the bound would be wrong")
    counts["cells_evaluated"] += 1
    return correct


def branch_and_bound(
    units: Sequence[Unit], evaluate: Evaluate, prior_weight: float, edges_kept: int, total_items: int
) -> tuple[tuple, float, dict]:
    """(best cell as a tuple of choices, its J, counts) by the best-first search of the module docstring.
    `evaluate(cell)` yields (correct, seen) per held-out batch, `total_items` images in all; counts:
    cells_started, cells_evaluated (to the last batch), batches, branches_expanded, pruned (branches
    dropped by their bound, complete cells among them), space (cells in the space)."""
    _check(prior_weight, edges_kept, total_items)
    rows, w = ranked(units), prior_weight
    counts = dict.fromkeys(("cells_started", "cells_evaluated", "batches", "branches_expanded", "pruned"), 0)
    counts["space"] = _space(rows)
    full = len(rows)
    best = None  # the incumbent: (its key, the cell, its J)

    def key(bound: float, s: float, index: tuple) -> tuple:
        # Larger is better; the index is padded with the free units' best (0) so it is the branch's first cell.
        return bound, s, tuple(-i for i in index) + (0,) * (full - len(index))

    def push(heap, index):
        s = _score(rows, index) / edges_kept
        k = key(1.0 + w * s, s, index)
        if best is not None and k <= best[0]:
            counts["pruned"] += 1
            return
        heapq.heappush(heap, (_negate(k), index))

    heap: list = []
    push(heap, ())
    while heap:
        k, index = heap[0]
        if best is not None and _negate(k) <= best[0]:
            # The best bound left is not ahead of the incumbent: no cell left can beat it.
            counts["pruned"] += len(heap)
            break
        heapq.heappop(heap)
        if len(index) < full:
            counts["branches_expanded"] += 1
            for i in range(len(rows[len(index)])):
                push(heap, index + (i,))
            continue
        s = _score(rows, index) / edges_kept
        cell = tuple(rows[u][i][0] for u, i in enumerate(index))
        correct = _run(
            evaluate, cell, total_items, lambda acc: best is None or key(acc + w * s, s, index) > best[0], counts
        )
        if correct is not None:
            j = correct / total_items + w * s
            if best is None or key(j, s, index) > best[0]:
                best = key(j, s, index), cell, j
    return best[1], best[2], counts


def exhaustive(
    units: Sequence[Unit], evaluate: Evaluate, prior_weight: float, edges_kept: int, total_items: int
) -> tuple[tuple, float, dict]:
    """The reference: every cell evaluated on every batch, the best by the same objective and tie rule."""
    _check(prior_weight, edges_kept, total_items)
    rows, w = ranked(units), prior_weight
    counts = dict.fromkeys(("cells_started", "cells_evaluated", "batches", "branches_expanded", "pruned"), 0)
    counts["space"] = _space(rows)
    best = None
    for index in itertools.product(*(range(len(r)) for r in rows)):  # the tie order: earlier wins
        s = _score(rows, index) / edges_kept
        cell = tuple(rows[u][i][0] for u, i in enumerate(index))
        j = _run(evaluate, cell, total_items, lambda acc: True, counts) / total_items + w * s
        if best is None or (j, s) > best[0]:
            best = (j, s), cell, j
    return best[1], best[2], counts


def _negate(key: tuple) -> tuple:
    """A key heapq's min-heap pops largest first."""
    return -key[0], -key[1], tuple(-i for i in key[2])


def _space(rows) -> int:
    n = 1
    for r in rows:
        n *= len(r)
    return n


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


SEARCHES = {False: branch_and_bound, True: exhaustive}  # exhaustive: the reference


def select(net, generator=None, batches: int = 4, prior_weight: float = 1.0, exhaustive: bool = False) -> tuple:
    """(genotype, evidence) of the best cell by branch and bound (exhaustive: by evaluating every cell, the
    reference). `net` (base.py) gives `model` (the search network: `probs`, `ops`, `kinds`, `fan_in`,
    `kept_per_node`, `decided`, `overridden`), `held_out(batches)` (the first held-out batches, inputs ready,
    in a fixed order without augmentation) and `derive()` (the space's genotype of the model as it computes
    now). `generator` is unused: nothing is drawn; it is taken so that every rule that evaluates the network
    has the same signature."""
    if batches < 1:
        raise ValueError(f"batches must be >= 1, got {batches}")
    model = net.model
    started = time.perf_counter()
    units, kept = units_of(model)
    held = list(net.held_out(batches))
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
            "genotype": str(genotype_of(net, cell)),
            "J": accuracy[cell] + prior_weight * s,
            "acc": accuracy[cell],
            "score": s,
        }

    scores = [dict(u) for u in units]
    with evaluating(model):
        search = SEARCHES[bool(exhaustive)]
        best, _, counts = search(units, evaluate, prior_weight, kept, total)
        argmax = tuple(u[0][0] for u in ranked(units))  # the relaxation's most probable cell
        if argmax not in accuracy:  # both searches evaluate it first, to the end; this is a safeguard
            list(evaluate(argmax))
        genotype = genotype_of(net, best)
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


def genotype_of(net, cell):
    """The space's genotype of `cell`: its derivation rule on the cell's one-hot probabilities (no skip cap),
    checked to keep exactly the cell's edges and ops."""
    model = net.model
    with model.overridden(decided=decisions(model, cell)):
        genotype = net.derive()
    if genotype_edges(model, genotype) != {(kind, e, model.ops[o]) for choice in cell for kind, e, o in choice}:
        raise RuntimeError(f"the derivation did not reproduce the chosen cell: {genotype}")
    return genotype


def genotype_edges(model, genotype) -> set[tuple[str, int, str]]:
    """(cell kind, edge index, op name) of every edge a genotype keeps."""
    if model.kept_per_node is None:  # every edge kept (NAS-Bench-201): the genotype lists each edge's op
        return {(model.kinds[0], e, op) for e, op in enumerate(genotype.edges)}
    starts = [sum(model.fan_in[:i]) for i in range(len(model.fan_in))]
    return {
        (kind, starts[n // model.kept_per_node] + j, op)
        for kind in model.kinds
        for n, (op, j) in enumerate(getattr(genotype, kind))
    }


UNIT = select
