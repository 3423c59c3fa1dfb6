"""The choice modules are the method, not a look-alike: the built-in DARTS and NAS-Bench-201 search cells written
with `Choice` and `InputChoice` give the built-in supernets' loss and every gradient (weights and alphas) in
float64, from the same weights and alphas, in every relaxation the cell allows (as tests/test_reference.py holds
the fast supernet against the plain one). The choices share alphas by label, one table per cell kind, as the
supernet does (Sec. 3.1.1)."""

import pytest
import torch
from torch import nn

from dartsnas.choices.modules import Choice, InputChoice, Zero
from dartsnas.choices.space import SearchView, alphas, arch_parameters, choices_of, same_draw, weights
from dartsnas.core.architect import Architect
from dartsnas.conv import ops as darts_ops
from dartsnas.conv.nb201 import model as nb201
from dartsnas.conv.spaces import DARTS_OPS
from dartsnas.conv.supernet import Supernet


def _build(space_candidate):
    """Candidates as the supernets build them; `none` is our Zero at the edge's stride."""
    return lambda name, c, stride: Zero(stride) if name == "none" else space_candidate(name, c, stride)


class DartsCell(nn.Module):
    """supernet.SearchCell with choices: node i = the sum over its inputs of edge i<-j's op choice; the edges of
    one cell kind share their alphas by label ("normal/3": edge 3 of every normal cell)."""

    def __init__(self, nodes, c_pp, c_p, c, reduction, reduction_prev, ops, relaxation):
        super().__init__()
        self.reduction = reduction
        self.pre0 = (
            darts_ops.FactorizedReduce(c_pp, c, affine=False)
            if reduction_prev
            else darts_ops.ReLUConvBN(c_pp, c, 1, 1, 0, affine=False)
        )
        self.pre1 = darts_ops.ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        kind, build = "reduce" if reduction else "normal", _build(darts_ops.candidate)
        stride = [2 if reduction and j < 2 else 1 for j in range(nodes + 1)]
        self.edges = nn.ModuleList(
            Choice({n: build(n, c, stride[j]) for n in ops}, label=f"{kind}/{e}", relaxation=relaxation)
            for e, j in enumerate(j for i in range(nodes) for j in range(2 + i))
        )
        # DARTS's node sums every input; the search keeps 2 (Sec. 2.4), judged by the edges' op weights.
        self.nodes = nn.ModuleList(InputChoice(2 + i, 2, label=f"{kind}/node{i}", weighted=False) for i in range(nodes))

    def forward(self, s0, s1):
        states, e = [self.pre0(s0), self.pre1(s1)], 0
        for node in self.nodes:
            states.append(node([self.edges[e + j](h) for j, h in enumerate(states)]))
            e += len(states) - 1
        return torch.cat(states[2:], dim=1)


class DartsNetwork(nn.Module):
    """supernet.Supernet's layout, its cells written with choices."""

    def __init__(self, in_channels, num_classes, c=4, layers=3, nodes=3, ops=DARTS_OPS, relaxation="exact"):
        super().__init__()
        c_curr = 3 * c
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, c
        self.cells, reduction_prev = nn.ModuleList(), False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            c_curr *= 2 if reduction else 1
            self.cells.append(DartsCell(nodes, c_pp, c_p, c_curr, reduction, reduction_prev, ops, relaxation))
            reduction_prev, c_pp, c_p = reduction, c_p, nodes * c_curr
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(s1.mean(dim=(2, 3)))


class Nb201Cell(nn.Module):
    """nb201.SearchCell with choices; with partial channels each node weighs its inputs by an InputChoice's
    softmax (PC-DARTS's edge normalisation)."""

    def __init__(self, c, ops, relaxation, partial_k):
        super().__init__()
        parts = partial_k if relaxation == "partial" else 1
        build = _build(nb201.candidate)
        self.edges = nn.ModuleList(
            Choice(
                {n: build(n, c // parts, 1) for n in ops}, label=f"cell/{e}", relaxation=relaxation, partial_k=partial_k
            )
            for e in range(sum(nb201.FAN_IN))
        )
        weighted = relaxation == "partial"
        self.nodes = nn.ModuleList(
            InputChoice(i, i, label=f"cell/node{i}", weighted=weighted) if i > 1 else nn.Identity()
            for i in nb201.FAN_IN
        )

    def forward(self, x):
        states, e = [x], 0
        for i, node in zip(nb201.FAN_IN, self.nodes):
            terms = [self.edges[e + j](states[j]) for j in range(i)]
            states.append(node(terms) if i > 1 else terms[0])
            e += i
        return states[-1]


class Nb201Network(nn.Module):
    def __init__(self, in_channels, num_classes, c=4, stage_cells=1, ops=nb201.OPS, relaxation="exact", partial_k=2):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers, c_prev = [], c
        for c_curr, reduction in nb201.stages(c, stage_cells):
            layers.append(
                nb201.ResidualReduction(c_prev, c_curr) if reduction else Nb201Cell(c_curr, ops, relaxation, partial_k)
            )
            c_prev = c_curr
        self.layers = nn.ModuleList(layers)
        self.last = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU())
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.classifier(self.last(x).mean(dim=(2, 3)))


def _alpha_rows(supernet, fan_in):
    """label -> the supernet's row of alphas it shares: one per edge and cell kind, and per node its edge logits."""
    rows = {}
    for kind in supernet.kinds:
        for e in range(sum(fan_in)):
            rows[f"{kind}/{e}"] = (kind, e)
        start = 0
        for i, n in enumerate(fan_in):
            rows[f"{kind}/node{i if kind != 'cell' else i + 1}"] = (f"{kind}_edges", slice(start, start + n))
            start += n
    return rows


def _pair(space, relaxation):
    torch.manual_seed(0)
    if space == "darts":
        supernet = Supernet(3, 5, init_channels=4, layers=3, nodes=3, mixed_op=relaxation).double()
        ours = DartsNetwork(3, 5, relaxation=relaxation).double()
    else:
        supernet = nb201.Supernet201(3, 5, init_channels=4, stage_cells=1, mixed_op=relaxation, partial_k=2).double()
        ours = Nb201Network(3, 5, relaxation=relaxation).double()
    named = {name: c for name, c in choices_of(ours).items() if c.alphas is not None}
    rows = {label: row for label, row in _alpha_rows(supernet, supernet.fan_in).items() if label in named}
    assert set(rows) == set(named)  # every alpha of ours has its row in the supernet's tables
    with torch.no_grad():
        for a in supernet.arch_parameters():
            a.normal_()  # away from uniform, so that every op's share matters
        for p, q in zip(supernet.weights(), weights(ours), strict=True):
            q.copy_(p)
        for label, (table, row) in rows.items():
            named[label].alphas.copy_(supernet.alphas[table][row])
    return supernet, ours, rows


def _x(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 3, 12, 12, generator=g, dtype=torch.float64), torch.randint(0, 5, (6,), generator=g)


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def _compare(supernet, ours, rows, x, y):
    loss = nn.functional.cross_entropy(supernet(x), y)
    # (unused: the candidates a sampling relaxation did not draw)
    grads = torch.autograd.grad(
        loss, supernet.weights() + supernet.arch_parameters(), allow_unused=True, materialize_grads=True
    )
    our_loss = nn.functional.cross_entropy(ours(x), y)
    alphas = arch_parameters(ours)
    our_grads = torch.autograd.grad(our_loss, weights(ours) + alphas, allow_unused=True, materialize_grads=True)
    torch.testing.assert_close(our_loss, loss, rtol=1e-12, atol=0)
    n = len(supernet.weights())
    assert _rel(torch.cat([g.flatten() for g in our_grads[:n]]), torch.cat([g.flatten() for g in grads[:n]])) < 1e-10
    # Each label's gradient, summed over the cells sharing it, is its row of the supernet's table's gradient.
    tables = dict(zip(supernet.alphas.keys(), grads[n:]))
    names = [name for name, c in choices_of(ours).items() if c.alphas is not None]
    ours_by_label = dict(zip(names, our_grads[n:]))
    expected = torch.cat([tables[t][r].flatten() for t, r in (rows[k] for k in names)])
    got = torch.cat([ours_by_label[k].flatten() for k in names])
    assert _rel(got, expected) < 1e-10
    return our_loss


@pytest.mark.parametrize(
    "space, relaxation",
    [("darts", "exact"), ("darts", "lean"), ("nb201", "exact"), ("nb201", "lean"), ("nb201", "partial")],
)
def test_the_cells_written_with_choices_compute_the_supernets(space, relaxation):
    supernet, ours, rows = _pair(space, relaxation)
    _compare(supernet, ours, rows, *_x())
    # Batch-norm statistics moved once, to the same values (the supernet keeps a state's pools once for all its
    # edges, the choices one per edge: compare as sets).
    stats = [[b for n, b in net.named_buffers() if n.endswith("running_mean")] for net in (supernet, ours)]
    for b in stats[1]:
        assert any(b.shape == c.shape and torch.allclose(b, c, rtol=1e-12, atol=1e-14) for c in stats[0])


@pytest.mark.parametrize("space", ["darts", "nb201"])
def test_a_drawn_architecture_computes_the_supernets_draw(space):
    """sample (GDAS): the same Gumbel noise drawn into both, so the same ops run; loss and the straight-through
    gradients agree."""
    supernet, ours, rows = _pair(space, "sample")
    g = torch.Generator().manual_seed(3)
    noise = {kind: supernet.relaxation.noise(supernet.alphas[kind], g) for kind in supernet.kinds}
    choices = choices_of(ours)
    with supernet.same_draw(), same_draw(ours):
        supernet.held_noise.update(noise)
        for label, (table, row) in rows.items():
            choices[label]._box.noise = noise[table][row]
        _compare(supernet, ours, rows, *_x())


@pytest.mark.parametrize("unrolled", [pytest.param(False, id="first"), pytest.param(True, id="second")])
def test_the_architecture_step_sees_the_cell_written_with_choices_as_the_supernet(unrolled):
    """core/architect.py's step, on the choices' model through SearchView, against the same step on the
    supernet: the same alpha gradients, first order and through the virtual step (Eq. 7-8)."""
    supernet, ours, rows = _pair("darts", "exact")
    view = SearchView(ours)
    assert [id(p) for p in view.weights()] == [id(p) for p in ours.parameters()]
    assert {id(a) for a in view.arch_parameters()} == {id(a) for a in arch_parameters(ours)}
    (x, y), (x_val, y_val) = _x(1), _x(2)
    grads = []
    for net in (supernet, view):
        optimizer = torch.optim.SGD(net.weights(), 0.025, momentum=0.9, weight_decay=3e-4)
        nn.functional.cross_entropy(net(x), y).backward()  # one weight step: the momentum exists
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        architect = Architect(net, nn.CrossEntropyLoss(), unrolled=unrolled)
        grads.append(architect.grads(x, y, x_val, y_val, optimizer)[0])
    tables = dict(zip(supernet.alphas.keys(), grads[0]))
    names = list(alphas(ours))
    expected = torch.cat([tables[t][r].flatten() for t, r in (rows[k] for k in names)])
    got = torch.cat([g.flatten() for g in grads[1]])
    assert _rel(got, expected) < 1e-10
