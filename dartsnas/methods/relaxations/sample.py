"""sample: GDAS (Dong & Yang, "Searching for A Robust Neural Architecture in Four GPU Hours", CVPR 2019).
Each forward draws one candidate per edge by the hard Gumbel-softmax and computes only it; the coefficients
are exactly one-hot, with the straight-through gradient of the soft sample. The temperature falls from 10
to 0.1 over the search (their schedule) unless the config sets one. The probabilities logged and derived
from are softmax(alphas): the distribution the samples come from, whatever the temperature. GDAS's own
derivation rule for the DARTS space is `derive: gdas` (methods/derivations/).
"""

from __future__ import annotations

import torch

from ...core.config import ConfigError
from .base import Relaxation

# How a drawn edge passes gradient to its one-hot coefficients (the config's sample_grad):
# - straight_through: mix[drawn] * op_drawn(x); only the drawn op's coefficient has a gradient, which
#   reaches every logit of the edge through the soft sample. GDAS's own code for the DARTS space does
#   this (xautodl search_cells.py, MixedOp.forward_gdas: `self._ops[index](x) * weights[index]`).
# - gdas_nb201: sum_k (mix[k] * op_k(x) if k is drawn else mix[k]), as GDAS's NAS-Bench-201 cell
#   (xautodl search_cells.py, NAS201SearchCell.forward_gdas). Undrawn coefficients are 0 in value, so
#   the output is unchanged, but each gets the sum of the edge output's gradient.
SAMPLE_GRADS = ("straight_through", "gdas_nb201")


class Sample(Relaxation):
    name = "sample"
    draws = True
    shares_free_ops = False  # one op per edge runs: nothing to share per state
    temperature = (10.0, 0.1)
    compiles = False
    compile_refusal = (
        "sample draws a new op per edge every step, and each draw would be another compiled graph; search "
        "sample without compile (it runs one op per edge already)"
    )

    def __init__(self, sample_grad: str = "straight_through", **settings):
        super().__init__(**settings)
        if sample_grad not in SAMPLE_GRADS:
            raise ValueError(f"sample_grad must be one of {SAMPLE_GRADS}, got {sample_grad!r}")
        self.grad = sample_grad

    def noise(self, alphas: torch.Tensor, generator=None) -> torch.Tensor:
        """Gumbel(0, 1) noise shaped like `alphas`: the whole randomness of one draw."""
        # Exponential(1) draws give Gumbel noise as -log(E); clamp keeps log finite for E = 0.
        e = torch.empty_like(alphas).exponential_(generator=generator).clamp_min(torch.finfo(alphas.dtype).tiny)
        return -e.log()

    def mix(self, alphas: torch.Tensor, tau: float = 1.0, generator=None, noise=None) -> torch.Tensor:
        """A fresh draw, or with `noise` (from `noise()`) a deterministic function of alphas: the same
        draw again, as the passes of one architecture step need (SearchNetwork.same_draw)."""
        g = self.noise(alphas, generator) if noise is None else noise
        soft = ((alphas + g) / tau).softmax(dim=-1)
        hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(dim=-1, keepdim=True), 1.0)
        # hard + (soft - soft): exactly one-hot in value (s - s is 0), the soft gradient in backward.
        return hard + (soft - soft.detach())

    def probs(self, alphas: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
        return alphas.softmax(dim=-1)

    def edge(self, mixed, x, x_relu, mix, choice=None, shared_outputs=None) -> torch.Tensor:
        """mix[choice] * op_choice(x): the other coefficients are zero (a one-hot sample). With sample_grad
        gdas_nb201 they are added as well (SAMPLE_GRADS): same value, more gradient. Without a choice (a
        network that evaluates the mixture: DARTS-PT, branch and bound), the weighted sum."""
        if choice is None:
            return super().edge(mixed, x, x_relu, mix, choice, shared_outputs)
        out = mixed.single(x, x_relu, mix, choice)
        if self.grad == "gdas_nb201":  # + sum of the undrawn coefficients, each exactly 0
            out = out + torch.cat([mix[:choice], mix[choice + 1 :]]).sum()
        return out

    @classmethod
    def check(cls, config) -> None:
        if config.sample_grad not in SAMPLE_GRADS:
            raise ConfigError(f"sample_grad: unknown {config.sample_grad!r}; available: {', '.join(SAMPLE_GRADS)}")


UNIT = Sample
