"""A user's model as a search space: its choices by name, their alphas apart from the weights, and the alphas'
state for checkpoints.

A choice's name is its label, or else its module path. Walking the model (`choices_of`) ties every choice of
one label to one set of alphas (NNI's label semantics; DARTS's one table for all normal cells) and checks that
the names are unambiguous. The alphas are not in `model.parameters()`: `arch_parameters(model)` lists them,
`weights(model)` the rest, and the two never share a tensor, so neither optimiser steps the other's. They move
with the model (`model.to(device)`, `model.double()`), and are saved beside its state_dict:

    torch.save({"model": model.state_dict(), "alphas": arch_state_dict(model)}, path)
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..core.architect import Searchable
from .modules import Choice, ChoiceError, InputChoice, _Choosing


def groups(model: nn.Module) -> dict[str, list[tuple[str, _Choosing]]]:
    """name -> every (module path, choice) of that name, in module order; ties each label's choices to one set
    of logits. A model without a choice, or two choices that cannot share a name, is a ChoiceError."""
    found: dict[str, list[tuple[str, _Choosing]]] = {}
    for path, m in model.named_modules():
        if isinstance(m, _Choosing):
            found.setdefault(m.label or path or type(m).__name__, []).append((path, m))
    if not found:
        raise ChoiceError(
            f"{type(model).__name__} has no choice module: put a dartsnas.Choice or dartsnas.InputChoice in it"
        )
    for name, members in found.items():
        (path0, first), *rest = members
        for path, m in rest:
            if m.label is None or first.label is None:  # a label equal to another choice's path
                raise ChoiceError(
                    f"two choices are named {name!r} ({path0 or '<model>'} and {path or '<model>'}): a label must "
                    "differ from every other choice's module path; rename the label"
                )
            if _signature(m) != _signature(first):
                raise ChoiceError(
                    f"choices {path0} and {path} share the label {name!r} but differ ({_signature(first)} vs "
                    f"{_signature(m)}): one label means one set of alphas over the same candidates; give one a new label"
                )
            m._box = first._box
        for _, m in members:
            m.name, m.bound = name, True
    return found


def _signature(m: _Choosing) -> str:
    if isinstance(m, Choice):
        return f"Choice over {m.names}"
    return f"InputChoice(n={m.n}, k={m.k}, weighted={m.weighted}, reduction={m.reduction!r})"


def choices_of(model: nn.Module) -> dict[str, Choice | InputChoice]:
    """name -> choice (the first of its label), every choice of the model; ties each label's choices together."""
    return {name: members[0][1] for name, members in groups(model).items()}


def alphas(model: nn.Module) -> dict[str, nn.Parameter]:
    """name -> architecture logits, one entry per label (an unweighted InputChoice has none)."""
    return {name: c.alphas for name, c in choices_of(model).items() if c.alphas is not None}


def arch_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The alphas, each once: what the architecture step's optimiser steps."""
    return list(alphas(model).values())


def weights(model: nn.Module) -> list[nn.Parameter]:
    """The network's own parameters: `model.parameters()`, which holds no alpha."""
    return list(model.parameters())


def arch_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """name -> a copy of the alphas, for a checkpoint beside `model.state_dict()`."""
    return {name: a.detach().clone() for name, a in alphas(model).items()}


def load_arch_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy saved alphas into the model's, in place (optimisers holding them keep them); names and sizes must
    match."""
    own = alphas(model)
    missing, unknown = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unknown:
        raise ChoiceError(f"saved alphas do not fit this model: missing {missing}, unknown {unknown}")
    with torch.no_grad():
        for name, a in own.items():
            if state[name].shape != a.shape:
                raise ChoiceError(
                    f"saved alphas {name!r} have shape {list(state[name].shape)}, the model's {list(a.shape)}"
                )
            a.copy_(state[name])


@contextlib.contextmanager
def same_draw(model: nn.Module):
    """Inside, every forward of a drawing relaxation (sample) reuses one draw per label: the same candidates run,
    and the coefficients are one function of the alphas, as the passes of one architecture step need (Eq. 7-8;
    SearchNetwork.same_draw). Outside, each forward draws afresh."""
    boxes = {id(c._box): c._box for c in choices_of(model).values() if isinstance(c, Choice)}
    for box in boxes.values():
        box.holding, box.noise = True, None
    try:
        yield
    finally:
        for box in boxes.values():
            box.holding, box.noise = False, None


def set_temperature(model: nn.Module, tau: float) -> None:
    """The softmax temperature of every choice (a search's schedule sets it per epoch; GDAS: 10 down to 0.1)."""
    for c in choices_of(model).values():
        if c.alphas is not None:
            c._box.temperature = float(tau)


class SearchView(Searchable):
    """A model with choices as the architecture step sees a search network (core/architect.py's `Searchable`):
    `weights()` its parameters, `arch_parameters()` its alphas, `same_draw()` one draw per label. The view
    holds the alphas (`self.alphas`, name -> logits with dots made "/"); the model's own `parameters()` still
    hold none. Its forward is the model's."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.alphas = nn.ParameterDict({name.replace(".", "/"): a for name, a in alphas(model).items()})

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def same_draw(self) -> contextlib.AbstractContextManager:
        return same_draw(self.model)
