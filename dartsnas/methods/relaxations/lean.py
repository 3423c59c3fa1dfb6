"""lean: the exact relaxation's weighted sum and gradients, but no candidate keeps its activations for
backward; each is recomputed there, one at a time, so memory hardly grows with the candidate set (activation
checkpointing per mixed op, with batch-norm statistics moved once). The project's own formulation of the
paper's method (tested against exact mode and the plain network in float64, first and second order).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

from ...core.device import memory_format
from .base import Relaxation


class Lean(Relaxation):
    name = "lean"
    # Each op's recomputation and its gradients live for a while in backward: they dominate what is kept.
    memory_headroom = 2.5

    def edge(self, mixed, x, x_relu, mix, choice=None, shared_outputs=None) -> torch.Tensor:
        if choice is not None or not torch.is_grad_enabled():  # nothing is kept for backward anyway
            return super().edge(mixed, x, x_relu, mix, choice, shared_outputs)
        if torch.compiler.is_compiling():
            # LeanMix's hand-written backward cannot be traced. The compiler recomputes instead: the
            # candidates' sum is a checkpointed region of the compiled graph, whose activations are not
            # saved but recomputed in backward, one edge at a time. The shared parameter-free candidates
            # stay outside it, computed once per state and kept, as in exact mode.
            out = checkpoint(mixed.candidates_sum, x, x_relu, mix, use_reentrant=False) if mixed.ops else None
            return mixed.add_shared(out, x, mix, shared_outputs)
        # The parameters as they are now (functional_call may have swapped in others).
        params = [p for op in mixed.ops for p in op.parameters()]
        return LeanMix.apply(x, x_relu, mix, mixed, shared_outputs, *params)


class LeanMix(torch.autograd.Function):
    """The mixed op's weighted sum with its backward recomputing one candidate at a time.

    Forward runs without a graph (batch-norm running statistics move here, once, as in exact mode);
    backward re-runs each op on the saved input with the saved parameters, statistics tracking off (so
    they do not move twice), and takes
    d/dmix_k = <grad_out, op_k(x)>,  d/dx and d/dparams by that op's own backward with grad_out * mix_k.
    """

    @staticmethod
    def forward(ctx, x, x_relu, mix, mixed, shared_outputs, *params):
        ctx.mixed, ctx.training = mixed, mixed.training
        # The state's shared modules, not their outputs: those are recomputed like every other op's.
        ctx.shared_ops = None if shared_outputs is None else shared_outputs.shared
        ctx.save_for_backward(x, x_relu, mix, *params)
        with torch.no_grad():
            return mixed.weighted_sum(x, x_relu, mix, shared_outputs)

    @staticmethod
    def backward(ctx, grad_out):
        x, x_relu, mix, *params = ctx.saved_tensors
        mixed = ctx.mixed
        # A slice of the concatenated cell output's gradient is not contiguous; kernels (batch norm's
        # backward above all) run far slower on such a view than on one dense copy.
        grad_out = grad_out.contiguous(memory_format=memory_format(x))
        need_x, need_relu, need_mix = ctx.needs_input_grad[:3]
        need_params = ctx.needs_input_grad[5:]
        grad_in = {False: None, True: None}  # input gradients, of x and of relu(x), summed over ops
        grad_mix = torch.zeros_like(mix) if need_mix else None
        grad_params, start = [], 0
        was_training = mixed.training
        if was_training != ctx.training:
            mixed.train(ctx.training)
        shared_norms = (
            [] if ctx.shared_ops is None else [m for m in ctx.shared_ops.modules() if isinstance(m, nn.BatchNorm2d)]
        )
        norms = [m for m in mixed.norms + shared_norms if m.track_running_stats]
        for m in norms:
            m.track_running_stats = False  # batch statistics as in forward, running ones untouched
        try:
            for k, op, relu_first in zip(mixed.index, mixed.ops, mixed.takes_relu):
                module_params = list(op.parameters())
                own = params[start : start + len(module_params)]
                wanted = need_params[start : start + len(module_params)]
                start += len(module_params)
                source, need_in = (x_relu, need_relu) if relu_first else (x, need_x)
                with torch.enable_grad():
                    inp = source.detach().requires_grad_(need_in)
                    if all(p.data_ptr() == q.data_ptr() for p, q in zip(own, module_params)):
                        # The saved parameters are the op's own (or detached views of them): call it.
                        p_k, y = module_params, op(inp)
                    else:  # others (the virtual step's w', the finite-difference probes)
                        p_k = [p.detach().requires_grad_(w) for p, w in zip(own, wanted)]
                        names = [n for n, _ in op.named_parameters()]
                        y = functional_call(op, dict(zip(names, p_k)), (inp,))
                if need_mix:
                    grad_mix[k] = _dot(grad_out, y.detach())
                inputs = ([inp] if need_in else []) + [p for p, w in zip(p_k, wanted) if w]
                # The op's backward is linear in its output gradient: run it on grad_out and scale
                # the results by mix_k, instead of scaling grad_out (one full-size product less per op).
                grads = list(torch.autograd.grad(y, inputs, grad_out)) if inputs else []
                if need_in:
                    grad_in[relu_first] = _add_scaled(grad_in[relu_first], grads.pop(0), mix[k])
                grad_params.extend(grads.pop(0) * mix[k] if w else None for w in wanted)
            for k, name in mixed.shared:  # parameter-free, on x
                with torch.enable_grad():
                    inp = x.detach().requires_grad_(need_x)
                    y = ctx.shared_ops.ops[name](inp)
                if need_mix:
                    grad_mix[k] = _dot(grad_out, y.detach())
                if need_x:
                    grad_in[False] = _add_scaled(grad_in[False], torch.autograd.grad(y, inp, grad_out)[0], mix[k])
        finally:
            if was_training != ctx.training:
                mixed.train(was_training)
            for m in norms:
                m.track_running_stats = True
        return (grad_in[False], grad_in[True], grad_mix, None, None, *grad_params)


def _add_scaled(acc: torch.Tensor | None, g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """acc + w * g, in place; the first term starts the sum (no zero-filled buffer)."""
    return g * w if acc is None else acc.addcmul_(g, w)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a, b> over all elements without a temporary (channels-last tensors are flat in NHWC order)."""
    if a.dim() == 4 and all(t.is_contiguous(memory_format=torch.channels_last) for t in (a, b)):
        a, b = a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)
    return torch.dot(a.reshape(-1), b.reshape(-1))


UNIT = Lean
