"""Candidate operations of the DARTS convolutional space and the OPS registry.

Every op maps C channels to C channels; at stride 2 it halves the resolution. Convolutions use the
ReLU-conv-BN order of the paper (Sec. 3.1). `affine=False` during search: the architecture weights
already scale each op, and learnable BN scales would blur that (official code, model_search.py).
Adding an op is one line in OPS.
"""

from __future__ import annotations

import torch
from torch import nn

from .kernels import Conv2d


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise (dilated) conv, pointwise conv, BN."""

    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convs, as in the paper (each op applied twice, Sec. 3.1)."""

    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )
        # The inner ReLU may overwrite its input: that is the first BN's output, which nothing else
        # reads (BN's backward needs its input, not its output). One activation less to write and keep.
        self[1][0].inplace = True


class FactorizedReduce(nn.Module):
    """Halves the resolution with two offset stride-2 1x1 convs, so no pixel is skipped entirely."""

    def __init__(self, c_in, c_out, affine=True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        return self.bn(self.features(x))

    def features(self, x):
        """Everything but the final batch norm."""
        x = self.relu(x)
        # x[:, :, 1:, 1:] as a negative pad: a slice's backward would give a gradient in the default
        # memory format (see subsample). Odd sizes: the shifted branch is one pixel short, so it is
        # padded back below (the official code fails there).
        shifted = nn.functional.pad(x, (-1, 0, -1, 0))
        a = self.conv_1(x)
        b = self.conv_2(shifted)
        if b.shape[-2:] != a.shape[-2:]:
            b = nn.functional.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        return torch.cat([a, b], dim=1)


class Zero(nn.Module):
    """The `none` op: no connection. Supernets skip it entirely (its output is known to be zero)."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Conv7x1_1x7(nn.Sequential):
    def __init__(self, c, stride, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


def _skip(c, stride, affine):
    return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine)


# name -> factory(C, stride, affine) -> module mapping C channels to C channels.
OPS = {
    "none": lambda c, stride, affine: Zero(stride),
    "avg_pool_3x3": lambda c, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "max_pool_3x3": lambda c, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "skip_connect": _skip,
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine),
    "sep_conv_7x7": lambda c, stride, affine: SepConv(c, c, 7, stride, 3, affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine),
    "conv_1x1": lambda c, stride, affine: ReLUConvBN(c, c, 1, stride, 0, affine),
    "conv_3x3": lambda c, stride, affine: ReLUConvBN(c, c, 3, stride, 1, affine),
    "conv_7x1_1x7": lambda c, stride, affine: Conv7x1_1x7(c, stride, affine),
}


def candidate(name: str, c: int, stride: int) -> nn.Module:
    """One candidate op of the search, affine-free; pools get a BN after them, as in the official search,
    so that their scale matches the convs'."""
    op = OPS[name](c, stride, False)
    if "pool" in name:
        op = nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
    return op
