"""DARTS written plainly: the cell, the mixed op, the search network and the search step, as the paper
states them and the official code computes them. Read this file first.

- A cell (`Cell`) is a DAG: two input states (the two previous cells' outputs, brought to C channels),
  then `nodes` intermediate states, each the sum over all earlier states j of edge (i, j)'s mixed op; the
  cell's output concatenates the intermediate states (Sec. 2.1).
- A mixed op (`MixedOp`) is the softmax-weighted sum of every candidate op, sum_o p_o * o(x) (Eq. 2), with
  p = softmax(alphas[edge]); `none` is a zero (Sec. 2.2).
- The search network (`Network`): a stem, `layers` cells with reductions at 1/3 and 2/3 of the depth, a
  classifier; one alpha matrix for all normal cells, one for all reduction cells (Sec. 3.1.1).
- The search step (`Step`): an Adam step on the alphas down the validation loss, first order or through one
  virtual SGD step w' = w - xi * grad_w L_train with the Hessian-vector product by finite differences
  (Eq. 6-8); then an SGD step on the weights down the training loss (Alg. 1).

The fast supernet (supernet.py) and the architecture step (core/architect.py) compute exactly this, faster
and in less memory; tests copy the same weights into both and compare outputs, every gradient and the
batch-norm statistics in float64. So this file is the ground truth, and it borrows nothing from the code it
checks. It is also the baseline `dartsnas bench search-step --mode reference` measures against. Parameters
are registered in supernet.Supernet's order (alphas last), so weights copy across by position.
"""

from __future__ import annotations

import copy
import re

import torch
from torch import nn

from .spaces import DARTS_OPS

_CONV = re.compile(r"(sep|dil)_conv_(\d+)x\2$")


def _relu_conv_bn(c_in, c_out, kernel, stride, padding) -> list[nn.Module]:
    return [nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False), nn.BatchNorm2d(c_out, affine=False)]


def _relu_sep_bn(c, kernel, stride, padding, dilation=1) -> list[nn.Module]:
    """ReLU, depthwise conv, pointwise conv, batch norm."""
    return [
        nn.ReLU(),
        nn.Conv2d(c, c, kernel, stride, padding, dilation, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False),
        nn.BatchNorm2d(c, affine=False),
    ]


class Zero(nn.Module):
    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Two stride-2 1x1 convs, the second on the input shifted by one pixel, concatenated."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=False)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def candidate(name: str, c: int, stride: int) -> nn.Module:
    """One affine-free candidate op, as the official search builds it (pools followed by a batch norm)."""
    conv = _CONV.match(name)
    if conv and conv[1] == "sep":
        k = int(conv[2])
        return nn.Sequential(*_relu_sep_bn(c, k, stride, k // 2), *_relu_sep_bn(c, k, 1, k // 2))
    if conv:
        k = int(conv[2])
        return nn.Sequential(*_relu_sep_bn(c, k, stride, k - 1, dilation=2))
    pool = {
        "max_pool_3x3": lambda: nn.MaxPool2d(3, stride, 1),
        "avg_pool_3x3": lambda: nn.AvgPool2d(3, stride, 1, count_include_pad=False),
    }
    if name in pool:
        return nn.Sequential(pool[name](), nn.BatchNorm2d(c, affine=False))
    plain = {
        "none": lambda: Zero(stride),
        "skip_connect": lambda: nn.Identity() if stride == 1 else FactorizedReduce(c, c),
        "conv_1x1": lambda: nn.Sequential(*_relu_conv_bn(c, c, 1, stride, 0)),
        "conv_3x3": lambda: nn.Sequential(*_relu_conv_bn(c, c, 3, stride, 1)),
        "conv_7x1_1x7": lambda: nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c, c, (1, 7), (1, stride), (0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), (stride, 1), (3, 0), bias=False),
            nn.BatchNorm2d(c, affine=False),
        ),
    }
    if name not in plain:
        raise ValueError(
            f"the reference network has no op {name!r}; it builds none, max_pool_3x3, avg_pool_3x3, "
            "skip_connect, sep_conv_KxK, dil_conv_KxK, conv_1x1, conv_3x3 and conv_7x1_1x7"
        )
    return plain[name]()


class MixedOp(nn.Module):
    def __init__(self, c: int, stride: int, ops: list[str]):
        super().__init__()
        self.ops = nn.ModuleList(candidate(name, c, stride) for name in ops)

    def forward(self, x, probs):
        return sum(p * op(x) for p, op in zip(probs, self.ops))


class Cell(nn.Module):
    def __init__(self, nodes, c_pp, c_p, c, reduction, reduction_prev, ops):
        super().__init__()
        self.reduction = reduction
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else nn.Sequential(*_relu_conv_bn(c_pp, c, 1, 1, 0))
        self.pre1 = nn.Sequential(*_relu_conv_bn(c_p, c, 1, 1, 0))
        self.nodes = nodes
        self.edges = nn.ModuleList(
            MixedOp(c, 2 if reduction and j < 2 else 1, ops) for i in range(nodes) for j in range(2 + i)
        )

    def forward(self, s0, s1, probs):
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        for _ in range(self.nodes):
            states.append(sum(self.edges[offset + j](h, probs[offset + j]) for j, h in enumerate(states)))
            offset += len(states) - 1
        return torch.cat(states[2:], dim=1)


class Network(nn.Module):
    """The search network of supernet.Supernet (same shapes, same parameter order), computed plainly.
    Its layout loop repeats Supernet's on purpose: the tests compare the two, so neither borrows from
    the other."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        init_channels: int = 16,
        layers: int = 8,
        nodes: int = 4,
        ops: list[str] | None = None,
        stem_multiplier: int = 3,
    ):
        super().__init__()
        ops = list(ops or DARTS_OPS)
        c_curr = stem_multiplier * init_channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, init_channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            c_curr *= 2 if reduction else 1
            self.cells.append(Cell(nodes, c_pp, c_p, c_curr, reduction, reduction_prev, ops))
            reduction_prev = reduction
            c_pp, c_p = c_p, nodes * c_curr
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        edges = nodes * (nodes + 3) // 2
        self.alphas = nn.ParameterDict(
            {k: nn.Parameter(1e-3 * torch.randn(edges, len(ops))) for k in ("normal", "reduce")}
        )

    def forward(self, x):
        probs = {k: a.softmax(dim=-1) for k, a in self.alphas.items()}
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, probs["reduce" if cell.reduction else "normal"])
        return self.classifier(self.pool(s1).flatten(1))

    def weights(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("alphas.")]


class Step:
    """One search step as the official train_search.py takes it: the architecture step (Adam on the
    alphas, first or second order), then the weight step (SGD with momentum, gradient clipping)."""

    def __init__(
        self,
        model: Network,
        lr=0.025,
        momentum=0.9,
        weight_decay=3e-4,
        arch_lr=3e-4,
        arch_weight_decay=1e-3,
        unrolled=False,
        grad_clip=5.0,
    ):
        self.model, self.unrolled, self.grad_clip = model, unrolled, grad_clip
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.SGD(model.weights(), lr, momentum=momentum, weight_decay=weight_decay)
        self.arch_optimizer = torch.optim.Adam(
            model.alphas.values(), arch_lr, betas=(0.5, 0.999), weight_decay=arch_weight_decay
        )

    def __call__(self, x_train, y_train, x_val, y_val):
        self.arch_optimizer.zero_grad()
        for a, g in zip(self.model.alphas.values(), self.arch_grads(x_train, y_train, x_val, y_val)):
            a.grad = g
        self.arch_optimizer.step()
        self.optimizer.zero_grad()
        self.criterion(self.model(x_train), y_train).backward()
        nn.utils.clip_grad_norm_(self.model.weights(), self.grad_clip)
        self.optimizer.step()

    def arch_grads(self, x_train, y_train, x_val, y_val) -> list[torch.Tensor]:
        model = self.model
        if not self.unrolled:
            model.zero_grad()
            self.criterion(model(x_val), y_val).backward()  # every parameter's gradient, as the official code
            return [a.grad.clone() for a in model.alphas.values()]
        group = self.optimizer.param_groups[0]
        lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
        weights = model.weights()
        grads = torch.autograd.grad(self.criterion(model(x_train), y_train), weights)
        unrolled = copy.deepcopy(model)
        with torch.no_grad():
            for w, g, u in zip(weights, grads, unrolled.weights()):
                buffer = self.optimizer.state.get(w, {}).get("momentum_buffer")
                moment = momentum * buffer if buffer is not None else torch.zeros_like(w)
                u.copy_(w - lr * (moment + g + decay * w))
        unrolled.zero_grad()
        self.criterion(unrolled(x_val), y_val).backward()
        v = [u.grad for u in unrolled.weights()]
        eps = 0.01 / torch.cat([t.flatten() for t in v]).norm()
        probes = []
        for step in (eps, -2 * eps):  # w + eps v, then w - eps v
            with torch.no_grad():
                for w, d in zip(weights, v):
                    w.add_(d, alpha=float(step))
            probes.append(torch.autograd.grad(self.criterion(model(x_train), y_train), list(model.alphas.values())))
        with torch.no_grad():
            for w, d in zip(weights, v):
                w.add_(d, alpha=float(eps))
        return [a.grad - lr * (gp - gn) / (2 * eps) for a, gp, gn in zip(unrolled.alphas.values(), *probes)]
