"""`lean` mixed ops: the same gradients and batch-norm statistics as `exact`, without keeping every
candidate's activations (ground truth: the exact weighted sum)."""

import pytest
import torch
from torch import nn

from dartsnas.core.architect import Architect
from dartsnas.conv.supernet import Supernet


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.fixture(autouse=True)
def _no_tf32():
    # cuDNN convolutions run in TF32 by default on recent GPUs: its 10-bit mantissa turns the fp32
    # reordering differences of the two modes into ~1e-4 differences (measured on an H200). The
    # comparison is of float32 arithmetic, so TF32 is switched off here, through torch's fp32_precision
    # settings (which replace allow_tf32; torch refuses to read back a mix of the two) and restored by
    # plain assignment: monkeypatch cannot undo these attributes, which the modules serve from __getattr__.
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = matmul.fp32_precision, conv.fp32_precision
    matmul.fp32_precision = conv.fp32_precision = "ieee"
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


def _pair(dtype, device="cpu"):
    models = []
    for mode in ("exact", "lean"):
        torch.manual_seed(0)
        model = Supernet(1, 3, init_channels=4, layers=3, nodes=2, mixed_op=mode).to(device, dtype)
        with torch.no_grad():
            for a in model.arch_parameters():
                a.normal_()
        models.append(model)
    return models


def _batch(dtype, device="cpu"):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 1, 8, 8, generator=g, dtype=dtype).to(device)
    y = torch.randint(0, 3, (2, 6), generator=g).to(device)
    return x[0], y[0], x[1], y[1]


def _all_grads(model):
    return [p.grad for p in model.parameters()]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_lean_training_pass_matches_exact(dtype, tol, device, op_buffers):
    exact, lean = _pair(dtype, device)
    x, y, _, _ = _batch(dtype, device)
    for model in (exact, lean):
        nn.functional.cross_entropy(model(x), y).backward()
    for (name, a), b in zip(exact.named_parameters(), _all_grads(lean)):
        assert ((a.grad - b).norm() / a.grad.norm().clamp_min(1e-30)).item() < tol, name
    a, b = op_buffers(exact), op_buffers(lean)  # BN statistics moved exactly once
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=tol, atol=tol), key
    a, b = (
        dict((n, t) for n, t in m.named_buffers() if ".edges." not in n and ".shared." not in n) for m in (exact, lean)
    )
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=tol, atol=tol), key


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("unrolled", [False, True])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_lean_architecture_step_matches_exact(unrolled, dtype, tol, device):
    results = []
    for model in _pair(dtype, device):
        optimizer = torch.optim.SGD(model.weights(), 0.1, momentum=0.9, weight_decay=3e-4)
        x, y, xv, yv = _batch(dtype, device)
        nn.functional.cross_entropy(model(x), y).backward()  # momentum buffers exist
        optimizer.step()
        architect = Architect(model, nn.CrossEntropyLoss(), unrolled=unrolled)
        if unrolled:
            grads, _ = architect.second_order_grads(x, y, xv, yv, optimizer)
        else:
            grads = torch.autograd.grad(architect._loss({}, xv, yv), architect.alphas)
        results.append(torch.cat([g.flatten() for g in grads]))
    exact, lean = results
    assert ((exact - lean).norm() / exact.norm()).item() < tol


def test_lean_is_plain_weighted_sum_without_grad():
    exact, lean = _pair(torch.float32)
    x = _batch(torch.float32)[0]
    exact.eval(), lean.eval()
    with torch.no_grad():
        torch.testing.assert_close(exact(x), lean(x))


def test_first_order_architecture_step_computes_no_weight_gradients(monkeypatch):
    """The weights are constants of a first-order architecture step: lean's recomputation must not
    compute their gradients (the costly part of a depthwise conv's backward)."""
    from dartsnas.methods.relaxations import lean as lean_module

    _, lean = _pair(torch.float32)
    x, y, xv, yv = _batch(torch.float32)
    seen = []
    real = lean_module.LeanMix.backward

    def spy(ctx, grad_out):
        seen.append(any(ctx.needs_input_grad[5:]))  # the parameters
        return real(ctx, grad_out)

    monkeypatch.setattr(lean_module.LeanMix, "backward", staticmethod(spy))
    optimizer = torch.optim.SGD(lean.weights(), lr=0.1)
    Architect(lean, nn.CrossEntropyLoss()).step(x, y, xv, yv, optimizer)
    assert seen and not any(seen)
    nn.functional.cross_entropy(lean(x), y).backward()  # a weight step does need them
    assert all(seen[len(seen) // 2 :])
