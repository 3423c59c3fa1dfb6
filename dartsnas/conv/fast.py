"""The speed tricks of the fast supernet, each explained once. None changes what is computed: each is
tested equal to the plain network (conv/plain.py) in value, gradients and batch-norm statistics.

- Shared ReLU (`strip_leading_relu`): every conv candidate starts with a ReLU of its input. The cell
  applies it once per state and hands the result to every conv op of every outgoing edge, instead of
  each op computing (and keeping for backward) its own copy.
- Shared parameter-free candidates (`SharedOps`): pools and their batch norm are the same function of
  the same input on every outgoing edge of a state, so they are computed once per state.
- Mixing weight folded into batch norm (`scaled`): an op that ends in an affine-free batch norm takes
  its mixing weight as that norm's weight, w * BN(z) = BN(z; weight = w), so the product costs no pass
  over the output in forward or backward.
- Dense gradients for the cell output (`concat`): the parts of a concatenation's gradient are strided
  channel slices, which batch norm's CPU backward reads far more slowly than a dense copy.
- Convolution formulations (kernels.py) and the lean mode's recomputation (lean.py) have files of
  their own. Measured effects are in docs/benchmarks.md.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.device import memory_format
from .ops import FactorizedReduce, candidate


def strip_leading_relu(op: nn.Module) -> tuple[nn.Module, bool]:
    """`op` with the ReLU it starts with replaced by identity, and whether it had one.

    Supernets apply that ReLU once per state and hand its result to every op that starts with one,
    instead of each op computing (and keeping for backward) its own copy. The first leaf module in
    registration order is the first one applied, for every op in OPS. Parameter names do not change.
    """
    parent, name = None, None
    module = op
    while True:
        children = list(module.named_children())
        if not children:
            break
        parent, (name, module) = module, children[0]
    if not isinstance(module, nn.ReLU):
        return op, False
    if parent is None:  # the op is a bare ReLU
        return nn.Identity(), True
    setattr(parent, name, nn.Identity())
    return op, True


def scaled(op: nn.Module, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """scale * op(x), for a 0-dim `scale` (a mixing weight).

    An op that ends in an affine-free batch norm takes `scale` as that norm's weight:
    scale * BN(z) = BN(z; weight = scale). The product then costs no pass over the output, and its
    backward none either: the norm's own backward scales the input gradient and yields the gradient of
    `scale` (per channel, summed by the expand). Other ops are multiplied.
    """
    z, bn = _until_final_bn(op, x)
    if bn is None:
        return scale * z
    if bn.training:
        bn.num_batches_tracked.add_(1)  # as nn.BatchNorm2d.forward (momentum is set, so it is only a count)
    # A dense weight vector: with a stride-0 (expanded) one, the CPU channels-last kernels take a
    # path several times slower.
    weight = scale.expand(bn.num_features).contiguous()
    return nn.functional.batch_norm(z, bn.running_mean, bn.running_var, weight, None, bn.training, bn.momentum, bn.eps)


def _until_final_bn(op: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, nn.BatchNorm2d | None]:
    """(the input of the affine-free BN that `op` ends with, that BN), or (op(x), None)."""
    if (
        isinstance(op, nn.BatchNorm2d)
        and op.weight is None
        and op.bias is None
        and op.track_running_stats
        and op.momentum is not None
    ):
        return x, op
    if isinstance(op, FactorizedReduce):
        return _until_final_bn(op.bn, op.features(x))
    if isinstance(op, nn.Sequential) and len(op):
        *head, last = op
        for m in head:
            x = m(x)
        return _until_final_bn(last, x)
    return op(x), None


def is_parameter_free(name: str, build=candidate) -> bool:
    """Is candidate `name` (as `build(name, c, stride)` makes it) a function of its input alone (no
    weights; BN statistics of its own input)?

    Such an op gives the same output on every outgoing edge of a state: the cell computes it once
    (SharedOps). A stride-1 skip is the input itself, nothing to share.
    """
    if name in ("none", "skip_connect"):
        return False
    with torch.device("meta"):  # built only to look: no memory, no draw from the random generator
        return not any(True for _ in build(name, 4, 1).parameters())


class SharedOps(nn.Module):
    """The parameter-free candidates (pools and their BN) of one state, computed once per forward for
    all its outgoing edges: they are the same function of the same input on each of them, so the
    outputs, gradients and BN running statistics are those of the paper's one-op-per-edge network,
    at a fraction of the work (a state has up to `nodes` outgoing edges)."""

    def __init__(self, names: list[str], c: int, stride: int, build=candidate):
        super().__init__()
        self.ops = nn.ModuleDict({name: build(name, c, stride) for name in names})

    def outputs(self) -> SharedOutputs:
        """A holder for one forward's outputs."""
        return SharedOutputs(self)


class SharedOutputs:
    """One forward's outputs of a state's SharedOps, computed on first use from the input the first
    edge hands over (its state, or in partial mode the state's channel slice: every edge of a state
    takes the same one)."""

    def __init__(self, shared: SharedOps):
        self.shared, self.cache = shared, {}

    def get(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name not in self.cache:
            self.cache[name] = self.shared.ops[name](x)
        return self.cache[name]


class _Concat(torch.autograd.Function):
    """torch.cat over channels whose backward hands each part a dense gradient.

    The parts of the output gradient are channel slices, strided views that every op on the node's
    backward path would read: batch norm's CPU backward runs several times slower on such a view than
    on a dense copy, which costs one pass.
    """

    @staticmethod
    def forward(ctx, *parts):
        ctx.sizes = [p.shape[1] for p in parts]
        ctx.format = memory_format(parts[0])
        return torch.cat(parts, dim=1)

    @staticmethod
    def backward(ctx, grad):
        return tuple(g.contiguous(memory_format=ctx.format) for g in grad.split(ctx.sizes, dim=1))


def concat(parts: list[torch.Tensor]) -> torch.Tensor:
    """torch.cat over channels, each part getting a dense gradient in backward (eager only: torch.compile lays
    out gradients itself, and traces this Function's variable arguments as its first one alone)."""
    if torch.compiler.is_compiling():
        return torch.cat(parts, dim=1)
    return _Concat.apply(*parts)
