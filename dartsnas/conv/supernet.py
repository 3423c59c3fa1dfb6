"""The fast search supernet: the network of conv/plain.py, computed faster and in less memory.

Read plain.py first: it states the method. This file computes the same function (tested equal in
float64: outputs, every gradient, batch-norm statistics), with the mixed op computed by a relaxation unit
(methods/relaxations/: exact, lean, partial, sample), the config's `mixed_op`. The cell and the network ask
the unit what it needs around the edge (channel parts, per-edge logits, a drawn op per edge, shared
parameter-free candidates) and never branch on its name.

The architecture logits `alphas` are registered parameters (checkpoints and optimisers see them). The
speed tricks (a ReLU shared per state, parameter-free ops computed once per state, the mixing weight
folded into batch norm, dense concatenation gradients) are in fast.py, each explained there.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..core.architect import Searchable
from ..methods.derivations import derive
from ..core.genotype import Genotype, edge_names
from ..core.progressive import FREE, REMOVED
from ..methods.relaxations import make
from ..methods.relaxations.base import Relaxation
from .fast import SharedOps, SharedOutputs, concat, is_parameter_free, scaled, strip_leading_relu
from .ops import FactorizedReduce, ReLUConvBN, candidate
from .spaces import DARTS_OPS

KINDS = ("normal", "reduce")


class MixedOp(nn.Module):
    """sum_o mix_o * o(x) over the candidates of one edge (Eq. 2), computed as its relaxation says.

    `none` contributes mix * 0: it is never built or computed, yet its coefficient still takes its share
    of the softmax, so gradients and derivation are exactly the paper's. Candidates named in `shared`
    are not built here either: the cell computes them once per state (fast.SharedOps). `build(name, c,
    stride)` makes a candidate (the space's own: ops.candidate for DARTS). The candidates see
    c / relaxation.parts() channels.
    """

    def __init__(
        self,
        c: int,
        stride: int,
        ops: list[str],
        relaxation: Relaxation | None = None,
        shared: tuple[str, ...] = (),
        build=candidate,
    ):
        super().__init__()
        self.relaxation = relaxation or make("exact")
        self.stride = stride
        parts = self.relaxation.parts()
        if c % parts:
            raise ValueError(f"partial channels: {c} channels do not split into {parts} parts")
        self.index = [k for k, name in enumerate(ops) if name != "none" and name not in shared]
        self.shared = [(k, name) for k, name in enumerate(ops) if name in shared]
        self.ops = nn.ModuleList()
        self.takes_relu = []  # per op: does it take relu(x) (its own leading ReLU removed) or x?
        for k in self.index:
            op, relu_first = strip_leading_relu(build(ops[k], c // parts, stride))
            self.ops.append(op)
            self.takes_relu.append(relu_first)
        self.needs_relu = any(self.takes_relu)
        self.norms = [m for m in self.ops.modules() if isinstance(m, nn.BatchNorm2d)]  # for lean's LeanMix

    def forward(
        self,
        x: torch.Tensor,
        mix: torch.Tensor,
        x_relu: torch.Tensor | None = None,
        choice: int | None = None,
        shared_outputs: SharedOutputs | None = None,
    ) -> torch.Tensor:
        """`x_relu`: relu(x) when the caller has it already; `choice`: the one candidate to run (a drawing
        relaxation); `shared_outputs`: the state's shared candidates, when this edge has any."""
        if self.shared and shared_outputs is None:
            raise ValueError(
                "this mixed op shares candidates with its state's other edges: pass shared_outputs (SearchCell does)"
            )
        if x_relu is None and self.needs_relu:
            x_relu = nn.functional.relu(x)
        return self.relaxation.edge(self, x, x_relu, mix, choice, shared_outputs)

    # -- the primitives relaxations compute an edge from -------------------------------------------

    def weighted_sum(self, x, x_relu, mix, shared_outputs=None) -> torch.Tensor:
        """sum_k mix_k * op_k(x) over every candidate, the shared ones included."""
        return self.add_shared(self.candidates_sum(x, x_relu, mix), x, mix, shared_outputs)

    def candidates_sum(self, x, x_relu, mix) -> torch.Tensor | None:
        """sum_k mix_k * op_k(x) over the candidates built here (those with weights, in the modes that share)."""
        out = None
        for k, op, relu_first in zip(self.index, self.ops, self.takes_relu):
            y = scaled(op, x_relu if relu_first else x, mix[k])  # mix_k * op_k(x)
            # In place: neither the norm nor the product needs its own output for backward, nor does add.
            out = y if out is None else out.add_(y)
        return out

    def add_shared(self, out, x, mix, shared_outputs) -> torch.Tensor | None:
        """out + sum_k mix_k * shared_k(x) over the candidates the state computes once (fast.SharedOps)."""
        for k, name in self.shared:
            y = shared_outputs.get(name, x)
            out = mix[k] * y if out is None else out.addcmul_(y, mix[k])
        return out

    def single(self, x, x_relu, mix, k: int) -> torch.Tensor:
        """mix[k] * op_k(x) alone; `none` (never built) gives zeros of the output's shape."""
        if k not in self.index:
            n, c, h, w = x.shape
            return x.new_zeros(n, c, -(-h // self.stride), -(-w // self.stride))
        i = self.index.index(k)
        return scaled(self.ops[i], x_relu if self.takes_relu[i] else x, mix[k])


class SearchCell(nn.Module):
    def __init__(
        self,
        nodes,
        c_pp,
        c_p,
        c,
        reduction,
        reduction_prev,
        ops,
        relaxation: Relaxation | None = None,
        aux_skip=False,
    ):
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        # Inputs are brought to C channels (and to this cell's input resolution) first.
        self.pre0 = (
            FactorizedReduce(c_pp, c, affine=False) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False)
        )
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        # Modes that compute every candidate compute the parameter-free ones once per state (SharedOps;
        # lean in its forward, recomputing them per edge in backward); sample runs one op per edge.
        relaxation = relaxation or make("exact")
        shared = tuple(n for n in ops if is_parameter_free(n)) if relaxation.shares_free_ops else ()
        stride = [2 if reduction and j < 2 else 1 for j in range(nodes + 1)]  # of each state's edges
        parts = relaxation.parts()
        self.shared = (
            nn.ModuleList(SharedOps(shared, c // parts, stride[j]) for j in range(nodes + 1)) if shared else None
        )
        self.edges = nn.ModuleList(
            MixedOp(c, stride[j], ops, relaxation, shared) for i in range(nodes) for j in range(2 + i)
        )
        self.needs_relu = any(e.needs_relu for e in self.edges)
        # DARTS-'s auxiliary skip per edge, outside the mixture: the skip_connect op of the edge's stride.
        self.aux = (
            nn.ModuleList(candidate("skip_connect", c, stride[j]) for i in range(nodes) for j in range(2 + i))
            if aux_skip
            else None
        )

    def forward(self, s0, s1, mix, edge_probs=None, choices=None, aux=0.0):
        """Node i = sum over its inputs j of edge (i, j)'s mixed op. `mix`: edges x ops; `edge_probs`:
        one per edge (a relaxation with edge logits); `choices`: one op index per edge (a drawing one); `aux`: DARTS-'s
        coefficient of the auxiliary skip added to every edge."""
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
                y = self.edges[e](h, mix[e], r, None if choices is None else choices[e], shared[j])
                y = y if edge_probs is None else edge_probs[e] * y
                terms.append(y if not aux else y.add_(self.aux[e](h), alpha=aux))
            offset += len(states)
            node = terms[0]  # a fresh tensor of this cell's (an edge's output): summed into in place
            for t in terms[1:]:
                node = node.add_(t)
            states.append(node)
            last = len(states) == self.nodes + 2  # the last node feeds no edge
            relus.append(nn.functional.relu(node) if self.needs_relu and not last else None)
            if self.shared is not None and not last:
                shared[len(states) - 1] = self.shared[len(states) - 1].outputs()
        return concat(states[2:])


def _projection(decided: list[int], n_ops: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep, fixed): coefficients * keep + fixed leaves free rows alone, makes decided rows one-hot, cuts
    removed ones."""
    keep = torch.tensor([[1.0] if d == FREE else [0.0] for d in decided], device=like.device)
    fixed = torch.zeros(len(decided), n_ops, device=like.device)
    for e, d in enumerate(decided):
        if d >= 0:
            fixed[e, d] = 1.0
    return keep, fixed


class SearchNetwork(Searchable):
    """What every search network of a convolutional space shares: alphas per cell kind (`kinds`), turned
    into mixing coefficients by the relaxation at the current temperature, a draw held across the passes
    of an architecture step, and PC-DARTS edge probabilities over each node's incoming edges (`fan_in`:
    the number of inputs of each node, in edge order)."""

    kinds: tuple[str, ...]
    fan_in: list[int]
    kept_per_node: int | None  # inputs the derived cell keeps per node; None: every edge (`none` a choice)

    def init_search(self, ops: list[str], relaxation: Relaxation) -> None:
        self.ops = list(ops)
        # The coefficients and probabilities of the alphas, and whether a forward draws one op per edge. The
        # edges hold the same unit for what they compute; they run a drawn op when given one, else the mixture
        # (DARTS-PT and branch and bound evaluate a drawing relaxation's mixture by swapping this one).
        self.relaxation = relaxation
        self.temperature = 1.0  # set per epoch by the search's schedule
        self.generator = None  # draws the samples of a sampling relaxation (None: torch's global RNG)
        self.held_noise = None  # inside same_draw(): the draw's noise per cell kind, once drawn
        # Edges taken out of the mixture (progressive discretisation, core/progressive.py): per cell kind one
        # entry per edge, FREE, an op index (the edge is that op alone, coefficient 1) or REMOVED (the edge
        # is cut). `masks`: per cell kind, edges x ops of 0/1 multiplying the coefficients (an op removed from
        # its mixture without renormalising, as DARTS-PT's perturbation); transient, never saved.
        self.decided: dict[str, list[int]] = {}
        self.masks: dict[str, torch.Tensor] = {}
        self.aux_skip = 0.0  # DARTS-'s auxiliary skip coefficient (0: off), set per epoch by the search
        self._projection = {}  # kind -> (keep, fixed) tensors for mix(), rebuilt when decisions change

    def init_alphas(self) -> None:
        # Paper (Sec. 2.2 / official code): alphas start near uniform, 1e-3 * N(0, 1).
        edges = sum(self.fan_in)
        logits = {kind: nn.Parameter(1e-3 * torch.randn(edges, len(self.ops))) for kind in self.kinds}
        if self.relaxation.edge_logits:  # PC-DARTS edge-normalisation logits, one per edge, same start
            logits |= {f"{kind}_edges": nn.Parameter(1e-3 * torch.randn(edges)) for kind in self.kinds}
        self.alphas = nn.ParameterDict(logits)

    @contextlib.contextmanager
    def same_draw(self):
        """Inside, every forward pass reuses the first one's Gumbel noise: the same ops are drawn and the
        coefficients are one function of the alphas, so the passes of an architecture step (the virtual
        step, the validation pass at w', the probes at w +- eps v of Eq. 8) are passes of one network and
        their finite difference is a Hessian-vector product. Forward passes outside (the weight step)
        draw afresh, as GDAS does on every forward. Deterministic relaxations hold nothing."""
        if not self.relaxation.draws or self.held_noise is not None:  # nothing to hold, or held already
            yield
            return
        self.held_noise = {}
        try:
            yield
        finally:
            self.held_noise = None

    def mix(self, kind: str) -> torch.Tensor:
        """The mixing coefficients of one cell kind (edges x ops): a fresh draw, or the held one; decided edges
        and masked ops as `decided` and `masks` say."""
        if self.held_noise is None:
            return self.project(kind, self.relaxation.mix(self.alphas[kind], self.temperature, self.generator))
        if kind not in self.held_noise:  # the first pass draws, as it would have outside
            self.held_noise[kind] = self.relaxation.noise(self.alphas[kind], self.generator)
        return self.project(kind, self.relaxation.mix(self.alphas[kind], self.temperature, noise=self.held_noise[kind]))

    # -- edges taken out of the mixture ------------------------------------------------------------

    def project(self, kind: str, coefficients: torch.Tensor) -> torch.Tensor:
        """Coefficients with the decided edges fixed (one-hot on their op, or all zero when cut) and the
        masked ops zeroed. Decided rows are constants: no gradient reaches their alphas. No host sync."""
        if kind in self.masks:
            coefficients = coefficients * self.masks[kind].to(coefficients)
        if any(d != FREE for d in self.decided.get(kind, ())):
            if kind not in self._projection:
                self._projection[kind] = _projection(self.decided[kind], len(self.ops), coefficients)
            keep, fixed = self._projection[kind]
            coefficients = coefficients * keep.to(coefficients) + fixed.to(coefficients)
        return coefficients

    def decide(self, kind: str, edge: int, op: int) -> None:
        """Fix `edge` of cell kind `kind` to op index `op` (or cut it: REMOVED) from now on."""
        if not (op == REMOVED or 0 <= op < len(self.ops)):
            raise ValueError(f"op must be an op index in [0, {len(self.ops)}) or REMOVED, got {op}")
        row = self.decided.setdefault(kind, [FREE] * sum(self.fan_in))
        row[edge] = op
        self._projection.pop(kind, None)

    def set_decisions(self, decided: dict[str, list[int]]) -> None:
        """Replace every decision (a checkpoint's `decided`; {} frees every edge)."""
        self.decided = {kind: [int(d) for d in row] for kind, row in decided.items()}
        self._projection = {}

    @contextlib.contextmanager
    def overridden(self, decided: dict[str, list[int]] | None = None, masks: dict[str, torch.Tensor] | None = None):
        """Inside, the network computes with these decisions and masks instead of its own (a discrete cell on
        the shared weights; an op removed from a mixture); its own are back on leaving."""
        saved = self.decided, self.masks
        try:
            if decided is not None:
                self.set_decisions(decided)
            if masks is not None:
                self.masks = masks
            yield self
        finally:
            self.decided, self.masks = saved
            self._projection = {}

    def mixes(self) -> tuple[dict, dict, dict]:
        """One forward's (mix, edge_probs, choices) per cell kind; choices: the drawn op per edge (sample)."""
        mix = {k: self.mix(k) for k in self.kinds}
        edge_probs = self.edge_probs(detach=False) if self.relaxation.edge_logits else dict.fromkeys(self.kinds)
        choices = dict.fromkeys(self.kinds)
        if self.relaxation.draws:
            # One host transfer per forward for all edges of every kind: which ops to run.
            drawn = torch.stack([mix[k].argmax(dim=-1) for k in self.kinds]).tolist()
            choices = dict(zip(self.kinds, drawn))
        return mix, edge_probs, choices

    def learnable_ops(self) -> list[int]:
        """Indices of the candidates that have weights (convolutions; not `none`, pools or a stride-1 skip)."""
        mixed = next(m for m in self.modules() if isinstance(m, MixedOp))
        return [k for k, op in zip(mixed.index, mixed.ops) if any(True for _ in op.parameters())]

    @torch.no_grad()
    def probs(self) -> dict[str, torch.Tensor]:
        """Current mixing probabilities per cell kind (edges x ops), detached; a decided edge's row is its
        one-hot op (all zero when cut), so derivation keeps every decision."""
        return {k: self.project(k, self.relaxation.probs(self.alphas[k], self.temperature)) for k in self.kinds}

    def edge_probs(self, detach: bool = True) -> dict[str, torch.Tensor] | None:
        """PC-DARTS edge probabilities per cell kind: a softmax over each node's incoming edges (None otherwise)."""
        if not self.relaxation.edge_logits:
            return None
        out = {}
        for kind in self.kinds:
            betas, parts, start = self.alphas[f"{kind}_edges"], [], 0
            for n in self.fan_in:
                parts.append(betas[start : start + n].softmax(dim=-1))
                start += n
            out[kind] = torch.cat(parts).detach() if detach else torch.cat(parts)
        return out


class Supernet(SearchNetwork):
    """The DARTS search network (Sec. 3.1): a stem, `layers` cells, reductions at 1/3 and 2/3 of depth."""

    kinds = KINDS
    kept_per_node = 2  # the derived cell keeps 2 inputs per node (Sec. 2.4)

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        init_channels: int = 16,
        layers: int = 8,
        nodes: int = 4,
        ops: list[str] | None = None,
        stem_multiplier: int = 3,
        mixed_op: str = "exact",
        partial_k: int = 4,
        sample_grad: str = "straight_through",
        aux_skip: bool = False,
    ):
        super().__init__()
        relaxation = make(mixed_op, partial_k=partial_k, sample_grad=sample_grad)
        self.init_search(ops or DARTS_OPS, relaxation)
        self.nodes = nodes
        self.fan_in = [2 + i for i in range(nodes)]
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
            self.cells.append(
                SearchCell(
                    nodes,
                    c_pp,
                    c_p,
                    c_curr,
                    reduction,
                    reduction_prev,
                    self.ops,
                    relaxation,
                    aux_skip,
                )
            )
            reduction_prev = reduction
            c_pp, c_p = c_p, nodes * c_curr
        self.classifier = nn.Linear(c_p, num_classes)
        self.init_alphas()

    @classmethod
    def from_config(cls, config, in_channels: int, num_classes: int) -> Supernet:
        return cls(
            in_channels,
            num_classes,
            config.init_channels,
            config.layers,
            config.nodes,
            config.ops,
            config.stem_multiplier,
            mixed_op=config.mixed_op,
            partial_k=config.partial_k,
            sample_grad=config.sample_grad,
            aux_skip=config.aux_skip > 0,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mix, edge_probs, choices = self.mixes()
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, mix[kind], edge_probs[kind], choices[kind], self.aux_skip)
        # A plain mean, not adaptive pooling: its CUDA backward has no deterministic kernel.
        return self.classifier(s1.mean(dim=(2, 3)))

    def edge_names(self) -> list[str]:
        return edge_names(self.nodes)

    def derive(self, rule: str = "darts", skip_cap: int | None = None) -> Genotype:
        """The genotype of the current alphas (Sec. 2.4), by a rule of methods/derivations/; `skip_cap`: at most that
        many skip connections in the normal cell (P-DARTS)."""
        return derive(self.probs(), self.ops, self.nodes, edge_probs=self.edge_probs(), rule=rule, skip_cap=skip_cap)
