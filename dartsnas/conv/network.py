"""Evaluation networks built from a genotype: the paper's CIFAR and ImageNet (mobile) layouts (Sec. 3.3, A.2),
and NAS-Bench-201's network for a cell of its space (`nas-bench-201`, nb201/model.py's Network201).

A cell applies the genotype's ops (from `OPS`, with learnable BN) to its two inputs and sums the two
ops of each node; the cell output concatenates the nodes of `*_concat`. Reductions sit at 1/3 and 2/3
of the depth, where the channels double. The auxiliary head (Szegedy et al. 2016; weight 0.4 in the
paper) reads the output of the second reduction cell and is computed in training mode only.

    net = NetworkCIFAR(PUBLISHED["DARTS_V2"])           # 20 cells, C=36, 10 classes, 32x32x3
    net.set_drop_path_prob(0.2 * epoch / epochs)         # the trainer's linear ramp
    logits, logits_aux = net.train()(x)                  # training, with the auxiliary head
    logits = net.eval()(x)                               # evaluation: logits only

Input channels, resolution and class count are free: the classifier averages globally, and the auxiliary
head pools to 2x2 before its 2x2 convolution (identical to the official head at the official sizes,
8x8 for CIFAR and 7x7 for ImageNet; see AuxiliaryHead). The one limit: the second reduction cell needs
maps of at least 2x2, so inputs must be at least `NETWORKS[net].min_size` pixels on a side (3 for the
CIFAR layout, 17 for the ImageNet one, whose stem divides the side by 8; NAS-Bench-201's takes sides
that are multiples of 4, `NETWORKS[net].side_multiple`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..core.genotype import Genotype
from .nb201.model import Network201
from .ops import OPS, FactorizedReduce, ReLUConvBN


def drop_path(x: torch.Tensor, drop_prob: torch.Tensor) -> torch.Tensor:
    """Zero whole samples with probability drop_prob and scale the kept ones by 1/keep (as the official code).

    The mask is drawn from the global RNG of x's device, so a seeded run repeats and a checkpoint that keeps
    that RNG's state resumes exactly. drop_prob is a 0-d tensor so that changing it every epoch does not make
    torch.compile recompile; at 0 the mask is all ones and the scale 1, so x comes back unchanged.
    """
    keep = 1.0 - drop_prob
    mask = torch.rand((x.shape[0], 1, 1, 1), device=x.device) < keep
    return x * (mask / keep).to(x.dtype)


class Cell(nn.Module):
    """The official evaluation cell: two inputs brought to C channels, then node i = op_a(h_a) + op_b(h_b)."""

    def __init__(self, genotype: Genotype, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        # The cell two back has twice the resolution after a reduction: factorized reduction halves it.
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0)
        kind = "reduce" if reduction else "normal"
        edges = getattr(genotype, kind)
        self.concat = list(getattr(genotype, f"{kind}_concat"))
        self.inputs = [j for _, j in edges]
        self.ops = nn.ModuleList(OPS[op](c, 2 if reduction and j < 2 else 1, True) for op, j in edges)
        # Drop path skips identities (the official rule): dropping them would drop the cell's shortcut.
        self.droppable = [not isinstance(op, nn.Identity) for op in self.ops]
        self.multiplier = len(self.concat)

    def forward(self, s0, s1, drop_prob: torch.Tensor):
        states = [self.pre0(s0), self.pre1(s1)]
        for i in range(len(self.ops) // 2):
            node = None
            for k in (2 * i, 2 * i + 1):
                h = self.ops[k](states[self.inputs[k]])
                if self.training and self.droppable[k]:
                    h = drop_path(h, drop_prob)
                node = h if node is None else node + h
            states.append(node)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """ReLU, 5x5 average pool, 1x1 conv 128, BN, ReLU, 2x2 conv 768, [BN], ReLU, linear (official layout).

    The official head assumes 8x8 inputs (CIFAR, pool stride 3) or 7x7 (ImageNet, stride 2), both pooled
    to 2x2 before the 2x2 conv. Here the 5x5 pool runs wherever it still leaves at least 2x2, and the result
    (or, for smaller maps, the input itself) is then average-pooled to exactly 2x2: identical at the official
    sizes, and the head works at any resolution. The official ImageNet head has no BN after the 768-channel
    conv (a typo kept for the paper's results, per the official code), so `last_bn=False` there.
    """

    def __init__(self, c: int, num_classes: int, pool_stride: int, last_bn: bool = True):
        super().__init__()
        self.pool_stride = pool_stride
        self.features = nn.Sequential(
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),
            *([nn.BatchNorm2d(768)] if last_bn else []),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        x = F.relu(x)
        if min(x.shape[-2:]) >= 5 + self.pool_stride:
            x = F.avg_pool2d(x, 5, self.pool_stride, count_include_pad=False)
        return self.classifier(self.features(pool_2x2(x)).flatten(1))


def pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """F.adaptive_avg_pool2d(x, 2) (the same windows) written as means of slices: its CUDA backward is
    deterministic, adaptive pooling's is not (torch.use_deterministic_algorithms refuses it)."""
    h, w = x.shape[-2:]
    if (h, w) == (2, 2):
        return x
    rows, cols = ((0, -(-h // 2)), (h // 2, h)), ((0, -(-w // 2)), (w // 2, w))
    return torch.stack(
        [torch.stack([x[..., r0:r1, c0:c1].mean((-2, -1)) for c0, c1 in cols], -1) for r0, r1 in rows], -2
    )


class _Network(nn.Module):
    """Cells from a genotype between a stem and a classifier; subclasses build the stem."""

    aux_pool_stride = 3
    aux_last_bn = True

    def _build(self, genotype, num_classes, c, layers, auxiliary, c_pp, c_p, reduction_prev):
        if layers < 3:
            raise ValueError(f"layers must be at least 3 (two of them are reduction cells), got {layers}")
        if num_classes < 1:
            raise ValueError(f"the class count must be at least 1, got {num_classes}")
        if c < 2 or c % 2:
            raise ValueError(f"init_channels must be even (factorized reduction halves it), got {c}")
        # A 0-d buffer (not saved: the trainer sets it every epoch) so that torch.compile sees a tensor.
        self.register_buffer("drop_path_prob", torch.zeros(()), persistent=False)
        self.init_channels, self.num_classes = c, num_classes
        self.aux_index = 2 * layers // 3  # the second reduction cell
        self.cells = nn.ModuleList()
        c_curr = c
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            cell = Cell(genotype, c_pp, c_p, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
            if i == self.aux_index:
                c_aux = c_p
        # Named "auxiliary..." so that counting parameters the official way leaves it out.
        self.auxiliary_head = (
            AuxiliaryHead(c_aux, num_classes, self.aux_pool_stride, self.aux_last_bn) if auxiliary else None
        )
        self.classifier = nn.Linear(c_p, num_classes)

    def set_drop_path_prob(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must lie in [0, 1), got {p}")
        self.drop_path_prob.fill_(p)

    def forward(self, x):
        """Logits; in training mode with an auxiliary head, (logits, auxiliary logits)."""
        s0, s1 = self.stem(x)
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                logits_aux = self.auxiliary_head(s1)
        # Global average pooling as a mean: deterministic on CUDA, unlike adaptive pooling's backward.
        logits = self.classifier(s1.mean((2, 3)))
        return (logits, logits_aux) if logits_aux is not None else logits


class NetworkCIFAR(_Network):
    """The paper's CIFAR-10 network: a 3x3 conv stem of stem_multiplier*C channels, 20 cells, C=36."""

    def __init__(
        self,
        genotype: Genotype,
        num_classes: int = 10,
        in_channels: int = 3,
        init_channels: int = 36,
        layers: int = 20,
        auxiliary: bool = True,
        stem_multiplier: int = 3,
    ):
        super().__init__()
        c_stem = stem_multiplier * init_channels
        self.stem0 = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        self._build(genotype, num_classes, init_channels, layers, auxiliary, c_stem, c_stem, False)

    def stem(self, x):
        s = self.stem0(x)
        return s, s


class NetworkImageNet(_Network):
    """The paper's ImageNet mobile network: three stride-2 3x3 convs (224 -> 28), 14 cells, C=48."""

    aux_pool_stride = 2
    aux_last_bn = False

    def __init__(
        self,
        genotype: Genotype,
        num_classes: int = 1000,
        in_channels: int = 3,
        init_channels: int = 48,
        layers: int = 14,
        auxiliary: bool = True,
    ):
        super().__init__()
        c = init_channels
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, c // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c // 2),
            nn.ReLU(),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c),
        )
        self.stem1 = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c))
        # stem0's output has twice stem1's resolution, so the first cell reduces its first input.
        self._build(genotype, num_classes, c, layers, auxiliary, c, c, True)

    def stem(self, x):
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


class Layout(NamedTuple):
    cls: type
    input_shape: tuple[int, int, int]  # the paper's input, C x H x W
    num_classes: int  # the paper's class count
    min_size: int  # smallest input side: the second reduction needs at least 2x2 maps
    side_multiple: int = 1  # input sides must be multiples of this


NETWORKS = {
    "cifar10": Layout(NetworkCIFAR, (3, 32, 32), 10, 3),
    "imagenet": Layout(NetworkImageNet, (3, 224, 224), 1000, 17),  # the stem divides the side by 8
    # NAS-Bench-201's network of one of its cells (C=16, 3 x 5 cells; the genotype is a nb201 CellGenotype).
    # Each of its two reductions adds a 2x2-pooled shortcut to a stride-2 conv: the two agree in size only
    # on even sides (on odd ones they clash, or a 1x1 shortcut broadcasts silently over 2x2 maps), so the
    # input side is a multiple of 4 (32 -> 16 -> 8), at least 4.
    "nas-bench-201": Layout(Network201, (3, 32, 32), 10, 4, 4),
}


def build_network(net: str, genotype, **options) -> nn.Module:
    """A network by layout name; options are the class's keyword arguments (num_classes, init_channels, ...).
    The genotype is a DARTS Genotype for the cifar10 and imagenet layouts, a NAS-Bench-201 CellGenotype for
    nas-bench-201."""
    return _layout(net).cls(genotype, **options)


def _layout(net: str) -> Layout:
    if net not in NETWORKS:
        raise ValueError(f"unknown network {net!r}; available: {', '.join(NETWORKS)}")
    return NETWORKS[net]


def drop_path_ramp(max_prob: float, epoch: int, epochs: int) -> float:
    """The drop-path probability for 0-based `epoch`: linear from 0 (first epoch) towards max_prob (official
    train.py: drop_path_prob * epoch / epochs, so the last epoch trains at max_prob * (epochs - 1) / epochs)."""
    return max_prob * epoch / epochs


def count_parameters(model: nn.Module) -> int:
    """Parameters as the paper and the official code count them: the auxiliary head left out."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one eval-mode forward pass of one C x H x W input, as FlopCounterMode measures them.

    FlopCounterMode counts the FLOPs of convolutions and matrix products (2 per multiply-add); batch norm,
    ReLU, pooling and the additions that join a node's two ops are not counted. Multiply-adds = FLOPs / 2.
    The paper quotes 574M multiply-adds for its ImageNet network without saying what it counted; this
    counter measures 530M for DARTS_V2 there. Reported as measured, never adjusted.
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()  # no auxiliary head, no drop path: the network as it is deployed
    try:
        device = next(model.parameters()).device
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.empty(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def network_info(
    net: str,
    genotype,
    num_classes: int | None = None,
    in_channels: int | None = None,
    size: int | None = None,
    **options,
) -> dict:
    """Size and cost of a network: parameters (auxiliary head apart) and multiply-adds at its input size.

    Built on the meta device (shapes without memory or arithmetic): counting the ImageNet network takes
    well under a second. Unset options take the paper's values (its input shape and class count).
    """
    layout = _layout(net)
    c, h, w = layout.input_shape
    shape = (c if in_channels is None else in_channels, h if size is None else size, w if size is None else size)
    num_classes = layout.num_classes if num_classes is None else num_classes
    if min(shape[1:]) < layout.min_size:
        raise ValueError(f"the {net} layout needs inputs of at least {layout.min_size}x{layout.min_size}, got {size}")
    if any(side % layout.side_multiple for side in shape[1:]):
        raise ValueError(f"the {net} layout needs input sides that are multiples of {layout.side_multiple}, got {size}")
    with torch.device("meta"):
        model = layout.cls(genotype, num_classes=num_classes, in_channels=shape[0], **options)
    total = sum(p.numel() for p in model.parameters())
    params = count_parameters(model)
    return {
        "net": net,
        "genotype": str(genotype),
        "layers": len(model.cells),
        "init_channels": model.init_channels,
        "num_classes": num_classes,
        "input_shape": list(shape),
        "parameters": params,
        "auxiliary_parameters": total - params,
        "macs": count_macs(model, shape),
    }
