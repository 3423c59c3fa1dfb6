"""Choice modules a user puts anywhere in their own `nn.Module`: `Choice` (one of several candidate modules on
the same input, NNI's LayerChoice) and `InputChoice` (k of n incoming tensors, DARTS's edge selection, NNI's
InputChoice). Each computes its relaxation as the built-in supernet's mixed op does: `Choice` answers the
primitives the relaxation units of methods/relaxations/ compute an edge from (`weighted_sum`, `single`,
`candidates_sum`, `add_shared`, with `index`, `ops`, `takes_relu`, `norms`, `shared`, `stride`), so `exact`,
`lean`, `partial` and `sample` serve a user's model through the same units as conv/supernet.py's MixedOp.

The alphas are not parameters of the user's module tree: `model.parameters()`, as a user hands it to an
optimiser, steps no alpha. Each choice holds its logits in a `Logits` box (a plain object, not a module);
choices of one `label` share one box once the model has been walked (space.py's `choices_of`). They follow
the model's moves (`.to`, `.double`, `.cuda`: `_apply` below) and reach checkpoints through
`space.arch_state_dict`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from ..methods.relaxations import make

SHORTHANDS = {"none": "a zero of the input's shape (Zero)", "skip": "the input itself (nn.Identity)"}


class ChoiceError(ValueError):
    """A choice built, named or fixed in a way that cannot work; the message is one line saying what to do."""


class Zero(nn.Module):
    """The `none` candidate: no connection, zeros of the input's shape (every `stride`-th pixel of the last two
    dimensions when stride > 1, as DARTS's reduction edges). A Choice never computes it: its coefficient still
    takes its share of the softmax (Sec. 2.2), so gradients and derivation are the paper's."""

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return torch.zeros_like(x)
        *lead, h, w = x.shape
        return x.new_zeros(*lead, -(-h // self.stride), -(-w // self.stride))


class Logits:
    """One label's architecture logits (a leaf nn.Parameter, deliberately held outside any module so that
    `model.parameters()` does not list it), its temperature, and the noise of a held draw (space.same_draw)."""

    def __init__(self, n: int):
        # Paper (Sec. 2.2 / official code): alphas start near uniform, 1e-3 * N(0, 1).
        self.value = nn.Parameter(1e-3 * torch.randn(n))
        self.temperature = 1.0
        self.holding = False  # inside same_draw(): every forward reuses `noise`, drawn by the first
        self.noise = None


def _apply_to_logits(box: Logits, fn) -> None:
    """Move a box's logits (and their gradient) as nn.Module._apply moves parameters: in place, so optimisers
    holding the Parameter keep it. Idempotent, so choices sharing a box may each apply it."""
    p = box.value
    with torch.no_grad():
        new = fn(p)
    if new is not p:
        p.data = new
    if p.grad is not None:
        g = fn(p.grad)
        if g is not p.grad:
            p.grad = g


class _Choosing(nn.Module):
    """What both choice modules share: a stable name (the label, or the module path once walked) and logits."""

    def __init__(self, label: str | None, n_logits: int | None):
        super().__init__()
        if label is not None and (not isinstance(label, str) or not label):
            raise ChoiceError(f"a choice's label must be a non-empty string, got {label!r}")
        self.label = label
        self.name = label  # the module path when unlabelled, set by space.choices_of
        # An unlabelled choice owns its logits; a labelled one may share them, which only a walk can tell.
        self.bound = label is None
        self._box = Logits(n_logits) if n_logits else None

    @property
    def alphas(self) -> nn.Parameter | None:
        """This choice's architecture logits (shared with every choice of its label), or None."""
        return None if self._box is None else self._box.value

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self._box is not None:
            _apply_to_logits(self._box, fn)
        return self

    def _require_bound(self) -> None:
        if not self.bound:
            raise ChoiceError(
                f"choice {self.label!r} has a label, and choices of one label share their alphas: call "
                "dartsnas.choices.choices_of(model) once before the first forward, so that they are tied"
            )

    def _named(self) -> str:
        """Its name, or before the model was walked what it chooses from."""
        if self.name:
            return repr(self.name)
        return f"over {self.names}" if isinstance(self, Choice) else f"of {self.n} inputs"


class Choice(_Choosing):
    """One of several candidate modules that take the same input and give outputs of one shape (NNI's
    LayerChoice), relaxed as `relaxation` says (methods/relaxations/: "exact", "lean", "partial", "sample").

    `candidates`: a dict name -> module, or a list (named "0", "1", ... ; a shorthand string names itself); the
    shorthands "none" (Zero) and "skip" (nn.Identity) stand for their modules. `label`: the stable name, and
    choices of one label share one set of alphas (DARTS: one table for all normal cells); default, the module's
    path. `partial_k`, `sample_grad`: the units' settings. The forward is the relaxation's edge:
    sum_k mix_k candidate_k(x) (Eq. 2) for exact and lean; one drawn candidate for sample; that sum over
    1/partial_k of the channels (dimension 1) for partial, the candidates built for that width.
    """

    def __init__(
        self,
        candidates: dict[str, nn.Module | str] | list[nn.Module | str],
        *,
        label: str | None = None,
        relaxation: str = "exact",
        partial_k: int = 4,
        sample_grad: str = "straight_through",
    ):
        named = _named_candidates(candidates, label)
        super().__init__(label, len(named))
        try:
            self.candidates = nn.ModuleDict(named)
        except KeyError as err:  # ModuleDict refuses names with dots, or those of its own attributes
            where = f"choice {label!r}" if label else "a choice"
            raise ChoiceError(f"{where}: a candidate's name cannot be used ({err.args[0]}); rename it") from None
        try:
            self.relaxation = make(relaxation, partial_k=partial_k, sample_grad=sample_grad)
        except ValueError as err:
            raise ChoiceError(str(err)) from None
        self.names = list(named)
        # The primitives' view, as MixedOp's: `index`, the candidates computed (Zero never is); no ReLU is
        # shared (`takes_relu` all False) and no candidate is computed once per state (`shared` empty).
        self.index = [k for k, m in enumerate(named.values()) if not isinstance(m, Zero)]
        self.takes_relu = [False] * len(self.index)
        self.shared = []
        self.stride = 1  # partial's bypass keeps the other channels as they are: candidates keep the shape
        self.checked = False  # the candidates' output shapes, compared at the first forward

    @property
    def ops(self) -> list[nn.Module]:
        return [self.candidates[self.names[k]] for k in self.index]

    @property
    def norms(self) -> list[nn.Module]:
        """The candidates' batch norms, whose statistics lean's recomputation must not move twice."""
        return [m for op in self.ops for m in op.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def extra_repr(self) -> str:
        return f"label={self.label!r}, relaxation={self.relaxation.name!r}"

    # -- forward -------------------------------------------------------------------------------------

    def mix(self) -> torch.Tensor:
        """This forward's coefficients: the relaxation's function of the alphas (a fresh draw, or the held one)."""
        self._require_bound()
        box, unit = self._box, self.relaxation
        if box.holding:
            if box.noise is None:
                box.noise = unit.noise(box.value)
            return unit.mix(box.value, box.temperature, noise=box.noise)
        return unit.mix(box.value, box.temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.relaxation.parts()
        if parts > 1 and (x.dim() < 2 or x.shape[1] % parts):
            raise ChoiceError(
                f"choice {self._named()}: {self.relaxation.name} splits dimension 1 of the input into {parts} parts, "
                f"but the input has shape {list(x.shape)}; give it a multiple of {parts} channels, or another partial_k"
            )
        mix = self.mix()
        # A drawing relaxation runs its one candidate: one host read per forward to know which.
        choice = int(mix.argmax()) if self.relaxation.draws else None
        return self.relaxation.edge(self, x, None, mix, choice)

    # -- the primitives relaxations compute an edge from (as conv/supernet.py's MixedOp) ---------------

    def weighted_sum(self, x, x_relu, mix, shared_outputs=None) -> torch.Tensor:
        """sum_k mix_k * candidate_k(x) over every candidate (Zero contributes nothing)."""
        out = self.add_shared(self.candidates_sum(x, x_relu, mix), x, mix, shared_outputs)
        if out is None:  # every candidate is a Zero
            return self.candidates[self.names[0]](x)
        return out

    def candidates_sum(self, x, x_relu, mix) -> torch.Tensor | None:
        out = None
        for k in self.index:
            y = mix[k] * self.candidates[self.names[k]](x)
            if out is not None and y.shape != out.shape:
                self._shape_error(x)
            out = y if out is None else out.add_(y)  # y is fresh: neither product nor sum needs it in backward
        if not self.checked:  # the Zeros, never computed, give the input's shape (subsampled)
            zeros = [self.candidates[self.names[k]] for k in range(len(self.names)) if k not in self.index]
            if out is not None and any(z(x.to("meta")).shape != out.shape for z in zeros):
                self._shape_error(x)
            self.checked = True
        return out

    def add_shared(self, out, x, mix, shared_outputs) -> torch.Tensor | None:
        return out  # nothing is shared between choices

    def single(self, x, x_relu, mix, k: int) -> torch.Tensor:
        """mix[k] * candidate_k(x) alone; a Zero gives its zeros (no gradient, as MixedOp's `none`)."""
        if not self.checked:  # the others do not run: their shapes are compared once, on the meta device
            shapes = self._shapes(x)
            if len(set(shapes.values())) > 1:
                self._shape_error(x, shapes)
            self.checked = True
        op = self.candidates[self.names[k]]
        return op(x) if isinstance(op, Zero) else mix[k] * op(x)

    def _shapes(self, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
        """Each candidate's output shape on `x`, computed on the meta device (no memory, no statistics moved;
        forward hooks see meta tensors); {} when a candidate cannot run there."""
        shapes = {}
        try:
            with torch.no_grad():
                for name, op in self.candidates.items():
                    state = {n: t.to("meta") for n, t in [*op.named_parameters(), *op.named_buffers()]}
                    shapes[name] = tuple(functional_call(op, state, (x.to("meta"),)).shape)
        except Exception:  # an op without meta kernels
            return {}
        return shapes

    def _shape_error(self, x: torch.Tensor, shapes=None):
        shapes = shapes or self._shapes(x)
        listed = f" ({', '.join(f'{n} -> {list(s)}' for n, s in shapes.items())})" if shapes else ""
        raise ChoiceError(
            f"choice {self._named()}: its candidates give outputs of different shapes on an input of shape "
            f"{list(x.shape)}{listed}; every candidate must give the same shape"
        )


class InputChoice(_Choosing):
    """k of n incoming tensors (DARTS's edge selection, Sec. 2.4; NNI's InputChoice): the forward takes the
    list of n tensors and gives their sum (`reduction="sum"`) or their concatenation over dimension 1
    (`"concat"`); `fix` keeps k of them.

    `weighted=True` (NNI's DARTS, PC-DARTS's edge normalisation, Sec. 3.3): each input times the softmax of this
    choice's own n logits. `weighted=False`: a plain sum, as the DARTS cell's node; which k inputs a search keeps
    is then judged from the op choices on them, and the choice has no alphas.
    """

    def __init__(self, n: int, k: int = 1, *, label: str | None = None, weighted: bool = True, reduction="sum"):
        if not isinstance(n, int) or n < 2:
            raise ChoiceError(f"an input choice needs at least 2 inputs to choose from, got n={n!r}")
        if not isinstance(k, int) or not 1 <= k <= n:
            raise ChoiceError(f"an input choice keeps k of its n={n} inputs, 1 <= k <= n; got k={k!r}")
        if reduction not in ("sum", "concat"):
            raise ChoiceError(f"an input choice's reduction is 'sum' or 'concat', got {reduction!r}")
        super().__init__(label, n if weighted else None)
        self.n, self.k, self.weighted, self.reduction = n, k, weighted, reduction

    def extra_repr(self) -> str:
        return f"n={self.n}, k={self.k}, label={self.label!r}, weighted={self.weighted}, reduction={self.reduction!r}"

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if len(inputs) != self.n:
            raise ChoiceError(f"input choice {self._named()} takes {self.n} inputs, got {len(inputs)}")
        self._require_bound()
        if self.weighted:
            probs = (self._box.value / self._box.temperature).softmax(dim=-1)
            inputs = [p * x for p, x in zip(probs, inputs)]
        return reduce(inputs, self.reduction)


def reduce(inputs: list[torch.Tensor], reduction: str) -> torch.Tensor:
    """The inputs summed in order, or concatenated over dimension 1."""
    if reduction == "concat":
        return torch.cat(list(inputs), dim=1)
    out = inputs[0]
    for t in inputs[1:]:
        out = out + t
    return out


def _named_candidates(candidates, label) -> dict[str, nn.Module]:
    """name -> module, shorthands built; one-line errors for what cannot be a candidate set."""
    where = f"choice {label!r}" if label else "a choice"
    if isinstance(candidates, dict):
        pairs = list(candidates.items())
    elif isinstance(candidates, (list, tuple)):
        pairs = [(c if isinstance(c, str) else str(i), c) for i, c in enumerate(candidates)]
    else:
        raise ChoiceError(f"{where} takes its candidates as a dict name -> module or a list of modules")
    if len(pairs) < 2:
        raise ChoiceError(f"{where} has {len(pairs)} candidate(s): a choice needs at least 2 (use the module itself)")
    named = {}
    for name, c in pairs:
        if not isinstance(name, str) or not name:
            raise ChoiceError(f"{where}: candidate names must be non-empty strings, got {name!r}")
        if name in named:
            raise ChoiceError(f"{where}: two candidates are named {name!r}")
        if isinstance(c, str):
            if c not in SHORTHANDS:
                known = "; ".join(f"{k!r}: {v}" for k, v in SHORTHANDS.items())
                raise ChoiceError(f"{where}: candidate {name!r} is the string {c!r}; the shorthands are {known}")
            c = Zero() if c == "none" else nn.Identity()
        if not isinstance(c, nn.Module):
            raise ChoiceError(f"{where}: candidate {name!r} is a {type(c).__name__}, not an nn.Module")
        named[name] = c
    return named
