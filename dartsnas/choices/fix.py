"""From a model with choices to the plain network of one architecture (NNI's fixed_arch): every Choice replaced by
its chosen candidate, every InputChoice by the sum (or concatenation) of the inputs it keeps. What comes out has
no alpha, no unused candidate and no dartsnas choice module: a plain nn.Module that torch.export, ONNX and
safetensors take as they take any trained network.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .modules import Choice, ChoiceError, InputChoice, reduce
from .space import groups


class ChosenInputs(nn.Module):
    """An InputChoice fixed: the inputs at `kept` (in the order given), summed or concatenated."""

    def __init__(self, kept: list[int], n: int, reduction: str = "sum"):
        super().__init__()
        self.kept, self.n, self.reduction = list(kept), n, reduction

    def extra_repr(self) -> str:
        return f"kept={self.kept}, n={self.n}, reduction={self.reduction!r}"

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return reduce([inputs[i] for i in self.kept], self.reduction)


def fix(model: nn.Module, choices: dict[str, str | int | list[int]], keep_weights: bool = True) -> nn.Module:
    """A copy of `model` with each choice fixed as `choices` says: name -> the chosen candidate's name or position
    (a Choice) or the kept inputs' indices (an InputChoice; a single int keeps one). `model` is left as it is.

    keep_weights: the chosen candidates and the rest of the network keep their (searched) weights; False: every
    module with `reset_parameters` starts afresh, as a new instance would (training from scratch).
    """
    fixed = copy.deepcopy(model)
    found = groups(fixed)
    unknown = sorted(set(choices) - set(found))
    if unknown:
        raise ChoiceError(f"fix: no choice is named {unknown[0]!r}; the model's choices: {', '.join(found)}")
    missing = [name for name in found if name not in choices]
    if missing:
        raise ChoiceError(f"fix: choose for every choice of the model; none given for {', '.join(map(repr, missing))}")
    replacement = {}  # id(choice) -> its fixed module; a choice placed at several paths is replaced everywhere
    for name, members in found.items():
        for _, m in members:
            if id(m) not in replacement:
                replacement[id(m)] = _fixed(name, m, choices[name])
    for path, m in list(fixed.named_modules(remove_duplicate=False)):
        if id(m) in replacement and path:
            parent, _, attr = path.rpartition(".")
            setattr(fixed.get_submodule(parent), attr, replacement[id(m)])
    if isinstance(fixed, (Choice, InputChoice)):  # the model is itself one choice
        fixed = replacement[id(fixed)]
    if not keep_weights:
        for m in fixed.modules():
            if callable(getattr(m, "reset_parameters", None)):
                m.reset_parameters()
    return fixed


def _fixed(name: str, m, chosen) -> nn.Module:
    if isinstance(m, Choice):
        if isinstance(chosen, int) and not isinstance(chosen, bool) and 0 <= chosen < len(m.names):
            chosen = m.names[chosen]  # by position, as NNI's fixed_arch names a list's candidates
        if chosen not in m.names:
            raise ChoiceError(f"fix: choice {name!r} has no candidate {chosen!r}; its candidates: {', '.join(m.names)}")
        return m.candidates[chosen]
    kept = [chosen] if isinstance(chosen, int) else chosen
    if (
        not isinstance(kept, (list, tuple))
        or not all(isinstance(i, int) and 0 <= i < m.n for i in kept)
        or len(set(kept)) != len(kept)
        or len(kept) != m.k
    ):
        raise ChoiceError(
            f"fix: input choice {name!r} keeps {m.k} distinct input indices in [0, {m.n}), got {chosen!r}"
        )
    return ChosenInputs(kept, m.n, m.reduction)
