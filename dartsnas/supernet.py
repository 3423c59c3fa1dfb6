"""The search supernet: every edge of the cell is a mixed op, a weighted sum over all candidates.

The architecture logits `alphas` (one row per edge, one column per candidate op, separately for the
normal and the reduction cell) are registered parameters, so checkpoints and optimisers see them.
How logits become the mixing weights is the *relaxation* (the paper's softmax, Eq. 2), passed in as
one piece so that other relaxations (annealed, sampled) can replace it without touching the cell.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call

from .genotype import edge_names
from .ops import OPS, FactorizedReduce, ReLUConvBN
from .spaces import DARTS_OPS

Relaxation = Callable[[torch.Tensor], torch.Tensor]
MIXED_OPS = ("exact", "lean")  # how a mixed op is computed; see MixedOp


def softmax(alphas: torch.Tensor) -> torch.Tensor:
    """The paper's continuous relaxation (Eq. 2): a softmax over the candidates of each edge."""
    return alphas.softmax(dim=-1)


class MixedOp(nn.Module):
    """sum_o w_o * o(x) over the candidates of one edge (Eq. 2).

    `lean=True` computes the same sum and the same gradients, but keeps no op's activations for the
    backward pass: each op is recomputed there, one at a time (see `_LeanMix`), so memory does not
    grow with the number of candidates.
    """

    def __init__(self, c: int, stride: int, ops: list[str], lean: bool = False):
        super().__init__()
        self.lean = lean
        # `none` contributes w * 0: it is never computed, yet its weight still takes a share of the
        # softmax, so gradients and derivation are exactly the paper's.
        self.index = [k for k, name in enumerate(ops) if name != "none"]
        self.ops = nn.ModuleList()
        for k in self.index:
            op = OPS[ops[k]](c, stride, False)
            if "pool" in ops[k]:  # as the official search: BN after pooling so its scale matches the convs
                op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
            self.ops.append(op)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.lean and torch.is_grad_enabled():
            # The parameters as they are now (functional_call may have swapped in others).
            params = [p for op in self.ops for p in op.parameters()]
            return _LeanMix.apply(x, weights, self, *params)
        return self.weighted_sum(x, weights)

    def weighted_sum(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = None
        for k, op in zip(self.index, self.ops):
            y = weights[k] * op(x)
            out = y if out is None else out + y
        return out


class _LeanMix(torch.autograd.Function):
    """The mixed op's weighted sum with its backward recomputing one candidate at a time.

    Forward runs without a graph (batch-norm running statistics move here, once, as in exact mode);
    backward re-runs each op on the saved input with the saved parameters and copies of the BN
    buffers (so the statistics do not move twice), and takes
    d/dw_k = <grad_out, op_k(x)>,  d/dx and d/dparams by that op's own backward with grad_out * w_k.
    """

    @staticmethod
    def forward(ctx, x, weights, mixed, *params):
        ctx.mixed, ctx.training = mixed, mixed.training
        ctx.save_for_backward(x, weights, *params)
        with torch.no_grad():
            return mixed.weighted_sum(x, weights)

    @staticmethod
    def backward(ctx, grad_out):
        x, weights, *params = ctx.saved_tensors
        mixed = ctx.mixed
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        need_params = ctx.needs_input_grad[3:]
        grad_x = torch.zeros_like(x) if need_x else None
        grad_w = torch.zeros_like(weights) if need_w else None
        grad_params, start = [], 0
        was_training = mixed.training
        mixed.train(ctx.training)
        try:
            for k, op in zip(mixed.index, mixed.ops):
                names = [n for n, _ in op.named_parameters()]
                own = params[start:start + len(names)]
                wanted = need_params[start:start + len(names)]
                start += len(names)
                with torch.enable_grad():
                    x_k = x.detach().requires_grad_(need_x)
                    p_k = [p.detach().requires_grad_(w) for p, w in zip(own, wanted)]
                    state = {**dict(zip(names, p_k)), **{n: b.clone() for n, b in op.named_buffers()}}
                    y = functional_call(op, state, (x_k,))
                if need_w:
                    grad_w[k] = (grad_out * y.detach()).sum()
                inputs = ([x_k] if need_x else []) + [p for p, w in zip(p_k, wanted) if w]
                grads = list(torch.autograd.grad(y, inputs, grad_out * weights[k])) if inputs else []
                if need_x:
                    grad_x += grads.pop(0)
                grad_params.extend(grads.pop(0) if w else None for w in wanted)
        finally:
            mixed.train(was_training)
        return (grad_x, grad_w, None, *grad_params)


class SearchCell(nn.Module):
    def __init__(self, nodes, c_pp, c_p, c, reduction, reduction_prev, ops, lean=False):
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        # Inputs are brought to C channels (and to this cell's input resolution) first.
        self.pre0 = FactorizedReduce(c_pp, c, affine=False) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(
            MixedOp(c, 2 if reduction and j < 2 else 1, ops, lean)
            for i in range(nodes) for j in range(2 + i))

    def forward(self, s0, s1, weights):
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        for _ in range(self.nodes):
            node = sum(self.edges[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(node)
        return torch.cat(states[2:], dim=1)


class Supernet(nn.Module):
    """The DARTS search network (Sec. 3.1): a stem, `layers` cells, reductions at 1/3 and 2/3 of depth."""

    def __init__(self, in_channels: int, num_classes: int, init_channels: int = 16, layers: int = 8,
                 nodes: int = 4, ops: list[str] | None = None, stem_multiplier: int = 3,
                 relaxation: Relaxation = softmax, mixed_op: str = "exact"):
        super().__init__()
        self.ops = list(ops or DARTS_OPS)
        self.nodes = nodes
        self.relaxation = relaxation
        if mixed_op not in MIXED_OPS:
            raise ValueError(f"mixed_op must be one of {MIXED_OPS}, got {mixed_op!r}")
        c = init_channels
        c_curr = stem_multiplier * c
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, c
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            self.cells.append(SearchCell(nodes, c_pp, c_p, c_curr, reduction, reduction_prev, self.ops,
                                         lean=mixed_op == "lean"))
            reduction_prev = reduction
            c_pp, c_p = c_p, nodes * c_curr
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        num_edges = len(edge_names(nodes))
        # Paper (Sec. 2.2 / official code): alphas start near uniform, 1e-3 * N(0, 1).
        self.alphas = nn.ParameterDict({
            kind: nn.Parameter(1e-3 * torch.randn(num_edges, len(self.ops))) for kind in ("normal", "reduce")})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = {kind: self.relaxation(a) for kind, a in self.alphas.items()}
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights["reduce" if cell.reduction else "normal"])
        return self.classifier(self.pool(s1).flatten(1))

    def named_weights(self) -> Iterator[tuple[str, nn.Parameter]]:
        """The network's own parameters: everything but the alphas."""
        return ((n, p) for n, p in self.named_parameters() if not n.startswith("alphas."))

    def weights(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_weights()]

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.values())

    @torch.no_grad()
    def probs(self) -> dict[str, torch.Tensor]:
        """Current mixing probabilities per cell kind (edges x ops), detached."""
        return {kind: self.relaxation(a).detach() for kind, a in self.alphas.items()}
