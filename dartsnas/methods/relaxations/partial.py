"""partial: PC-DARTS (Xu et al., "PC-DARTS: Partial Channel Connections for Memory-Efficient Architecture
Search", ICLR 2020, Sec. 3.2-3.3). Only 1/K of an edge's channels go through the candidates; the rest
bypass them (max-pooled on a reduction edge), then the channels are shuffled so that the next edge sees
others. Each node weighs its incoming edges by a softmax over per-edge logits (edge normalisation), and
these edge probabilities enter the derivation (methods/derivations/).
"""

from __future__ import annotations

import torch
from torch import nn

from ...core.config import ConfigError
from ...core.device import memory_format
from .base import Relaxation


class Partial(Relaxation):
    name = "partial"
    edge_logits = True

    def __init__(self, partial_k: int = 4, **settings):
        super().__init__(**settings)
        self.k = partial_k

    def parts(self) -> int:
        return self.k

    def edge(self, mixed, x, x_relu, mix, choice=None, shared_outputs=None) -> torch.Tensor:
        if choice is not None:
            return super().edge(mixed, x, x_relu, mix, choice, shared_outputs)
        c = x.shape[1] // self.k
        fmt = memory_format(x)
        # One dense copy of the channel slice, instead of one inside every candidate op.
        part = x[:, :c].contiguous(memory_format=fmt)
        part_relu = None if x_relu is None else x_relu[:, :c].contiguous(memory_format=fmt)
        mixed_part = mixed.weighted_sum(part, part_relu, mix, shared_outputs)
        rest = x[:, c:]
        if mixed.stride == 2:  # the bypassed channels are brought to the output size too
            rest = nn.functional.max_pool2d(rest, 2, 2, ceil_mode=True)
        return nn.functional.channel_shuffle(torch.cat([mixed_part, rest], dim=1), self.k)

    @classmethod
    def check(cls, config) -> None:
        if config.partial_k < 1 or config.init_channels % (2 * config.partial_k):
            raise ConfigError(
                f"partial_k={config.partial_k} must be at least 1 and divide init_channels="
                f"{config.init_channels} into parts of an even number of channels; "
                f"use e.g. partial_k=4 with init_channels a multiple of 8"
            )


UNIT = Partial
