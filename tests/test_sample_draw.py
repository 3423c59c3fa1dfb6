"""Sample mode (GDAS) in the architecture step: one draw per step, shared by all its passes.

The second-order step (Eq. 7-8) differentiates and differences several passes: the training pass of
the virtual step, the validation pass at w', and the probes at w +- eps v. Were each to draw its own
architecture, the central difference would subtract the gradients of two different networks.
"""

import torch
from torch import nn

from dartsnas.core.architect import Architect
from dartsnas.conv.supernet import Supernet


def _model(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    model = Supernet(1, 3, init_channels=4, layers=3, nodes=2, mixed_op="sample").to(dtype)
    model.generator = torch.Generator().manual_seed(seed)
    return model


def _record_choices(model):
    """A list that gets, per forward pass of `model`, the tuple of ops drawn by every cell."""
    passes, current = [], []

    def on_cell(cell, args):
        current.append(tuple(args[4]))  # SearchCell.forward(s0, s1, mix, edge_probs, choices)
        if len(current) == len(model.cells):
            passes.append(tuple(current))
            current.clear()

    for cell in model.cells:
        cell.register_forward_pre_hook(on_cell)
    return passes


def test_second_order_step_runs_all_its_passes_on_one_draw():
    model = _model()
    passes = _record_choices(model)
    optimizer = torch.optim.SGD(model.weights(), 0.1, momentum=0.9)
    architect = Architect(model, nn.CrossEntropyLoss(), unrolled=True)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 3, (4,))
    architect.step(x, y, x, y, optimizer)
    # training pass (virtual step), validation pass at w', probe at w + eps v, probe at w - eps v
    assert len(passes) == 4
    assert len(set(passes)) == 1, passes
    first = passes[0]
    model(x)  # the weight step, outside: a fresh draw
    architect.step(x, y, x, y, optimizer)  # the next architecture step: a fresh draw, held again
    assert len(passes) == 9 and len(set(passes[5:])) == 1
    assert len({first, passes[4], passes[5]}) == 3  # 14 edges of 8 ops: a repeat would be a miracle


def test_first_order_step_draws_once_as_a_plain_forward():
    # First order has one pass: holding the draw changes nothing, the generator moves as before.
    model = _model()
    state = model.generator.get_state()
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 3, (4,))
    plain = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), model.arch_parameters())
    after_plain = model.generator.get_state()
    model.generator.set_state(state)
    architect = Architect(model, nn.CrossEntropyLoss())
    grads, _ = architect.grads(x, y, x, y, torch.optim.SGD(model.weights(), 0.1))
    assert torch.equal(model.generator.get_state(), after_plain)
    for a, b in zip(grads, plain):
        assert torch.equal(a, b)


def test_second_order_sample_step_is_the_exact_hypergradient_of_its_draw():
    # Under one draw the network is a fixed (piecewise smooth) function of (w, alpha): the finite
    # differences must then agree with double backward through the virtual step, as in exact mode
    # (test_architect.py). With a draw per pass they are off by orders of magnitude.
    model = _model(dtype=torch.float64)
    with torch.no_grad():
        for a in model.arch_parameters():
            a.normal_()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.weights(), 0.1, momentum=0.9, weight_decay=3e-4)
    x_train, x_val = torch.randn(2, 8, 1, 8, 8, dtype=torch.float64)
    y_train, y_val = torch.randint(0, 3, (2, 8))
    criterion(model(x_train), y_train).backward()  # one real step: momentum buffers exist
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    architect = Architect(model, criterion, unrolled=True)
    group = optimizer.param_groups[0]
    with model.same_draw():
        named = dict(model.named_weights())
        grads = torch.autograd.grad(
            architect._loss(named, x_train, y_train),
            list(named.values()),
            create_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )  # undrawn ops
        # Weights of ops the real step did not draw have no momentum buffer (and no effect on this draw).
        unrolled = {
            n: w
            - group["lr"]
            * (group["momentum"] * optimizer.state.get(w, {}).get("momentum_buffer", 0) + g + group["weight_decay"] * w)
            for (n, w), g in zip(named.items(), grads)
        }
        exact = torch.autograd.grad(architect._loss(unrolled, x_val, y_val), architect.alphas)
        fd = architect.second_order_grads(x_train, y_train, x_val, y_val, optimizer, r=1e-6)[0]
    exact, fd = torch.cat([t.flatten() for t in exact]), torch.cat([t.flatten() for t in fd])
    assert exact.norm() > 0
    assert ((fd - exact).norm() / exact.norm()).item() < 1e-7


def test_same_draw_holds_nothing_for_deterministic_modes():
    torch.manual_seed(0)
    model = Supernet(1, 3, init_channels=4, layers=3, nodes=2, mixed_op="exact")
    x = torch.randn(2, 1, 8, 8)
    with model.same_draw():
        assert model.held_noise is None
        inside = model(x)
    assert torch.equal(inside, model(x))
