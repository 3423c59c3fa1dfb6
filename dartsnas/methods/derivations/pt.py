"""DARTS-PT: architecture selection by perturbation (Wang et al., "Rethinking Architecture Selection in
Differentiable NAS", ICLR 2021, Sec. 4, Alg. 1).

The magnitude of an alpha need not say how much its op matters to the supernet (Sec. 3): on a collapsing
search, skip connections win the argmax while the convolutions carry the accuracy. DARTS-PT asks the
supernet instead: an op is worth what the supernet's validation accuracy loses when that op alone is taken
out of its edge's mixture.

- Operation selection: edge by edge, in random order, each candidate op is masked out of the edge (its
  coefficient set to 0, the others left as they are, not renormalised) and the supernet evaluated on the
  validation half; the op whose removal gives the lowest accuracy is the edge's op, and the edge is decided
  (a one-hot edge, `SearchNetwork.decide`). The supernet is then tuned for `tune_epochs` epochs (architecture
  and weight steps) before the next decision, so it recovers from the projection: theirs by default, 5 in
  NAS-Bench-201 (nasbench201/train_search.py `--proj_intv`), 10 in the DARTS space (sota/cnn/train_search.py's
  default; their exp_scripts/darts-proj-sota.sh passes 5).
- Topology (spaces that keep 2 inputs per node, DARTS): node by node, in random order, the input edge whose
  removal gives the highest accuracy is cut, until 2 inputs remain; tuning after each node.

It follows the authors' code (ruocwang/darts-pt, sota/cnn/projection.py) in these points: `none` is not a
candidate in the DARTS space (their space has no `none`); in NAS-Bench-201's space every op, `none` included,
is one (nasbench201/projection.py); the criterion is validation accuracy; evaluations run with batch norm in
training mode (their `infer(..., _eval=False)`), here under no_grad with every buffer restored afterwards so
that evaluating leaves the running statistics as they were (the caller's `net.accuracy`: conv/rederive.py's
`validation_accuracy`); tuning runs the search's own steps with a fresh
SGD optimiser of the search's settings at a tenth of its weight learning rate, held constant (their
`model.reset_optimizer(learning_rate / 10, momentum, weight_decay)`; their DARTS-space projection also builds
a cosine schedule over the tuning but never steps it, and their NAS-Bench-201 one has none); edges are taken
in rounds of one random free edge of each cell kind, normal then reduce, the tuning between rounds (their loop
projects a normal and a reduce edge per interval), and topology likewise one node of each kind per round.

Deliberate differences: nothing is tuned after the last round (their loop tunes one more epoch, which no
decision reads); every interval is `tune_epochs` long (their NAS-Bench-201 loop, 5 * (edges - 1) epochs with
a projection at the last one too, leaves 4 before the sixth edge); within a node, an edge cut stays cut
while the next one is chosen (their loop re-evaluates with the earlier-dropped edges still present), so each
round measures the cell that will actually remain; a sampling relaxation (GDAS, `sample` mode) is evaluated
as its expected mixture, softmax(alphas), so that evaluations are deterministic.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable

import torch

from ...core.progressive import FREE, REMOVED
from ..relaxations import make


@contextlib.contextmanager
def expected_mixture(model):
    """A sampling relaxation replaced by softmax(alphas) (the probabilities it draws from):
    one deterministic mixture per evaluation. Deterministic relaxations are left alone."""
    if not model.relaxation.draws:
        yield
        return
    saved = model.relaxation, model.temperature
    model.relaxation, model.temperature = make("exact"), 1.0
    try:
        yield
    finally:
        model.relaxation, model.temperature = saved


def node_edges(fan_in) -> list[list[int]]:
    """The edge indices entering each node, node by node."""
    starts = itertools.accumulate([0] + list(fan_in))
    return [list(range(s, s + n)) for s, n in zip(starts, fan_in)]


def _shuffled(items: list, generator: torch.Generator) -> list:
    return [items[i] for i in torch.randperm(len(items), generator=generator).tolist()]


def _rounds(queues: dict[str, list]) -> list[list[tuple[str, object]]]:
    """One item of each cell kind per round, kinds in order, until every queue is empty."""
    return [
        [(kind, item) for kind, item in zip(queues, row) if item is not None]
        for row in itertools.zip_longest(*queues.values())
    ]


# Tuning epochs between decisions by default, per space: the authors' (module docstring).
TUNE_EPOCHS = {"nas-bench-201": 5, "darts": 10}


def select(
    net, generator: torch.Generator, tune_epochs: int | None = None, log: Callable[[str], None] | None = None
) -> tuple[object, dict]:
    """Decide every free edge of `net.model` by perturbation, then (DARTS space) its topology; -> (genotype by
    the space's rule, evidence). The model keeps its decisions.

    `net` (base.py) gives `model` (the search network: `ops`, `kinds`, `fan_in`, `kept_per_node`, `decided`,
    `masks`, `decide`, `overridden`, `edge_names`), `accuracy()` (of the supernet as it computes now, on
    held-out batches), `derive()` (the space's genotype of it), and for tuning `space`, `lr` and
    `tune(epochs, lr)` (the search's steps in a fresh SGD at the constant rate `lr`). Ops and edges are
    visited in an order drawn from `generator`. `tune_epochs`: between rounds; None: the authors' for the
    space (TUNE_EPOCHS).
    """
    start = time.perf_counter()
    model = net.model
    tune_epochs = TUNE_EPOCHS[net.space] if tune_epochs is None else tune_epochs
    if tune_epochs < 0:
        raise ValueError(f"tune_epochs must be at least 0, got {tune_epochs}")
    say = log or (lambda message: None)
    evaluations = 0

    def evaluate(decided=None, masks=None) -> float:
        nonlocal evaluations
        evaluations += 1
        with torch.no_grad(), model.overridden(decided=decided, masks=masks), expected_mixture(model):
            return net.accuracy()

    rounds = 0

    def tune_between_rounds() -> None:  # before every round but the first: nothing reads a tuning after the last
        nonlocal rounds
        rounds += 1
        if rounds > 1 and tune_epochs:
            net.tune(tune_epochs, net.lr / 10)  # darts-pt: a tenth of the search's rate, held constant

    names, edges = model.edge_names(), sum(model.fan_in)

    def row(kind: str) -> list[int]:  # a copy of the kind's decisions (all FREE before the first)
        return list(model.decided.get(kind, [FREE] * edges))

    # Candidates: every op in a space that keeps every edge (NAS-Bench-201, `none` a choice), else not `none`.
    choosable = [o for o, name in enumerate(model.ops) if model.kept_per_node is None or name != "none"]

    decisions = []
    free = {kind: _shuffled([e for e, d in enumerate(row(kind)) if d == FREE], generator) for kind in model.kinds}
    for round_ in _rounds(free):
        tune_between_rounds()
        for kind, edge in round_:
            decisions.append(_select_op(model, kind, edge, choosable, names, evaluate, say))

    topology = []
    if model.kept_per_node is not None:
        k = model.kept_per_node
        crowded = {
            kind: _shuffled(
                [n for n, ins in enumerate(node_edges(model.fan_in)) if sum(row(kind)[e] != REMOVED for e in ins) > k],
                generator,
            )
            for kind in model.kinds
        }
        for round_ in _rounds(crowded):
            tune_between_rounds()
            for kind, node in round_:
                topology += _select_edges(model, kind, node_edges(model.fan_in)[node], k, names, evaluate, row, say)

    genotype = net.derive()
    return genotype, {
        "tune_epochs": tune_epochs,
        "tune_lr": net.lr / 10,  # constant, in a fresh optimiser
        "tuned_epochs": max(rounds - 1, 0) * tune_epochs,
        "decisions": decisions,
        "topology": topology,
        "evaluations": evaluations,
        "seconds": time.perf_counter() - start,
    }


def _select_op(model, kind: str, edge: int, choosable: list[int], names: list[str], evaluate, say) -> dict:
    """Mask each candidate out of the edge in turn; decide the edge to the one whose removal hurts most."""
    base = evaluate()
    without = {}
    for o in choosable:
        mask = torch.ones(sum(model.fan_in), len(model.ops))
        mask[edge, o] = 0.0
        without[o] = evaluate(masks={**model.masks, kind: mask})
    chosen = min(choosable, key=lambda o: (without[o], o))  # ties: the earlier op
    model.decide(kind, edge, chosen)
    say(f"PT {kind} edge {names[edge]}: {model.ops[chosen]} (accuracy {base:.4f}, {without[chosen]:.4f} without it)")
    return {
        "kind": kind,
        "edge": edge,
        "edge_name": names[edge],
        "base_acc": base,
        "acc_without": {model.ops[o]: acc for o, acc in without.items()},
        "chosen": model.ops[chosen],
    }


def _select_edges(model, kind: str, inputs: list[int], k: int, names: list[str], evaluate, row, say) -> list[dict]:
    """Cut the node's input whose removal leaves the highest accuracy, until `k` inputs remain."""
    records = []
    while True:
        live = [e for e in inputs if row(kind)[e] != REMOVED]
        if len(live) <= k:
            return records
        without = {}
        for e in live:
            trial = row(kind)
            trial[e] = REMOVED
            without[e] = evaluate(decided={**model.decided, kind: trial})
        cut = max(live, key=lambda e: (without[e], -e))  # ties: the earlier edge
        model.decide(kind, cut, REMOVED)
        say(f"PT {kind} node {names[cut].split('<-')[0]}: cut {names[cut]} ({without[cut]:.4f} without it)")
        records.append(
            {
                "kind": kind,
                "node": names[inputs[0]].split("<-")[0],
                "acc_without_edge": {names[e]: acc for e, acc in without.items()},
                "removed": names[cut],
            }
        )


UNIT = select
