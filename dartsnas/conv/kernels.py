"""Faster formulations of convolutions the DARTS ops use: the same conv, computed another way.

Nothing here changes what an op computes (each formulation is tested equal to PyTorch's plain conv,
values and gradients); it changes which kernels PyTorch runs. Measured per formulation by
`dartsnas bench conv`; the figures are in docs/benchmarks.md.

- `Conv2d` with stride = dilation = d (dil_conv in reduction cells): output i reads inputs d*(i + t - q)
  for kernel taps t, so only x[..., ::d, ::d] is ever read, and the conv equals an undilated stride-1
  conv with padding q on that subsampled input: a quarter of the input, and a kernel PyTorch runs far
  faster than its dilated strided one. On every device.
- `Conv2d` dilated, stride 1, size-keeping (dil_conv in normal cells): the input gradient is the same
  conv of the output gradient with the kernel transposed (`_SameConv`), which PyTorch's CPU kernels
  compute several times faster than their dilated input-gradient kernel. On CPU only (CUDA keeps
  cuDNN's backward), outside autocast and torch.compile. Undilated convs keep PyTorch's backward:
  there the same formulation made the search step slower.
- `subsample`: x[:, :, ::step, ::step] as a one-pixel average pool, whose backward keeps the
  channels-last layout (a slice's backward scatters into a default-layout zero tensor, and every
  following CPU kernel then reads a mixed layout slowly).
"""

from __future__ import annotations

import torch
from torch import nn


def subsample(x: torch.Tensor, step) -> torch.Tensor:
    """x[:, :, ::step, ::step], as an average pool over one pixel (exact: a sum of one term divided by 1)."""
    return nn.functional.avg_pool2d(x, 1, step)


class Conv2d(nn.Conv2d):
    """nn.Conv2d with the two faster formulations above; same parameters and attributes, so exports
    and counters see an ordinary conv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.subsamples():
            return self.forward_subsampled(x, self.weight)
        if (
            self.dilation != (1, 1)
            and self.keeps_size()
            and x.device.type == "cpu"
            and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling()
        ):
            return _SameConv.apply(x, self.weight, self.padding, self.dilation, self.groups)
        return super().forward(x)

    def subsamples(self) -> bool:
        d = self.dilation
        return (
            d == self.stride
            and d != (1, 1)
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
            and all(p % k == 0 for p, k in zip(self.padding, d))
        )

    def keeps_size(self) -> bool:
        """Stride 1, zero padding of (kernel - 1) * dilation / 2 on each side, no bias."""
        return (
            self.stride == (1, 1)
            and self.bias is None
            and self.padding_mode == "zeros"
            and not isinstance(self.padding, str)
            and all(2 * p == d * (k - 1) for p, d, k in zip(self.padding, self.dilation, self.kernel_size))
        )

    def forward_subsampled(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        padding = tuple(p // k for p, k in zip(self.padding, self.dilation))
        return nn.functional.conv2d(subsample(x, self.dilation), weight, self.bias, 1, padding, 1, self.groups)


class _SameConv(torch.autograd.Function):
    """A stride-1, size-keeping conv whose input gradient is computed as a forward conv.

    Such a conv's input gradient is the same conv (same padding, dilation and groups) applied to the
    output gradient with the kernel flipped and each group's input and output channels swapped. The
    weight gradient is PyTorch's own. Written with differentiable ops, so double backward works.
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
