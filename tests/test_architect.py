"""The architecture step against ground truth: exact autograd through the virtual step.

The finite-difference Hessian-vector product (Eq. 8) is a central difference with step
eps = r / ||v|| along v, i.e. a step of length r in weight space. For a smooth loss its error is
O(r^2): relative error ~ c * r^2, so going from r = 1e-2 to 1e-3 must shrink it about 100-fold.
A ReLU/max-pool network is only piecewise smooth: a step that crosses a kink changes the gradient
by a jump, so agreement there is only expected for steps small enough to cross none.
"""

import pytest
import torch
from torch import nn

from dartsnas.core.architect import Architect
from dartsnas.conv.supernet import Supernet

SMOOTH_OPS = ["none", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_3x3"]


def _setup(ops=None, seed=0):
    torch.manual_seed(seed)
    model = Supernet(1, 3, init_channels=4, layers=3, nodes=2, ops=ops).double()
    with torch.no_grad():  # away from the uniform start, so every term of the gradient matters
        for a in model.arch_parameters():
            a.normal_()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.weights(), 0.1, momentum=0.9, weight_decay=3e-4)
    x_train, x_val = torch.randn(2, 8, 1, 8, 8, dtype=torch.float64)
    y_train, y_val = torch.randint(0, 3, (2, 8))
    criterion(model(x_train), y_train).backward()  # one real step: momentum buffers now exist
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model, criterion, optimizer, (x_train, y_train, x_val, y_val)


def _exact_hypergradient(architect, optimizer, x_train, y_train, x_val, y_val):
    """d/d alpha L_val(w - xi (momentum buf + grad_w L_train(w, alpha) + wd w), alpha), by double backward."""
    group = optimizer.param_groups[0]
    named = dict(architect.model.named_weights())
    grads = torch.autograd.grad(architect._loss(named, x_train, y_train), list(named.values()), create_graph=True)
    unrolled = {
        n: w - group["lr"] * (group["momentum"] * optimizer.state[w]["momentum_buffer"] + g + group["weight_decay"] * w)
        for (n, w), g in zip(named.items(), grads)
    }
    return _flat(torch.autograd.grad(architect._loss(unrolled, x_val, y_val), architect.alphas))


def _flat(tensors):
    return torch.cat([t.flatten() for t in tensors])


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.slow  # (the same check with the paper's ops, below, is quick)
def test_finite_differences_match_exact_second_order_on_smooth_supernet(monkeypatch):
    # SiLU for ReLU and no max pool: a smooth loss, where Eq. 8 has its textbook O(r^2) error.
    # (nn.ReLU modules and the cells' shared ReLU both call nn.functional.relu.)
    monkeypatch.setattr(nn.functional, "relu", lambda x, inplace=False: nn.functional.silu(x))
    model, criterion, optimizer, batch = _setup(SMOOTH_OPS)
    architect = Architect(model, criterion, unrolled=True)
    exact = _exact_hypergradient(architect, optimizer, *batch)
    errors = {r: _rel(_flat(architect.second_order_grads(*batch, optimizer, r=r)[0]), exact) for r in (1e-2, 1e-3)}
    # Measured 5.8e-5 at the paper's r = 0.01; allow 4x for platform differences.
    assert errors[1e-2] < 2.5e-4
    assert 30 < errors[1e-2] / errors[1e-3] < 300  # O(r^2): a decade of r is two decades of error
    first_order = _flat(torch.autograd.grad(architect._loss({}, batch[2], batch[3]), architect.alphas))
    assert _rel(first_order, exact) > 100 * errors[1e-2]  # the test can tell first from second order


def test_finite_differences_match_exact_second_order_with_paper_ops():
    # ReLU and max pool: piecewise smooth; with a step that crosses no kink, central differences
    # of a piecewise-quadratic-in-direction gradient are exact up to rounding (measured 6e-11).
    model, criterion, optimizer, batch = _setup()
    architect = Architect(model, criterion, unrolled=True)
    exact = _exact_hypergradient(architect, optimizer, *batch)
    fd = _flat(architect.second_order_grads(*batch, optimizer, r=1e-6)[0])
    assert _rel(fd, exact) < 1e-7


def test_virtual_step_is_the_optimizers_next_step():
    model, criterion, optimizer, (x_train, y_train, _, _) = _setup()
    architect = Architect(model, criterion, unrolled=True)
    unrolled = architect.virtual_step(x_train, y_train, optimizer)
    # The real step on the same batch, with BN buffers untouched by the virtual one.
    criterion(model(x_train), y_train).backward()
    optimizer.step()
    for name, w in model.named_weights():
        torch.testing.assert_close(unrolled[name], w, rtol=1e-12, atol=1e-12)


def test_virtual_step_ignores_nesterov_as_the_official_code():
    # With Nesterov the real step is grad + momentum * (new buffer); the virtual step keeps the plain
    # momentum * (old buffer) + grad of quark0/darts's _compute_unrolled_model, so the two differ.
    model, criterion, optimizer, (x_train, y_train, _, _) = _setup()
    for group in optimizer.param_groups:
        group["nesterov"] = True
    architect = Architect(model, criterion, unrolled=True)
    unrolled = architect.virtual_step(x_train, y_train, optimizer)
    group, named = optimizer.param_groups[0], dict(model.named_weights())
    grads = torch.autograd.grad(architect._loss(named, x_train, y_train), list(named.values()))
    with torch.no_grad():
        for (name, w), g in zip(named.items(), grads):
            plain = group["momentum"] * optimizer.state[w]["momentum_buffer"] + g + group["weight_decay"] * w
            torch.testing.assert_close(unrolled[name], w - group["lr"] * plain, rtol=1e-12, atol=1e-12)
    criterion(model(x_train), y_train).backward()
    optimizer.step()  # the real Nesterov step lands elsewhere
    assert any(not torch.allclose(unrolled[n], w) for n, w in model.named_weights())


@pytest.mark.parametrize("unrolled", [False, True])
def test_architecture_step_moves_alphas_only(unrolled):
    model, criterion, optimizer, batch = _setup()
    architect = Architect(model, criterion, unrolled=unrolled)
    weights = {n: p.detach().clone() for n, p in model.named_weights()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    alphas = [a.detach().clone() for a in model.arch_parameters()]
    loss = architect.step(*batch, optimizer)
    assert loss.ndim == 0 and not loss.requires_grad
    for n, p in model.named_weights():
        assert torch.equal(p, weights[n]), n
    for n, b in model.named_buffers():  # probe passes never move BN running statistics
        assert torch.equal(b, buffers[n]), n
    assert all(not torch.equal(a, b) for a, b in zip(model.arch_parameters(), alphas))
    assert all(a.grad is None for a in model.arch_parameters())


def test_first_order_step_follows_validation_gradient():
    model, criterion, optimizer, (x_train, y_train, x_val, y_val) = _setup()
    architect = Architect(model, criterion, arch_lr=1e-3, arch_weight_decay=0.0)
    grads = torch.autograd.grad(criterion(model(x_val), y_val), model.arch_parameters())
    before = [a.detach().clone() for a in model.arch_parameters()]
    architect.step(x_train, y_train, x_val, y_val, optimizer)
    # Adam's first step: bias-corrected m / (sqrt(v) + eps) = g / (|g| + 1e-8).
    for a, b, g in zip(model.arch_parameters(), before, grads):
        torch.testing.assert_close(a.detach(), b - 1e-3 * g / (g.abs() + 1e-8), rtol=0, atol=1e-12)
