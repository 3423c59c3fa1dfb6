"""The architecture step of the bilevel problem (Sec. 2.3): alphas descend the validation loss.

First order: the plain gradient of L_val(w, alpha) with respect to alpha.
Second order (Eq. 7-8): the gradient of L_val(w', alpha) through one virtual SGD step
w' = w - xi * (momentum * buffer + grad_w L_train(w, alpha) + weight_decay * w), as the official code
(quark0/darts, cnn/architect.py `_compute_unrolled_model`) builds it: the weight optimiser's step with plain
momentum. With `nesterov: true` (NAS-Bench-201's search) the real step differs (it adds momentum * (the new
buffer) rather than the old one); the virtual step ignores Nesterov, as the official code does. It gives

    grad_alpha L_val(w', alpha) - xi * [grad_alpha L_train(w+, alpha) - grad_alpha L_train(w-, alpha)] / (2 eps)

with w+- = w +- eps * grad_w' L_val(w', alpha) and eps = 0.01 / ||grad_w' L_val(w', alpha)||.
All evaluations at other weights go through `torch.func.functional_call`: the model is never copied
or modified. These probe passes run on copies of the batch-norm buffers, so the running statistics
are moved only by the network's own training pass.

With `grad_clip`, the virtual step clips grad_w L_train to that norm as the real weight step does
(the official recurrent search does; its convolutional search does not). The clipping factor c is
taken as a constant of alpha, so the implicit term is scaled by it: xi * c * [...] / (2 eps).
`official_clip` instead follows the official rnn/architect.py `_backward_step_unrolled` to the letter:
it clips v = grad_w' L_val(w', alpha) to `grad_clip` too, and scales the implicit term by the uncapped
factor c = grad_clip / (||grad_w L_train|| + 1e-6), which exceeds 1 when the virtual step is not clipped.

All passes of one architecture step (the virtual step's, the validation pass, both probes) run inside
the model's `same_draw()`: a sampling relaxation draws one architecture for them all, otherwise the
finite difference of Eq. 8 would compare two different networks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call


class Searchable(nn.Module):
    """What the architecture step needs of a search network: its logits in `self.alphas` (a
    ParameterDict, set by the subclass) kept apart from every other parameter, the weights."""

    def named_weights(self) -> Iterator[tuple[str, nn.Parameter]]:
        """The network's own parameters: everything but the alphas."""
        return ((n, p) for n, p in self.named_parameters() if not n.startswith("alphas."))

    def weights(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_weights()]

    def arch_parameters(self) -> list[nn.Parameter]:
        return list(self.alphas.values())

    def same_draw(self) -> contextlib.AbstractContextManager:
        """A context in which every forward pass computes the same function of (weights, alphas).

        Networks that draw their architecture (a sampling relaxation) must reuse one draw inside it:
        the architecture step differentiates and differences several passes of one network (Eq. 7-8).
        Deterministic networks have nothing to hold: a no-op.
        """
        return contextlib.nullcontext()


class Architect:
    def __init__(
        self,
        model: nn.Module,
        criterion: nn.Module,
        arch_lr: float = 3e-4,
        arch_betas: tuple[float, float] = (0.5, 0.999),
        arch_weight_decay: float = 1e-3,
        unrolled: bool = False,
        grad_clip: float | None = None,
        official_clip: bool = False,
        penalty: Callable[[], torch.Tensor | None] | None = None,
        accept: Callable[[torch.Tensor, list[torch.Tensor]], bool] | None = None,
        average: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None,
    ):
        if official_clip and grad_clip is None:
            raise ValueError("official_clip clips to the network's gradient clip: pass grad_clip as well")
        self.model = model
        self.grad_clip = grad_clip
        self.official_clip = official_clip
        self.clip_scale = 1.0  # the clipping factor of the last virtual step, at most 1
        self.clip_coef = 1.0  # the same, uncapped: grad_clip / (norm + 1e-6) (official_clip's implicit scale)
        self.criterion = criterion
        self.unrolled = unrolled
        self.alphas = model.arch_parameters()
        # A regulariser of the alphas alone (the search units' penalties: beta-DARTS's beta decay), () -> scalar
        # or None: its gradient is added to the step's, whatever the order (it does not depend on the weights,
        # so Eq. 7 leaves it unchanged).
        self.penalty = penalty
        # Whether a step may apply its gradients, (loss, grads) -> bool: the run's guard against non-finite
        # values (core/guard.py), which may also only record them.
        self.accept = accept
        # Data-parallel runs (core/distributed.py): every gradient this step computes from the batch, averaged
        # over the ranks before it is used, so the step is the one a single process would take on the global
        # batch: the virtual step's weight gradient, v, and the alphas' gradient.
        self.average = average or (lambda grads: grads)
        self.optimizer = torch.optim.Adam(
            self.alphas, lr=arch_lr, betas=tuple(arch_betas), weight_decay=arch_weight_decay
        )

    def step(self, x_train, y_train, x_val, y_val, weight_optimizer: torch.optim.SGD) -> torch.Tensor:
        """One Adam step on the alphas; returns the validation loss it saw (detached, no host sync)."""
        grads, loss = self.grads(x_train, y_train, x_val, y_val, weight_optimizer)
        penalty = self.penalty() if self.penalty is not None else None
        if penalty is not None:
            grads = [g + p for g, p in zip(grads, _grad(penalty, self.alphas))]
        if self.accept is not None and not self.accept(loss, grads):
            return loss.detach()
        for a, g in zip(self.alphas, grads):
            a.grad = g
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    def grads(self, x_train, y_train, x_val, y_val, weight_optimizer) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The alphas' gradients of this step's order, and the validation loss."""
        with self.model.same_draw():  # one architecture for all passes of this step
            if self.unrolled:
                return self.second_order_grads(x_train, y_train, x_val, y_val, weight_optimizer)
            # The weights enter as constants: no op computes their gradients (autograd would skip
            # them anyway; the lean mode's recomputation can only tell from requires_grad).
            constants = {n: w.detach() for n, w in self.model.named_weights()}
            loss = self._loss(constants, x_val, y_val)
            return self.average(_grad(loss, self.alphas)), loss

    # -- second order ----------------------------------------------------------------------------

    def _loss(self, weights: dict[str, torch.Tensor], x, y) -> torch.Tensor:
        """The loss at the given weights (the model's own where absent), on copies of the BN buffers."""
        buffers = {n: b.clone() for n, b in self.model.named_buffers()}
        return self.criterion(functional_call(self.model, {**weights, **buffers}, (x,)), y)

    def virtual_step(self, x_train, y_train, weight_optimizer) -> dict[str, torch.Tensor]:
        """w' = w - xi * (momentum * buffer + grad + weight_decay * w): the optimiser's next step with plain
        momentum (Nesterov ignored, as the official code), as new tensors; the model is left as it is."""
        group = weight_optimizer.param_groups[0]
        xi, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
        named = dict(self.model.named_weights())
        grads = self.average(_grad(self._loss(named, x_train, y_train), list(named.values())))
        self.clip_scale = self.clip_coef = 1.0
        if self.grad_clip is not None:  # as nn.utils.clip_grad_norm_
            self.clip_coef = self.grad_clip / (_norm(grads) + 1e-6)
            self.clip_scale = self.clip_coef.clamp(max=1.0)
        unrolled = {}
        with torch.no_grad():
            for (name, w), g in zip(named.items(), grads):
                step = (g if self.grad_clip is None else self.clip_scale * g) + decay * w
                buf = weight_optimizer.state.get(w, {}).get("momentum_buffer")
                if buf is not None:
                    step = step + momentum * buf
                unrolled[name] = (w - xi * step).requires_grad_()
        return unrolled

    def second_order_grads(self, x_train, y_train, x_val, y_val, weight_optimizer, r: float = 1e-2):
        xi = weight_optimizer.param_groups[0]["lr"]
        unrolled = self.virtual_step(x_train, y_train, weight_optimizer)
        loss = self._loss(unrolled, x_val, y_val)
        grads = _grad(loss, self.alphas + list(unrolled.values()))
        alpha_grads, v = grads[: len(self.alphas)], self.average(grads[len(self.alphas) :])
        scale = self.clip_scale
        if self.official_clip:  # official rnn/architect.py: _clip(dtheta, clip), then eta * clip_coef
            v = [t * (self.grad_clip / (_norm(v) + 1e-6)).clamp(max=1.0) for t in v]
            scale = self.clip_coef
        implicit = self.hessian_vector_product(v, x_train, y_train, r)
        # Both terms are linear in the batch: averaging their difference once averages each.
        grads = self.average([g - xi * scale * h for g, h in zip(alpha_grads, implicit)])
        return grads, loss

    def hessian_vector_product(self, v, x, y, r: float = 1e-2):
        """(grad_alpha L_train(w + eps v) - grad_alpha L_train(w - eps v)) / (2 eps), Eq. 8."""
        eps = r / _norm(v)
        named = dict(self.model.named_weights())
        out = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                shifted = {n: w + (sign * eps) * d for (n, w), d in zip(named.items(), v)}
            out.append(_grad(self._loss(shifted, x, y), self.alphas))
        return [(gp - gn) / (2 * eps) for gp, gn in zip(*out)]


def _norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of all tensors together, as one vector (nn.utils.clip_grad_norm_'s total norm)."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


def _grad(loss: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Gradients, with zeros for inputs the loss does not use (ops a sampling relaxation did not draw;
    alphas of a cell kind whose edges all drew `none`)."""
    grads = torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)
    return list(grads)
