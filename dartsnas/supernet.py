"""The search supernet: every edge of the cell is a mixed op over all candidate ops.

The architecture logits `alphas` (one row per edge, one column per candidate op, separately for the
normal and the reduction cell) are registered parameters, so checkpoints and optimisers see them.
How logits become mixing weights is the *relaxation* (relax.py), one piece that the cell never looks
inside. How a mixed op is computed is its *mode*:

- `exact`: the paper's weighted sum over all candidates (Eq. 2), the reference;
- `lean`: the same sum and the same gradients, but every candidate is recomputed in the backward pass
  one at a time instead of keeping all their activations (`_LeanMix`): memory does not grow with the
  candidate set;
- `partial`: PC-DARTS (Xu et al., ICLR 2020): only 1/K of the channels go through the candidates, the
  rest bypass them, then channels are shuffled; each node weighs its incoming edges by a softmax over
  edge logits (edge normalisation), and these edge weights enter the derivation;
- `sample`: GDAS (Dong & Yang, CVPR 2019): one candidate per edge, sampled by the hard Gumbel
  relaxation; only that op is computed.

Every conv candidate of the DARTS space starts with a ReLU of its input. The cell applies that ReLU
once per state and hands it to all the conv ops of all the state's outgoing edges (`strip_leading_relu`).
Likewise, in the modes that compute every candidate, the parameter-free ones (pools and their batch
norm) are computed once per state for all its outgoing edges (`SharedOps`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from .architect import Searchable
from .genotype import edge_names
from .ops import OPS, FactorizedReduce, ReLUConvBN, scaled, strip_leading_relu
from .relax import GumbelHard, Softmax
from .spaces import DARTS_OPS, MIXED_OPS


def candidate(name: str, c: int, stride: int) -> nn.Module:
    """One candidate op of the search, affine-free; pools get a BN after them, as in the official search,
    so that their scale matches the convs'."""
    op = OPS[name](c, stride, False)
    if "pool" in name:
        op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
    return op


def is_parameter_free(name: str) -> bool:
    """Is candidate `name` a function of its input alone (no weights; BN statistics of its own input)?

    Such an op gives the same output on every outgoing edge of a state: the cell computes it once
    (SharedOps). A stride-1 skip is the input itself, nothing to share.
    """
    if name in ("none", "skip_connect"):
        return False
    with torch.device("meta"):  # built only to look: no memory, no draw from the random generator
        return not any(True for _ in candidate(name, 4, 1).parameters())


class SharedOps(nn.Module):
    """The parameter-free candidates (pools and their BN) of one state, computed once per forward for
    all its outgoing edges: they are the same function of the same input on each of them, so the
    outputs, gradients and BN running statistics are those of the paper's one-op-per-edge network,
    at a fraction of the work (a state has up to `nodes` outgoing edges)."""

    def __init__(self, names: list[str], c: int, stride: int):
        super().__init__()
        self.ops = nn.ModuleDict({name: candidate(name, c, stride) for name in names})

    def outputs(self) -> "SharedOutputs":
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


class MixedOp(nn.Module):
    """sum_o w_o * o(x) over the candidates of one edge (Eq. 2), computed as `mode` says (see above).

    Candidates named in `shared` are not built here: the cell computes them once per state and hands
    their outputs to forward (`shared_outputs`).
    """

    def __init__(self, c: int, stride: int, ops: list[str], mode: str = "exact", partial_k: int = 4,
                 shared: tuple[str, ...] = ()):
        super().__init__()
        if mode not in MIXED_OPS:
            raise ValueError(f"mixed-op mode must be one of {MIXED_OPS}, got {mode!r}")
        self.mode, self.stride = mode, stride
        self.k = partial_k if mode == "partial" else 1
        if c % self.k:
            raise ValueError(f"partial channels: {c} channels do not split into {self.k} parts")
        # `none` contributes w * 0: it is never built or computed, yet its weight still takes a share
        # of the softmax, so gradients and derivation are exactly the paper's.
        self.index = [k for k, name in enumerate(ops) if name != "none" and name not in shared]
        self.shared = [(k, name) for k, name in enumerate(ops) if name in shared]
        self.ops = nn.ModuleList()
        self.takes_relu = []  # per op: does it take relu(x) (its own leading ReLU removed) or x?
        for k in self.index:
            op, relu_first = strip_leading_relu(candidate(ops[k], c // self.k, stride))
            self.ops.append(op)
            self.takes_relu.append(relu_first)
        self.needs_relu = any(self.takes_relu)
        self.norms = [m for m in self.ops.modules() if isinstance(m, nn.BatchNorm2d)]  # for _LeanMix

    def forward(self, x: torch.Tensor, weights: torch.Tensor, x_relu: torch.Tensor | None = None,
                choice: int | None = None, shared_outputs: SharedOutputs | None = None) -> torch.Tensor:
        """`x_relu`: relu(x) when the caller has it already; `choice`: the one candidate to run (sample);
        `shared_outputs`: the state's shared candidates, when this edge has any."""
        if self.shared and shared_outputs is None:
            raise ValueError("this mixed op shares candidates with its state's other edges: "
                             "pass shared_outputs (SearchCell does)")
        if x_relu is None and self.needs_relu:
            x_relu = nn.functional.relu(x)
        if choice is not None:
            return self.one(x, x_relu, weights, choice)
        if self.mode == "partial":
            return self.partial(x, x_relu, weights, shared_outputs)
        if self.mode == "lean" and torch.is_grad_enabled():
            # The parameters as they are now (functional_call may have swapped in others).
            params = [p for op in self.ops for p in op.parameters()]
            return _LeanMix.apply(x, x_relu, weights, self, shared_outputs, *params)
        return self.weighted_sum(x, x_relu, weights, shared_outputs)

    def weighted_sum(self, x, x_relu, weights, shared_outputs=None) -> torch.Tensor:
        out = None
        for k, op, relu_first in zip(self.index, self.ops, self.takes_relu):
            # w_k * op(x), the weight folded into the op's final batch norm (ops.scaled).
            y = scaled(op, x_relu if relu_first else x, weights[k])
            # Accumulating in place saves a temporary and a pass over memory per op; autograd allows it:
            # neither the norm nor the product needs its own output for backward, nor does add.
            out = y if out is None else out.add_(y)
        for k, name in self.shared:
            y = shared_outputs.get(name, x)
            out = weights[k] * y if out is None else out.addcmul_(y, weights[k])
        return out

    def one(self, x, x_relu, weights, choice: int) -> torch.Tensor:
        """weights[choice] * op_choice(x): the other weights are zero (a one-hot sample)."""
        if choice not in self.index:  # `none` was drawn: the edge contributes nothing
            n, c, h, w = x.shape
            return x.new_zeros(n, c, -(-h // self.stride), -(-w // self.stride))
        i = self.index.index(choice)
        return scaled(self.ops[i], x_relu if self.takes_relu[i] else x, weights[choice])

    def partial(self, x, x_relu, weights, shared_outputs=None) -> torch.Tensor:
        c = x.shape[1] // self.k
        fmt = _memory_format(x)
        # One dense copy of the channel slice, instead of one inside every candidate op.
        part = x[:, :c].contiguous(memory_format=fmt)
        part_relu = None if x_relu is None else x_relu[:, :c].contiguous(memory_format=fmt)
        mixed = self.weighted_sum(part, part_relu, weights, shared_outputs)
        rest = x[:, c:]
        if self.stride == 2:  # the bypassed channels are brought to the output size too
            rest = nn.functional.max_pool2d(rest, 2, 2, ceil_mode=True)
        return nn.functional.channel_shuffle(torch.cat([mixed, rest], dim=1), self.k)


class _LeanMix(torch.autograd.Function):
    """The mixed op's weighted sum with its backward recomputing one candidate at a time.

    Forward runs without a graph (batch-norm running statistics move here, once, as in exact mode);
    backward re-runs each op on the saved input with the saved parameters, statistics tracking off (so
    they do not move twice), and takes
    d/dw_k = <grad_out, op_k(x)>,  d/dx and d/dparams by that op's own backward with grad_out * w_k.
    """

    @staticmethod
    def forward(ctx, x, x_relu, weights, mixed, shared_outputs, *params):
        ctx.mixed, ctx.training = mixed, mixed.training
        # The state's shared modules, not their outputs: those are recomputed like every other op's.
        ctx.shared_ops = None if shared_outputs is None else shared_outputs.shared
        ctx.save_for_backward(x, x_relu, weights, *params)
        with torch.no_grad():
            return mixed.weighted_sum(x, x_relu, weights, shared_outputs)

    @staticmethod
    def backward(ctx, grad_out):
        x, x_relu, weights, *params = ctx.saved_tensors
        mixed = ctx.mixed
        # A slice of the concatenated cell output's gradient is not contiguous; kernels (batch norm's
        # backward above all) run far slower on such a view than on one dense copy.
        grad_out = grad_out.contiguous(memory_format=_memory_format(x))
        need_x, need_relu, need_w = ctx.needs_input_grad[:3]
        need_params = ctx.needs_input_grad[5:]
        grad_in = {False: None, True: None}  # input gradients, of x and of relu(x), summed over ops
        grad_w = torch.zeros_like(weights) if need_w else None
        grad_params, start = [], 0
        was_training = mixed.training
        if was_training != ctx.training:
            mixed.train(ctx.training)
        shared_norms = [] if ctx.shared_ops is None else [m for m in ctx.shared_ops.modules() if isinstance(m, nn.BatchNorm2d)]
        norms = [m for m in mixed.norms + shared_norms if m.track_running_stats]
        for m in norms:
            m.track_running_stats = False  # batch statistics as in forward, running ones untouched
        try:
            for k, op, relu_first in zip(mixed.index, mixed.ops, mixed.takes_relu):
                module_params = list(op.parameters())
                own = params[start:start + len(module_params)]
                wanted = need_params[start:start + len(module_params)]
                start += len(module_params)
                source, need_in = (x_relu, need_relu) if relu_first else (x, need_x)
                with torch.enable_grad():
                    inp = source.detach().requires_grad_(need_in)
                    if all(p.data_ptr() == q.data_ptr() for p, q in zip(own, module_params)):
                        # The saved parameters are the op's own (or detached views of them): call it.
                        p_k, y = module_params, op(inp)
                    else:  # others (the virtual step's w', the finite-difference probes)
                        p_k = [p.detach().requires_grad_(w) for p, w in zip(own, wanted)]
                        names = [n for n, _ in op.named_parameters()]
                        y = functional_call(op, dict(zip(names, p_k)), (inp,))
                if need_w:
                    grad_w[k] = _dot(grad_out, y.detach())
                inputs = ([inp] if need_in else []) + [p for p, w in zip(p_k, wanted) if w]
                # The op's backward is linear in its output gradient: run it on grad_out and scale
                # the results by w_k, instead of scaling grad_out (one full-size product less per op).
                grads = list(torch.autograd.grad(y, inputs, grad_out)) if inputs else []
                if need_in:
                    grad_in[relu_first] = _add_scaled(grad_in[relu_first], grads.pop(0), weights[k])
                grad_params.extend(grads.pop(0) * weights[k] if w else None for w in wanted)
            for k, name in mixed.shared:  # parameter-free, on x
                with torch.enable_grad():
                    inp = x.detach().requires_grad_(need_x)
                    y = ctx.shared_ops.ops[name](inp)
                if need_w:
                    grad_w[k] = _dot(grad_out, y.detach())
                if need_x:
                    grad_in[False] = _add_scaled(grad_in[False], torch.autograd.grad(y, inp, grad_out)[0], weights[k])
        finally:
            if was_training != ctx.training:
                mixed.train(was_training)
            for m in norms:
                m.track_running_stats = True
        return (grad_in[False], grad_in[True], grad_w, None, None, *grad_params)


def _add_scaled(acc: torch.Tensor | None, g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """acc + w * g, in place; the first term starts the sum (no zero-filled buffer)."""
    return g * w if acc is None else acc.addcmul_(g, w)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a, b> over all elements without a temporary (channels-last tensors are flat in NHWC order)."""
    if a.dim() == 4 and all(t.is_contiguous(memory_format=torch.channels_last) for t in (a, b)):
        a, b = a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)
    return torch.dot(a.reshape(-1), b.reshape(-1))


class SearchCell(nn.Module):
    def __init__(self, nodes, c_pp, c_p, c, reduction, reduction_prev, ops, mode="exact", partial_k=4):
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        # Inputs are brought to C channels (and to this cell's input resolution) first.
        self.pre0 = FactorizedReduce(c_pp, c, affine=False) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        # Modes that compute every candidate compute the parameter-free ones once per state (SharedOps;
        # lean in its forward, recomputing them per edge in backward); sample runs one op per edge.
        shared = tuple(n for n in ops if is_parameter_free(n)) if mode != "sample" else ()
        stride = [2 if reduction and j < 2 else 1 for j in range(nodes + 1)]  # of each state's edges
        k = partial_k if mode == "partial" else 1
        self.shared = nn.ModuleList(SharedOps(shared, c // k, stride[j]) for j in range(nodes + 1)) if shared else None
        self.edges = nn.ModuleList(
            MixedOp(c, stride[j], ops, mode, partial_k, shared)
            for i in range(nodes) for j in range(2 + i))
        self.needs_relu = any(e.needs_relu for e in self.edges)

    def forward(self, s0, s1, weights, edge_weights=None, choices=None):
        """`edge_weights`: one weight per edge (partial mode); `choices`: one op index per edge (sample)."""
        states = [self.pre0(s0), self.pre1(s1)]
        relus = [nn.functional.relu(h) for h in states] if self.needs_relu else [None] * 2
        shared = [None] * (self.nodes + 1)  # per state feeding edges: its shared candidates' outputs
        if self.shared is not None:
            shared[:2] = [self.shared[0].outputs(), self.shared[1].outputs()]
        offset = 0
        for _ in range(self.nodes):
            terms = []
            for j, (h, r) in enumerate(zip(states, relus)):
                e = offset + j
                y = self.edges[e](h, weights[e], r, None if choices is None else choices[e], shared[j])
                terms.append(y if edge_weights is None else edge_weights[e] * y)
            offset += len(states)
            node = terms[0]  # a fresh tensor of this cell's (an edge's output): summed into in place
            for t in terms[1:]:
                node = node.add_(t)
            states.append(node)
            last = len(states) == self.nodes + 2  # the last node feeds no edge
            relus.append(nn.functional.relu(node) if self.needs_relu and not last else None)
            if self.shared is not None and not last:
                shared[len(states) - 1] = self.shared[len(states) - 1].outputs()
        return _Concat.apply(*states[2:])


class _Concat(torch.autograd.Function):
    """torch.cat over channels whose backward hands each part a dense gradient.

    The parts of the output gradient are channel slices, strided views that every op on the node's
    backward path would read: batch norm's CPU backward runs several times slower on such a view than
    on a dense copy, which costs one pass.
    """

    @staticmethod
    def forward(ctx, *parts):
        ctx.sizes = [p.shape[1] for p in parts]
        ctx.format = _memory_format(parts[0])
        return torch.cat(parts, dim=1)

    @staticmethod
    def backward(ctx, grad):
        return tuple(g.contiguous(memory_format=ctx.format) for g in grad.split(ctx.sizes, dim=1))


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        else torch.contiguous_format


class Supernet(Searchable):
    """The DARTS search network (Sec. 3.1): a stem, `layers` cells, reductions at 1/3 and 2/3 of depth."""

    def __init__(self, in_channels: int, num_classes: int, init_channels: int = 16, layers: int = 8,
                 nodes: int = 4, ops: list[str] | None = None, stem_multiplier: int = 3,
                 relaxation=None, mixed_op: str = "exact", partial_k: int = 4):
        super().__init__()
        self.ops = list(ops or DARTS_OPS)
        self.nodes = nodes
        if mixed_op not in MIXED_OPS:
            raise ValueError(f"mixed_op must be one of {MIXED_OPS}, got {mixed_op!r}")
        self.mixed_op = mixed_op
        self.relaxation = relaxation or (GumbelHard() if mixed_op == "sample" else Softmax())
        self.temperature = 1.0   # set per epoch by the search's schedule
        self.generator = None    # draws the samples of a sampling relaxation (None: torch's global RNG)
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
                                         mixed_op, partial_k))
            reduction_prev = reduction
            c_pp, c_p = c_p, nodes * c_curr
        self.classifier = nn.Linear(c_p, num_classes)
        num_edges = len(edge_names(nodes))
        # Paper (Sec. 2.2 / official code): alphas start near uniform, 1e-3 * N(0, 1).
        logits = {kind: nn.Parameter(1e-3 * torch.randn(num_edges, len(self.ops))) for kind in ("normal", "reduce")}
        if mixed_op == "partial":  # PC-DARTS edge-normalisation logits, one per edge, same start
            logits |= {f"{kind}_edges": nn.Parameter(1e-3 * torch.randn(num_edges)) for kind in ("normal", "reduce")}
        self.alphas = nn.ParameterDict(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kinds = ("normal", "reduce")
        weights = {k: self.relaxation.weights(self.alphas[k], self.temperature, self.generator) for k in kinds}
        edge_weights = self.edge_weights(detach=False) if self.mixed_op == "partial" else {k: None for k in kinds}
        choices = {k: None for k in kinds}
        if self.relaxation.samples:
            # One host transfer per forward for all edges of both kinds: which ops to run.
            drawn = torch.stack([weights[k].argmax(dim=-1) for k in kinds]).tolist()
            choices = dict(zip(kinds, drawn))
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, weights[kind], edge_weights[kind], choices[kind])
        # A plain mean, not adaptive pooling: its CUDA backward has no deterministic kernel.
        return self.classifier(s1.mean(dim=(2, 3)))

    @torch.no_grad()
    def probs(self) -> dict[str, torch.Tensor]:
        """Current mixing probabilities per cell kind (edges x ops), detached."""
        return {k: self.relaxation.probs(self.alphas[k], self.temperature) for k in ("normal", "reduce")}

    def edge_weights(self, detach: bool = True) -> dict[str, torch.Tensor] | None:
        """PC-DARTS edge weights per cell kind: a softmax over each node's incoming edges (None otherwise)."""
        if self.mixed_op != "partial":
            return None
        out = {}
        for kind in ("normal", "reduce"):
            betas, parts, start = self.alphas[f"{kind}_edges"], [], 0
            for i in range(self.nodes):
                parts.append(betas[start:start + 2 + i].softmax(dim=-1))
                start += 2 + i
            out[kind] = torch.cat(parts).detach() if detach else torch.cat(parts)
        return out
