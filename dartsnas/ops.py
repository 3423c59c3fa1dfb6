"""Candidate operations of the DARTS convolutional space and the OPS registry.

Every op maps C channels to C channels; at stride 2 it halves the resolution. Convolutions use the
ReLU-conv-BN order of the paper (Sec. 3.1). `affine=False` during search: the architecture weights
already scale each op, and learnable BN scales would blur that (official code, model_search.py).
Adding an op is one line in OPS.
"""

from __future__ import annotations

import torch
from torch import nn


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


def subsample(x: torch.Tensor, step) -> torch.Tensor:
    """x[:, :, ::step, ::step], as an average pool over one pixel (exact: a sum of one term divided by 1).

    Slicing would do in forward, but its backward scatters into a zero tensor in the default memory
    format, so a channels-last network gets a mixed-format gradient that every following CPU kernel
    reads slowly (measured on a 2-core CPU: ReLU, subsample and a 3x3 depthwise conv at batch 64, 64
    channels, 16x16, forward and backward, 7.2 ms sliced against 3.2 ms pooled).
    """
    return nn.functional.avg_pool2d(x, 1, step)


class Conv2d(nn.Conv2d):
    """nn.Conv2d with two faster formulations of the same conv, same parameters and attributes (exports
    and counters see an ordinary conv):

    - stride = dilation = d (with padding d*q): output i reads inputs d*(i + t - q) for kernel taps t,
      so only x[..., ::d, ::d] is ever read and the conv equals an undilated stride-1 conv with padding q
      on that subsampled input: a quarter of the input, and (on CPU) 4 to 14x faster than the dilated
      strided conv (`dartsnas bench conv`, README). On every device.
    - dilated, stride 1, padding that keeps the size (dil_conv in normal cells): the input gradient
      is the same conv of the output gradient with the kernel transposed (`_SameConv`), which PyTorch's
      CPU kernels compute several times faster than their dilated input-gradient kernel. On CPU only
      (CUDA keeps cuDNN's backward), outside autocast and torch.compile. Undilated convs keep PyTorch's
      backward: there the same formulation made the search step slower (1x1 convs: 5 %).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.subsamples():
            return self.forward_subsampled(x, self.weight)
        if self.dilation != (1, 1) and self.keeps_size() and x.device.type == "cpu" \
                and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling():
            return _SameConv.apply(x, self.weight, self.padding, self.dilation, self.groups)
        return super().forward(x)

    def subsamples(self) -> bool:
        d = self.dilation
        return d == self.stride and d != (1, 1) and self.padding_mode == "zeros" \
            and not isinstance(self.padding, str) and all(p % k == 0 for p, k in zip(self.padding, d))

    def keeps_size(self) -> bool:
        """Stride 1, zero padding of (kernel - 1) * dilation / 2 on each side, no bias."""
        return self.stride == (1, 1) and self.bias is None and self.padding_mode == "zeros" \
            and not isinstance(self.padding, str) \
            and all(2 * p == d * (k - 1) for p, d, k in zip(self.padding, self.dilation, self.kernel_size))

    def forward_subsampled(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        padding = tuple(p // k for p, k in zip(self.padding, self.dilation))
        return nn.functional.conv2d(subsample(x, self.dilation), weight, self.bias, 1, padding, 1, self.groups)


class _SameConv(torch.autograd.Function):
    """A stride-1, size-keeping conv whose input gradient is computed as a forward conv.

    Such a conv's input gradient is the same conv (same padding, dilation and groups) applied to the
    output gradient with the kernel flipped and each group's input and output channels swapped. On a
    2-core CPU (torch 2.13, batch 64, 16 channels, 32 x 32, channels-last) PyTorch's input-gradient
    kernel takes 2.1 ms for a dilated 3x3 depthwise conv and 3.6 ms for a dilated 5x5, the forward conv
    0.2 and 0.4 ms. The weight gradient is PyTorch's own. Written with differentiable ops, so double
    backward works.
    """

    @staticmethod
    def forward(ctx, x, weight, padding, dilation, groups):
        ctx.save_for_backward(x, weight)
        ctx.conv = padding, dilation, groups
        return nn.functional.conv2d(x, weight, None, 1, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        padding, dilation, groups = ctx.conv
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = nn.functional.conv2d(grad, _transposed_kernel(weight, groups), None, 1, padding, dilation, groups)
        if ctx.needs_input_grad[1]:
            grad_w = torch.nn.grad.conv2d_weight(x, weight.shape, grad, 1, padding, dilation, groups)
        return grad_x, grad_w, None, None, None


def _transposed_kernel(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """The kernel of the transposed conv: flipped in space, each group's in/out channels swapped."""
    c_out, c_in, kh, kw = weight.shape
    w = weight.flip(-2, -1).reshape(groups, c_out // groups, c_in, kh, kw).transpose(1, 2)
    return w.reshape(groups * c_in, c_out // groups, kh, kw)


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
    return nn.functional.batch_norm(z, bn.running_mean, bn.running_var, weight, None,
                                    bn.training, bn.momentum, bn.eps)


def _until_final_bn(op: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, nn.BatchNorm2d | None]:
    """(the input of the affine-free BN that `op` ends with, that BN), or (op(x), None)."""
    if isinstance(op, nn.BatchNorm2d) and op.weight is None and op.bias is None \
            and op.track_running_stats and op.momentum is not None:
        return x, op
    if isinstance(op, FactorizedReduce):
        return _until_final_bn(op.bn, op.features(x))
    if isinstance(op, nn.Sequential) and len(op):
        *head, last = op
        for m in head:
            x = m(x)
        return _until_final_bn(last, x)
    return op(x), None


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

