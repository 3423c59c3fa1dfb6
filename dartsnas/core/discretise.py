"""Branch-and-bound discretisation: the best discrete cell of a finished search's mixture, found best-first.

dartsnas's own derivation, not a published method. Nearest prior art: DARTS-PT (Wang et al., ICLR 2021) and
random search with weight sharing (Li & Talwalkar, UAI 2019) and SPOS (Guo et al., ECCV 2020), which judge
discrete cells by the shared weights' accuracy; the search is classic branch and bound (Land & Doig, 1960).

A discrete cell is one choice per *unit* (conv/bnb.py builds them: an edge of NAS-Bench-201's cell, whose
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
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable, Iterable, Sequence

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
