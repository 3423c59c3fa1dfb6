"""What every relaxation is asked, with the paper's answers as defaults (Sec. 2.1, Eq. 2): a softmax over
each edge's logits mixes every candidate's output, at a temperature the search may schedule.

A relaxation is asked by the network (`SearchNetwork` in conv/supernet.py) for the coefficients of a
forward pass and the probabilities derived from; by each mixed op for the edge's output, computed from the
mixed op's primitives (`weighted_sum`: sum_k mix_k op_k(x) over every candidate; `single`: one candidate
times its coefficient); by the cell for how many channel parts the candidates see and whether they may share
parameter-free candidates per state; and by the config for what it needs (`check`).
"""

from __future__ import annotations

import torch


class Relaxation:
    name = "exact"
    draws = False  # a forward runs one candidate per edge, drawn from the coefficients (the network passes it)
    shares_free_ops = True  # the cell may compute the parameter-free candidates once per state (conv/fast.py)
    edge_logits = False  # each node weighs its incoming edges by a softmax over per-edge logits (PC-DARTS)
    temperature = (1.0, 1.0)  # the temperature's [start, end] over the search when the config sets none
    compiles = True  # torch.compile can trace it (core/compiled.py); else `compile_refusal` says why
    compile_refusal = ""
    memory_headroom = 1.15  # peak / counted step memory on top of saved activations (conv/memory.py)

    def __init__(self, **settings):
        pass

    def parts(self) -> int:
        """Into how many channel parts an edge's input is split; the candidates see one (PC-DARTS: K)."""
        return 1

    # -- the alphas -> coefficients ----------------------------------------------------------------

    def mix(self, alphas: torch.Tensor, tau: float = 1.0, generator=None, noise=None) -> torch.Tensor:
        """The coefficients one forward multiplies each candidate's output with (edges x ops)."""
        return (alphas / tau).softmax(dim=-1) if tau != 1.0 else alphas.softmax(dim=-1)

    def probs(self, alphas: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        """The probabilities logged, plotted and derived from."""
        return self.mix(alphas, tau)

    def noise(self, alphas: torch.Tensor, generator=None) -> torch.Tensor | None:
        """The whole randomness of one draw (a drawing relaxation), to pass back as `noise` and repeat it."""
        return None

    # -- one edge ----------------------------------------------------------------------------------

    def edge(self, mixed, x, x_relu, mix, choice=None, shared_outputs=None) -> torch.Tensor:
        """The edge's output: sum_k mix_k * op_k(x) (Eq. 2); `choice`, when the network drew one op, runs it alone."""
        if choice is not None:
            return mixed.single(x, x_relu, mix, choice)
        return mixed.weighted_sum(x, x_relu, mix, shared_outputs)

    # -- what the unit needs of a config -----------------------------------------------------------

    @classmethod
    def check(cls, config) -> None:
        """Raise a one-line ConfigError when `config` asks for what this relaxation cannot do."""
