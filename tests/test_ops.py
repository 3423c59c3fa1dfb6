"""Behavioural tests of ops.py and supernet.py: every OPS entry runs forward and backward at both strides,
MixedOp never computes `none`, and the supernet registers its alphas and matches the official size."""

import math

import pytest
import torch
from torch import nn

from dartsnas.conv import fast, kernels
from dartsnas.conv import ops as ops_module
from dartsnas.conv.ops import OPS, FactorizedReduce
from dartsnas.conv.spaces import DARTS_OPS
from dartsnas.conv.supernet import MixedOp, Supernet

C = 6


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no_affine"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("size", [9, 8], ids=["odd", "even"])
def test_every_op_forward_backward(name, stride, affine, size):
    op = OPS[name](C, stride, affine)
    x = torch.randn(2, C, size, size, requires_grad=True)
    out = op(x)
    side = math.ceil(size / stride)
    assert out.shape == (2, C, side, side)
    assert torch.isfinite(out).all()
    # A random projection instead of a plain sum: BN makes d(sum)/d(conv weight) vanish, and a
    # nonzero gradient is what shows that a parameter is really on the forward path.
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    params = list(op.parameters())
    for p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    if name == "none":
        assert torch.count_nonzero(out) == 0
        assert torch.count_nonzero(x.grad) == 0  # its output is a constant zero
        assert params == []
    else:
        assert torch.count_nonzero(x.grad) > 0
        for p in params:
            assert torch.count_nonzero(p.grad) > 0
    if not affine:  # during search no op may hold a learnable BN scale/shift
        for m in op.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert m.weight is None and m.bias is None


def test_ops_registry_contains_the_darts_space():
    assert set(DARTS_OPS) <= set(OPS)


@pytest.mark.parametrize("size", [9, 8])
def test_none_output_is_exactly_zero(size):
    x = 1e6 * torch.randn(2, C, size, size)
    for stride in (1, 2):
        out = OPS["none"](C, stride, False)(x)
        assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("size", [9, 8])
def test_skip_connect_stride_1_is_identity(size):
    x = torch.randn(2, C, size, size, requires_grad=True)
    out = OPS["skip_connect"](C, 1, True)(x)
    assert torch.equal(out, x)
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_skip_connect_stride_2_is_factorized_reduce():
    assert isinstance(OPS["skip_connect"](C, 2, True), FactorizedReduce)


@pytest.mark.parametrize("c_out", [3, 5])
def test_factorized_reduce_rejects_odd_channels(c_out):
    with pytest.raises(ValueError, match="even"):
        FactorizedReduce(4, c_out)
    with pytest.raises(ValueError, match="even"):
        OPS["skip_connect"](c_out, 2, True)


def test_factorized_reduce_sees_both_pixel_phases():
    # Offset branch: a change at pixel (1, 1) (skipped by the plain stride-2 conv) must reach the output.
    fr = FactorizedReduce(2, 4, affine=False).eval()
    x = torch.zeros(1, 2, 4, 4)
    y = x.clone()
    y[:, :, 1, 1] = 1.0
    assert not torch.allclose(fr(x), fr(y))


# ---------------------------------------------------------------------------------------------------
# MixedOp


def _boom(*args, **kwargs):
    raise AssertionError("the 'none' op was built or run")


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("none_logit", [0.0, 20.0], ids=["uniform", "none_dominant"])
def test_mixed_op_is_the_weighted_sum_without_none(monkeypatch, stride, none_logit):
    monkeypatch.setitem(OPS, "none", _boom)  # MixedOp must neither build ...
    monkeypatch.setattr(ops_module.Zero, "forward", _boom)  # ... nor run the zero op
    c = 4
    mixed = MixedOp(c, stride, DARTS_OPS)
    assert len(mixed.ops) == len(DARTS_OPS) - 1
    assert DARTS_OPS.index("none") not in mixed.index
    assert not any(isinstance(m, ops_module.Zero) for m in mixed.modules())

    logits = torch.randn(len(DARTS_OPS))
    logits[DARTS_OPS.index("none")] = none_logit
    w = logits.softmax(-1)
    x = torch.randn(2, c, 7, 7)
    out = mixed(x, w)

    # Reference: the registry's own ops (each with its leading ReLU) carrying the same parameters.
    by_name = dict(zip([DARTS_OPS[k] for k in mixed.index], mixed.ops))
    expected = torch.zeros(2, c, math.ceil(7 / stride), math.ceil(7 / stride))  # 'none' adds w * 0
    for k, name in enumerate(DARTS_OPS):
        if name != "none":
            ref = OPS[name](c, stride, False)
            if "pool" in name:
                ref = nn.Sequential(ref, nn.BatchNorm2d(c, affine=False))
            ref.load_state_dict(by_name[name].state_dict())
            expected = expected + w[k] * ref(x)
    torch.testing.assert_close(out, expected)
    if none_logit > 0:
        assert w[DARTS_OPS.index("none")] > 0.99
        assert out.abs().max() < 1e-3  # the 'none' share scales everything else down


def test_mixed_op_gradient_reaches_none_weight_through_the_softmax():
    # 'none' is skipped, yet its logit still gets a gradient through the softmax normalisation.
    mixed = MixedOp(4, 1, DARTS_OPS)
    alphas = torch.zeros(len(DARTS_OPS), requires_grad=True)
    out = mixed(torch.randn(2, 4, 5, 5), alphas.softmax(-1))
    (out * torch.randn_like(out)).sum().backward()
    assert alphas.grad[DARTS_OPS.index("none")] != 0


def test_mixed_op_pools_get_a_non_affine_bn():
    mixed = MixedOp(4, 1, DARTS_OPS)
    for k, op in zip(mixed.index, mixed.ops):
        if "pool" in DARTS_OPS[k]:
            assert isinstance(op[-1], nn.BatchNorm2d) and op[-1].weight is None


# ---------------------------------------------------------------------------------------------------
# Supernet


def test_supernet_forward_gives_logits_and_alpha_gradients():
    model = Supernet(3, 10, init_channels=4, layers=3, nodes=2)
    x = torch.randn(2, 3, 8, 8)
    logits = model(x)
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
    logits.sum().backward()
    for a in model.arch_parameters():
        assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


def test_supernet_alphas_are_registered_parameters():
    model = Supernet(3, 10, init_channels=2, layers=3)  # default nodes=4: 2+3+4+5 = 14 edges
    named = dict(model.named_parameters())
    for kind in ("normal", "reduce"):
        a = named[f"alphas.{kind}"]
        assert isinstance(a, nn.Parameter) and a.requires_grad
        assert a.shape == (14, len(DARTS_OPS))
        assert 0.5e-3 < a.std().item() < 2e-3  # 1e-3 * N(0, 1), as the paper
        assert abs(a.mean().item()) < 5e-4
        assert f"alphas.{kind}" in model.state_dict()
    assert {id(p) for p in model.arch_parameters()} == {id(named["alphas.normal"]), id(named["alphas.reduce"])}
    weight_ids = {id(p) for p in model.weights()}
    assert not weight_ids & {id(p) for p in model.arch_parameters()}
    assert len(weight_ids) + 2 == len(named)


def test_supernet_alphas_survive_a_state_dict_round_trip():
    a = Supernet(3, 10, init_channels=2, layers=3, nodes=2)
    b = Supernet(3, 10, init_channels=2, layers=3, nodes=2)
    with torch.no_grad():
        a.alphas["normal"].fill_(0.5)
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.alphas["normal"], a.alphas["normal"])
    assert torch.equal(b.alphas["reduce"], a.alphas["reduce"])


def test_supernet_probs_are_the_softmax_of_alphas():
    model = Supernet(3, 10, init_channels=2, layers=3, nodes=2)
    probs = model.probs()
    for kind, a in model.alphas.items():
        assert probs[kind].shape == (5, len(DARTS_OPS))
        torch.testing.assert_close(probs[kind].sum(-1), torch.ones(5))
        torch.testing.assert_close(probs[kind], a.softmax(-1))
        assert not probs[kind].requires_grad


def test_supernet_size_matches_the_official_search_network():
    # quark0/darts train_search.py prints "param size = 1.930618MB" for this network (C=16, 8 layers,
    # 4 nodes, the 8 DARTS ops); its count leaves out the alphas, as weights() does.
    model = Supernet(3, 10)
    assert sum(p.numel() for p in model.weights()) == 1_930_618
    assert sum(a.numel() for a in model.arch_parameters()) == 2 * 14 * 8


@pytest.mark.parametrize("size", [8, 9, 11])
@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("groups", [1, C])
def test_strided_dilated_conv_equals_the_native_conv(size, kernel, groups):
    """ops.Conv2d computes stride = dilation = 2 on the subsampled input; same outputs and gradients."""
    conv = kernels.Conv2d(C, C, kernel, stride=2, padding=kernel - 1, dilation=2, groups=groups, bias=True).double()
    x = torch.randn(2, C, size, size, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, C, math.ceil(size / 2), math.ceil(size / 2), dtype=torch.float64)
    native = nn.functional.conv2d(x, conv.weight, conv.bias, 2, kernel - 1, 2, groups)
    out = conv(x)
    assert out.shape == native.shape
    torch.testing.assert_close(out, native, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(out, [x, conv.weight, conv.bias], g)
    expected = torch.autograd.grad(native, [x, conv.weight, conv.bias], g)
    for a, b in zip(grads, expected):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_strided_dilated_conv_takes_the_subsampled_path(monkeypatch):
    """The fast path is really taken for dil_conv at stride 2 (a dilated conv call would show it)."""
    calls = []
    real = nn.functional.conv2d
    monkeypatch.setattr(
        nn.functional,
        "conv2d",
        lambda *a, **k: calls.append(a[5] if len(a) > 5 else k.get("dilation", 1)) or real(*a, **k),
    )
    op = OPS["dil_conv_3x3"](C, 2, False)
    op(torch.randn(2, C, 8, 8))
    assert len(calls) == 2 and all(d in (1, (1, 1)) for d in calls)  # depthwise and pointwise, undilated


@pytest.mark.parametrize(
    "c_out, kernel, dilation, groups",
    [  # gradgradcheck: the 1x1 case is the quick one
        *(pytest.param(*case, marks=pytest.mark.slow) for case in [(C, 3, 2, C), (C, 5, 2, C), (C, 3, 1, C)]),
        (4, 1, 1, 1),
        *(pytest.param(*case, marks=pytest.mark.slow) for case in [(C, (1, 7), 1, 1), (9, 3, 2, 3)]),
    ],
)
def test_size_keeping_conv_input_gradient_as_a_conv(c_out, kernel, dilation, groups):
    """_SameConv's backward (input gradient as a conv with the transposed kernel) against finite
    differences, twice over (the second-order tests differentiate it again), and its values against
    PyTorch's conv: depthwise dilated and not, dense 1x1, asymmetric, grouped with more outputs."""
    conv = kernels.Conv2d(C, c_out, kernel, padding=0, dilation=dilation, groups=groups, bias=False).double()
    conv.padding = tuple(dilation * (k - 1) // 2 for k in conv.kernel_size)
    assert conv.keeps_size()
    x = torch.randn(2, C, 7, 8, dtype=torch.float64, requires_grad=True)

    def same(x, w):
        return kernels._SameConv.apply(x, w, conv.padding, conv.dilation, groups)

    torch.testing.assert_close(
        same(x, conv.weight),
        nn.functional.conv2d(x, conv.weight, None, 1, conv.padding, conv.dilation, groups),
        rtol=1e-12,
        atol=1e-12,
    )
    assert torch.autograd.gradcheck(same, (x, conv.weight))
    assert torch.autograd.gradgradcheck(same, (x, conv.weight))


def test_dilated_size_keeping_convs_take_the_transposed_backward_on_cpu(monkeypatch):
    """dil_conv at stride 1 on CPU goes through _SameConv; undilated convs, autocast and stride 2 do not."""
    calls = []
    real = kernels._SameConv.apply
    monkeypatch.setattr(kernels._SameConv, "apply", lambda *a: calls.append(a[3]) or real(*a))
    x = torch.randn(2, C, 8, 8)
    OPS["dil_conv_5x5"](C, 1, False)(x)
    assert calls == [(2, 2)]
    OPS["sep_conv_3x3"](C, 1, False)(x)
    OPS["dil_conv_3x3"](C, 2, False)(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        OPS["dil_conv_3x3"](C, 1, False)(x)
    assert calls == [(2, 2)]


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", [n for n in OPS if n != "none"])
def test_every_op_gradient_against_finite_differences(name, stride):
    """Autograd through every op (in-place inner ReLU, subsampled strided dilated conv included)
    equals central finite differences in float64."""
    op = OPS[name](4, stride, False).double()
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    params = [p.detach().requires_grad_() for p in op.parameters()]
    names = [n for n, _ in op.named_parameters()]

    def f(x, *ps):
        return torch.func.functional_call(op, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", [n for n in OPS if n != "none"])
def test_scaled_equals_weight_times_op(name, stride, train):
    """ops.scaled folds the weight into the final batch norm: same value, same gradients (input,
    parameters, weight) and the same running statistics as w * op(x), in float64."""

    def build():
        torch.manual_seed(1)
        op = OPS[name](4, stride, False)
        if "pool" in name:
            op = nn.Sequential(op, nn.BatchNorm2d(4, affine=False))
        return op.double().train(train)

    a, b = build(), build()
    for m in (a, b):  # non-trivial running statistics, so that eval mode uses them
        for buf_name, buf in m.named_buffers():
            if buf_name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
            elif buf_name.endswith("running_mean"):
                buf.normal_()
    for (_, u), (_, v) in zip(a.named_buffers(), b.named_buffers()):
        v.copy_(u)
    x = torch.randn(3, 4, 7, 7, dtype=torch.float64, requires_grad=True)
    w = torch.tensor(0.37, dtype=torch.float64, requires_grad=True)
    out, ref = fast.scaled(a, x, w), w * b(x)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, [x, w, *a.parameters()], g)
    want = torch.autograd.grad(ref, [x, w, *b.parameters()], g)
    for u, v in zip(got, want):
        torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-12)
    for (n, u), (_, v) in zip(a.named_buffers(), b.named_buffers()):
        assert torch.equal(u, v) if u.dtype == torch.long else torch.allclose(u, v, rtol=1e-12, atol=1e-12), n


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("name", [n for n in OPS if n != "none"])
def test_channels_last_input_gets_a_channels_last_gradient(name, stride):
    """A gradient in another memory format than the activations makes every following CPU kernel of
    the backward pass take a slow strided path (ops.subsample): each op keeps the input's format."""
    op = OPS[name](8, stride, False).to(memory_format=torch.channels_last)
    x = torch.randn(4, 8, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = op(x)
    if y.grad_fn is None:  # the identity: no backward at all
        return
    formats = []  # of every 4-D gradient flowing through the backward graph: channels innermost?

    def check(grad_inputs, grad_outputs):
        formats.extend(g.stride(1) == 1 for g in (*grad_inputs, *grad_outputs) if g is not None and g.dim() == 4)

    nodes, todo = set(), [y.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or node in nodes:
            continue
        nodes.add(node)
        node.register_hook(check)
        todo.extend(n for n, _ in node.next_functions)
    torch.autograd.grad(y, x, torch.randn_like(y).contiguous(memory_format=torch.channels_last))
    assert formats and all(formats)
