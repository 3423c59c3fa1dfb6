"""The fast supernet and architect against the plain formulation of the official code (conv/plain.py):
same weights and alphas in, the same loss, gradients and architecture steps out (float64).

This checks, in one comparison, everything supernet.py does differently from the plain network: no
`none`, shared ReLUs and pools, the mixing weight folded into batch norm, channels-last, the strided
dilated convs computed on a subsample, the lean mode's recomputation, the detached first-order step.
"""

import pytest
import torch

from dartsnas.core.architect import Architect
from dartsnas.conv.plain import Network, Step, candidate
from dartsnas.conv.spaces import DARTS_OPS, LARGE_OPS
from dartsnas.conv.supernet import Supernet


def _pair(mode="exact", ops=DARTS_OPS, seed=0):
    torch.manual_seed(seed)
    model = Supernet(3, 5, init_channels=4, layers=3, nodes=3, ops=ops, mixed_op=mode).double()
    reference = Network(3, 5, init_channels=4, layers=3, nodes=3, ops=ops).double()
    with torch.no_grad():
        for a in model.arch_parameters():
            a.normal_()  # away from uniform, so that every op's share matters
        for p, q in zip(
            list(model.weights()) + model.arch_parameters(),
            reference.weights() + list(reference.alphas.values()),
            strict=True,
        ):
            q.copy_(p)
    return model, reference


def _batches(n=2, size=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(size, 3, 12, 12, generator=g, dtype=torch.float64), torch.randint(0, 5, (size,), generator=g))
        for _ in range(n)
    ]


def _flat(tensors):
    return torch.cat([t.flatten() for t in tensors])


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("mode", ["exact", "lean"])
@pytest.mark.parametrize(
    "ops", [pytest.param(DARTS_OPS, id="8ops"), pytest.param(LARGE_OPS, id="12ops", marks=pytest.mark.slow)]
)
def test_supernet_computes_the_plain_network(mode, ops):
    model, reference = _pair(mode, ops)
    ((x, y),) = _batches(1)
    x = x.contiguous(memory_format=torch.channels_last)  # as the search feeds it
    losses, grads = [], []
    for net in (model, reference):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        params = list(net.weights()) + list(net.alphas.values())
        losses.append(loss)
        grads.append(_flat(torch.autograd.grad(loss, params)))
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-12, atol=0)
    assert _rel(grads[0], grads[1]) < 1e-10
    # Batch-norm statistics moved once, to the same values: the supernet keeps a state's pool norms once
    # for all its edges where the plain network has one per edge, so compare as sets of tensors.
    stats = [
        [b for n, b in net.named_buffers() if n.endswith(("running_mean", "running_var"))] for net in (model, reference)
    ]
    for ours, theirs in (stats, stats[::-1]):
        for b in ours:
            assert any(b.shape == c.shape and torch.allclose(b, c, rtol=1e-12, atol=1e-14) for c in theirs)
    assert not torch.allclose(stats[1][-1], torch.ones_like(stats[1][-1]))  # they did move


@pytest.mark.parametrize(
    "unrolled", [pytest.param(False, id="first"), pytest.param(True, id="second", marks=pytest.mark.slow)]
)
def test_architecture_step_is_the_official_one(unrolled):
    model, reference = _pair("exact")
    (x_train, y_train), (x_val, y_val) = _batches(2)
    step = Step(reference, unrolled=unrolled)
    architect = Architect(model, torch.nn.CrossEntropyLoss(), unrolled=unrolled)
    optimizer = torch.optim.SGD(model.weights(), 0.025, momentum=0.9, weight_decay=3e-4)
    for net, opt in ((model, optimizer), (reference, step.optimizer)):  # one weight step: momentum exists
        torch.nn.functional.cross_entropy(net(x_train), y_train).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    expected = _flat(step.arch_grads(x_train, y_train, x_val, y_val))
    got, _ = architect.grads(x_train, y_train, x_val, y_val, optimizer)
    assert _rel(_flat(got), expected) < 1e-12
    # The probes move the reference's weights in place and back: they are where they were.
    assert _rel(_flat(reference.weights()), _flat(model.weights())) < 1e-14


def test_reference_network_is_the_official_size():
    # quark0/darts train_search.py prints "param size = 1.930618MB" for the paper's search network.
    assert sum(p.numel() for p in Network(3, 10).weights()) == 1_930_618


def test_an_op_the_reference_cannot_build_is_named():
    with pytest.raises(ValueError, match="no op 'sep_conv_4x3'.*sep_conv_KxK"):
        candidate("sep_conv_4x3", 4, 1)


@pytest.mark.parametrize(
    "mode, unrolled", [("exact", False), ("lean", False), pytest.param("exact", True, marks=pytest.mark.slow)]
)
def test_a_short_search_moves_the_alphas_as_the_plain_step_does(mode, unrolled):
    """Three search steps of the search loop's own code (Searcher: its architect and weight step, with
    momentum, weight decay and clipping) against the plain Step, from the same weights: the same alphas
    and weights after them. Pins a short run's trajectory, not only one gradient."""
    from dartsnas.conv.config import SearchConfig
    from dartsnas.conv.search import Searcher, prepare_data

    config = SearchConfig(
        dataset="fake",
        data_options={"shape": [3, 12, 12], "size": 48, "num_classes": 5},
        init_channels=4,
        layers=3,
        nodes=3,
        batch_size=8,
        mixed_op=mode,
        unrolled=unrolled,
        device="cpu",
        progress=False,
        plot=False,
    ).validate()
    searcher = Searcher(config, prepare_data(config, torch.device("cpu")), torch.device("cpu"))
    model = searcher.model.double()  # the optimisers hold the same parameter objects
    reference = Network(3, 5, init_channels=4, layers=3, nodes=3).double()
    with torch.no_grad():
        for a in model.arch_parameters():
            a.normal_()
        for p, q in zip(
            list(model.weights()) + model.arch_parameters(),
            reference.weights() + list(reference.alphas.values()),
            strict=True,
        ):
            q.copy_(p)
    step = Step(reference, unrolled=unrolled)
    for x, y, x_val, y_val in [(*a, *b) for a, b in zip(_batches(3, seed=2), _batches(3, seed=3))]:
        searcher.architect.step(x, y, x_val, y_val, searcher.optimizer)
        searcher.weight_step(x.contiguous(memory_format=torch.channels_last), y)
        step(x, y, x_val, y_val)
    assert _rel(_flat(model.arch_parameters()), _flat(reference.alphas.values())) < 1e-9
    assert _rel(_flat(model.weights()), _flat(reference.weights())) < 1e-9
