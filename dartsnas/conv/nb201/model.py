"""The networks of the NAS-Bench-201 space (Dong & Yang, ICLR 2020): the search supernet and the network a
cell is trained in, as the benchmark's authors build them (xautodl: cell_operations.py, search_cells.py,
search_model_darts.py, cell_infers/tiny_network.py; read, not copied).

The cell: one input node 0 and nodes 1..3, node i the sum over j < i of edge i<-j's op; the output is node 3.
The network: a 3x3 conv stem with batch norm (C channels), three stages of N cells at C, 2C and 4C channels
joined by residual reductions (ResNet basic blocks of stride 2), then batch norm, ReLU, global average
pooling and a linear classifier. C = 16, N = 5 in the benchmark.

Search follows the authors' search code: the cell's ops have affine-free batch norm with running
statistics (their `--track_running_stats 1`, the setting of their documented runs); the stem, the reductions
and the last batch norm are affine. One deliberate difference: their search convs carry a bias (`bias = not
affine`); ours do not, since a batch norm right after a conv cancels a bias exactly in training mode (its
gradient is zero), so the supernet has 6,720 fewer weights at C=16, N=5 (1,686,106 against 1,692,826) and
computes the same function. The trained network is theirs exactly (affine batch norm, no bias), and its
parameter counts equal their code's (tests pin them).
"""

from __future__ import annotations

import torch
from torch import nn

from ...methods.derivations import strongest_ops
from ..fast import SharedOps, is_parameter_free
from ..ops import ReLUConvBN, Zero
from ...methods.relaxations import make
from ...methods.relaxations.base import Relaxation
from ..supernet import MixedOp, SearchNetwork
from .genotype import EDGES, NODES, OPS, CellGenotype

FAN_IN = [i for i in range(1, NODES + 1)]  # node i has inputs 0..i-1


def candidate(name: str, c: int, stride: int = 1, affine: bool = False) -> nn.Module:
    """One op of the space; affine-free batch norm during search, affine in the trained network. Inside a
    cell, channels and resolution never change (stride 1)."""
    ops = {
        "none": lambda: Zero(stride),
        "skip_connect": lambda: nn.Identity(),
        "nor_conv_1x1": lambda: ReLUConvBN(c, c, 1, stride, 0, affine),
        "nor_conv_3x3": lambda: ReLUConvBN(c, c, 3, stride, 1, affine),
        "avg_pool_3x3": lambda: nn.AvgPool2d(3, stride, 1, count_include_pad=False),
    }
    if name not in ops:
        raise ValueError(f"{name!r} is not an op of the NAS-Bench-201 space; its ops: {', '.join(OPS)}")
    if name == "skip_connect" and stride != 1:
        raise ValueError("NAS-Bench-201 cells keep the resolution: skip_connect has stride 1 only")
    return ops[name]()


class ResidualReduction(nn.Module):
    """The reduction between stages: a ResNet basic block of stride 2, ReLU-conv-BN twice plus a shortcut
    of 2x2 average pooling and a 1x1 conv; no activation after the sum (the authors' ResNetBasicblock)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x):
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def stages(init_channels: int, cells_per_stage: int):
    """The layout as (channels, is a reduction) per layer: N cells at C, a reduction, N at 2C, one, N at 4C."""
    for stage in range(3):
        if stage:
            yield init_channels * 2**stage, True
        yield from ((init_channels * 2**stage, False) for _ in range(cells_per_stage))


class SearchCell(nn.Module):
    """Node i = sum over j < i of mixed op i<-j on state j; the output is the last node. Computed by the fast
    supernet's mixed ops and tricks (conv/supernet.py, conv/fast.py): a shared ReLU per state, its
    parameter-free candidates (the pool) computed once per state, `none` never computed."""

    def __init__(self, c: int, ops: list[str], relaxation: Relaxation | None = None):
        super().__init__()  # (DARTS-'s auxiliary skip needs no module here: every edge has stride 1)
        relaxation = relaxation or make("exact")
        shared = tuple(n for n in ops if is_parameter_free(n, candidate)) if relaxation.shares_free_ops else ()
        parts = relaxation.parts()
        self.shared = (
            nn.ModuleList(SharedOps(shared, c // parts, 1, candidate) for _ in range(NODES)) if shared else None
        )
        self.edges = nn.ModuleList(MixedOp(c, 1, ops, relaxation, shared, candidate) for i in FAN_IN for _ in range(i))
        self.needs_relu = any(e.needs_relu for e in self.edges)

    def forward(self, x, mix, edge_probs=None, choices=None, aux=0.0):
        """`aux`: DARTS-'s coefficient of the auxiliary skip added to every edge (all have stride 1)."""
        states = [x]
        relus = [nn.functional.relu(x) if self.needs_relu else None]
        shared = [None if self.shared is None else self.shared[0].outputs()]
        e = 0
        for i in FAN_IN:
            node = None
            for j in range(i):
                y = self.edges[e](states[j], mix[e], relus[j], None if choices is None else choices[e], shared[j])
                y = y if edge_probs is None else edge_probs[e] * y
                if aux:
                    y = y.add_(states[j], alpha=aux)
                node = y if node is None else node.add_(y)  # y is a fresh tensor of this cell's
                e += 1
            states.append(node)
            if i < NODES:  # the last node feeds no edge
                relus.append(nn.functional.relu(node) if self.needs_relu else None)
                shared.append(None if self.shared is None else self.shared[i].outputs())
        return states[-1]


class Supernet201(SearchNetwork):
    """The NAS-Bench-201 search network: one alpha matrix (6 edges x ops) shared by all cells."""

    kinds = ("cell",)
    fan_in = FAN_IN
    kept_per_node = None  # every edge is kept; `none` is a choice

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        init_channels: int = 16,
        stage_cells: int = 5,
        ops: list[str] | None = None,
        mixed_op: str = "exact",
        partial_k: int = 4,
        sample_grad: str = "straight_through",
    ):
        super().__init__()
        relaxation = make(mixed_op, partial_k=partial_k, sample_grad=sample_grad)
        self.init_search(ops or OPS, relaxation)
        c = init_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers, c_prev = [], c
        for c_curr, reduction in stages(c, stage_cells):
            layers.append(ResidualReduction(c_prev, c_curr) if reduction else SearchCell(c_curr, self.ops, relaxation))
            c_prev = c_curr
        self.layers = nn.ModuleList(layers)
        self.last = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU())
        self.classifier = nn.Linear(c_prev, num_classes)
        self.init_alphas()

    @classmethod
    def from_config(cls, config, in_channels: int, num_classes: int) -> Supernet201:
        return cls(
            in_channels,
            num_classes,
            config.init_channels,
            config.stage_cells,
            config.ops,
            mixed_op=config.mixed_op,
            partial_k=config.partial_k,
            sample_grad=config.sample_grad,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mix, edge_probs, choices = self.mixes()
        x = self.stem(x)
        for layer in self.layers:
            x = (
                layer(x, mix["cell"], edge_probs["cell"], choices["cell"], self.aux_skip)
                if isinstance(layer, SearchCell)
                else layer(x)
            )
        # A plain mean, not adaptive pooling: its CUDA backward has no deterministic kernel.
        return self.classifier(self.last(x).mean(dim=(2, 3)))

    def edge_names(self) -> list[str]:
        return list(EDGES)

    def derive(self, rule: str = "nas-bench-201", skip_cap: int | None = None) -> CellGenotype:
        """The benchmark authors' derivation: each edge's most probable op, `none` included; `skip_cap`: at
        most that many skip connections (P-DARTS)."""
        if rule != "nas-bench-201":
            raise ValueError(f"the NAS-Bench-201 space derives by its own rule ('nas-bench-201'), not {rule!r}")
        return CellGenotype(tuple(strongest_ops(self.probs()["cell"], self.ops, skip_cap)))


class Cell(nn.Module):
    """A cell of a genotype, as the benchmark trained it: affine batch norm; `none` edges contribute zero."""

    def __init__(self, genotype: CellGenotype, c: int):
        super().__init__()
        self.ops = nn.ModuleList(candidate(op, c, 1, affine=True) for op in genotype.edges)

    def forward(self, x):
        states, e = [x], 0
        for i in FAN_IN:
            states.append(sum(self.ops[e + j](states[j]) for j in range(i)))
            e += i
        return states[-1]


class Network201(nn.Module):
    """The benchmark's network for one cell (its TinyNetwork): `layers` = 3N cells, C = `init_channels`.

    The benchmark trains it without an auxiliary head and without drop path; both are refused here, so a
    config cannot ask for them silently.
    """

    def __init__(
        self,
        genotype: CellGenotype,
        num_classes: int = 10,
        in_channels: int = 3,
        init_channels: int = 16,
        layers: int = 15,
        auxiliary: bool = False,
    ):
        super().__init__()
        if not isinstance(genotype, CellGenotype):
            raise ValueError(f"the nas-bench-201 network takes a NAS-Bench-201 cell ({EDGES[0]}, ...), got {genotype}")
        if layers < 3 or layers % 3:
            raise ValueError(f"layers must be a multiple of 3 (three stages of N cells), got {layers}")
        if auxiliary:
            raise ValueError("the nas-bench-201 network has no auxiliary head; set auxiliary: false")
        c = self.init_channels = init_channels
        self.num_classes = num_classes
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        cells, reductions, order, c_prev = [], [], [], c
        for c_curr, reduction in stages(c, layers // 3):
            (reductions if reduction else cells).append(
                ResidualReduction(c_prev, c_curr) if reduction else Cell(genotype, c_curr)
            )
            order.append(reduction)
            c_prev = c_curr
        self.cells, self.reductions, self.order = nn.ModuleList(cells), nn.ModuleList(reductions), order
        self.last = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU())
        self.classifier = nn.Linear(c_prev, num_classes)

    def set_drop_path_prob(self, p: float) -> None:
        if p:
            raise ValueError("the nas-bench-201 network is trained without drop path; set drop_path_prob: 0")

    def forward(self, x):
        x = self.stem(x)
        cells, reductions = iter(self.cells), iter(self.reductions)
        for reduction in self.order:
            x = next(reductions)(x) if reduction else next(cells)(x)
        return self.classifier(self.last(x).mean(dim=(2, 3)))
