"""The recurrent cells and language model against plain statements of the paper's equations, the derivation
against its rule, the evaluation model's size against the official code's, and the architecture step on a
tiny recurrent supernet against exact autograd through the virtual step (as tests/test_architect.py)."""

import pytest
import torch
from torch import nn

from dartsnas.core.architect import Architect
from dartsnas.recurrent.genotype import derive_recurrent
from dartsnas.recurrent.genotype import RECURRENT_OPS, RECURRENT_PUBLISHED, RecurrentGenotype, recurrent_edge_names
from dartsnas.recurrent.model import ACTIVATIONS, GenotypeCell, SearchCell, SearchModel, Segment, evaluation_model

SMOOTH_OPS = ["none", "tanh", "sigmoid", "identity"]


def count(model):
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------------------------ cells


def _reference_search_step(cell, x, h_prev, probs):
    """The search cell's step written out term by term (the official loop over ops), without batch norm."""
    xh = torch.cat([x, h_prev], -1)
    c0, h0 = (xh @ cell.w0).split(cell.nhid, -1)
    states = [h_prev + torch.sigmoid(c0) * (torch.tanh(h0) - h_prev)]
    offset = 0
    for i in range(cell.nodes):
        s = torch.zeros_like(h_prev)
        for j, prev in enumerate(states):
            c, h = (prev @ cell.ws[i]).split(cell.nhid, -1)
            for k, op in enumerate(cell.ops):
                if op != "none":
                    s = s + probs[offset + j, k] * (prev + torch.sigmoid(c) * (ACTIVATIONS[op](h) - prev))
        states.append(s)
        offset += i + 1
    return sum(states[1:]) / cell.nodes


def test_search_cell_mixes_every_predecessor_and_op():
    torch.manual_seed(0)
    cell = SearchCell(5, 5, nodes=4, batch_norm=False).double()
    probs = torch.randn(10, len(RECURRENT_OPS), dtype=torch.float64).softmax(-1)
    x, h = torch.randn(2, 3, 5, dtype=torch.float64)
    torch.testing.assert_close(cell.step(x, h, None, None, probs), _reference_search_step(cell, x, h, probs))


def test_one_hot_search_cell_is_the_genotype_cell():
    # Probabilities one-hot on a genotype's edges turn the search cell into that genotype's cell.
    torch.manual_seed(1)
    genotype = RECURRENT_PUBLISHED["DARTS_RNN_V2"]
    search = SearchCell(6, 6, nodes=8, batch_norm=False).double()
    cell = GenotypeCell(6, 6, genotype).double()
    cell.load_state_dict(search.state_dict())
    probs = torch.zeros(36, len(RECURRENT_OPS), dtype=torch.float64)
    for i, (op, j) in enumerate(genotype.recurrent):
        probs[i * (i + 1) // 2 + j, RECURRENT_OPS.index(op)] = 1.0
    inputs, hidden = torch.randn(4, 3, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    out_search, last_search = search(inputs, hidden, probs=probs)
    out_cell, _ = cell(inputs, hidden)
    torch.testing.assert_close(out_search, out_cell)
    torch.testing.assert_close(last_search, out_cell[-1])


def test_genotype_cell_follows_the_highway_equations():
    torch.manual_seed(2)
    g = RecurrentGenotype((("relu", 0), ("sigmoid", 1), ("tanh", 0)), (1, 3))
    cell = GenotypeCell(4, 3, g).double()
    x, h_prev = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    gate = lambda s, w, f: s + torch.sigmoid((s @ w)[:, :3]) * (f((s @ w)[:, 3:]) - s)  # noqa: E731
    xh = torch.cat([x, h_prev], -1) @ cell.w0
    s0 = h_prev + torch.sigmoid(xh[:, :3]) * (torch.tanh(xh[:, 3:]) - h_prev)
    s1 = gate(s0, cell.ws[0], torch.relu)  # node 2 (sigmoid of node 1) feeds nothing and is not averaged
    s3 = gate(s0, cell.ws[2], torch.tanh)
    torch.testing.assert_close(cell.step(x, h_prev, None, None), (s1 + s3) / 2)


# --------------------------------------------------------------------------------------------- the model


def test_masks_are_variational_and_fixed_per_segment():
    model = SearchModel(20, emsize=8, nodes=2, dropout=0.5, dropouth=0.25, dropoutx=0.5, dropouti=0.2, dropoute=0.1)
    masks = model.draw_masks(3, torch.Generator().manual_seed(0))
    assert masks["h"].shape == (3, 8) and masks["embedding"].shape == (20, 1)
    assert set(masks["output"].unique().tolist()) <= {0.0, 2.0}  # kept units scaled by 1 / keep
    tokens = torch.randint(0, 20, (5, 3))
    model.train()
    seg = Segment(tokens, model.init_hidden(3), masks)
    first = model(seg)
    assert first.shape == (15, 20) and seg.last.shape == (3, 8) and not seg.last.requires_grad
    torch.testing.assert_close(model(Segment(tokens, model.init_hidden(3), masks)), first)  # same masks, same output
    plain = Segment(tokens, model.init_hidden(3))  # no masks: no dropout
    assert not torch.allclose(model(plain), first)


def test_search_model_interface_matches_the_convolutional_supernet():
    model = SearchModel(30, emsize=8, nodes=3, ops=SMOOTH_OPS)
    names = [n for n, _ in model.named_weights()]
    assert "alphas.recurrent" not in names and "encoder.weight" in names
    assert [tuple(a.shape) for a in model.arch_parameters()] == [(6, 4)]
    assert count(model) == sum(p.numel() for p in model.weights()) + 24
    probs = model.probs()["recurrent"]
    torch.testing.assert_close(probs.sum(-1), torch.ones(6))
    assert not probs.requires_grad


def test_published_cell_has_the_official_parameter_count():
    # The official rnn/model.py at the paper's setting (PTB vocabulary 10,000, sizes 850): the embedding
    # 10,000 x 850 (its transpose is the tied decoder matrix, counted once), the decoder bias 10,000,
    # W_0 1,700 x 1,700 and eight W_i 850 x 1,700: 22,960,000, the paper's "23M".
    model = evaluation_model(RECURRENT_PUBLISHED["DARTS_RNN_V2"], 10_000, 850)
    assert count(model) == 10_000 * 850 + 10_000 + 1_700 * 1_700 + 8 * 850 * 1_700 == 22_960_000


# ---------------------------------------------------------------------------------------------- derivation


def test_derivation_keeps_the_strongest_predecessor_and_its_best_op():
    ops = ["none", "tanh", "relu", "sigmoid", "identity"]
    edges = recurrent_edge_names(3)
    assert edges == ["1<-0", "2<-0", "2<-1", "3<-0", "3<-1", "3<-2"]
    probs = [[0.0] * 5 for _ in edges]
    probs[0] = [0.9, 0.02, 0.05, 0.02, 0.01]  # node 1: none is strongest, relu is the best real op
    probs[1] = [0.0, 0.30, 0.30, 0.20, 0.20]  # node 2 from 0: tie tanh/relu -> tanh (earlier op)
    probs[2] = [0.0, 0.10, 0.29, 0.30, 0.31]  # node 2 from 1: identity 0.31 > 0.30 -> input 1 wins
    probs[3] = [0.0, 0.25, 0.25, 0.25, 0.25]  # node 3: equal strengths -> the lower input wins
    probs[4] = [0.0, 0.25, 0.25, 0.25, 0.25]
    probs[5] = [0.5, 0.10, 0.10, 0.10, 0.20]
    g = derive_recurrent(probs, ops, 3)
    assert g.recurrent == (("relu", 0), ("identity", 1), ("tanh", 0)) and g.concat == (1, 2, 3)
    with pytest.raises(ValueError, match="6 edges x 5 ops"):
        derive_recurrent(probs[:5], ops, 3)


# ---------------------------------------------------------------------------------------- the architect


def _setup(ops=None, seed=0, clip=None, dropout=True):
    torch.manual_seed(seed)
    rates = (
        dict(dropout=0.3, dropouth=0.2, dropoutx=0.3, dropouti=0.1, dropoute=0.1)
        if dropout
        else dict(dropout=0.0, dropouth=0.0, dropoutx=0.0, dropouti=0.0, dropoute=0.0)
    )
    model = SearchModel(11, emsize=6, nodes=3, ops=ops or RECURRENT_OPS, **rates).double()
    with torch.no_grad():  # away from the uniform start, so every term of the gradient matters
        for a in model.arch_parameters():
            a.normal_()
    optimizer = torch.optim.SGD(model.weights(), 2.0, weight_decay=5e-3)
    architect = Architect(model, nn.CrossEntropyLoss(), unrolled=True, grad_clip=clip)
    gen = torch.Generator().manual_seed(seed)
    segs = [
        Segment(
            torch.randint(0, 11, (5, 4), generator=gen),
            0.1 * torch.randn(4, 6, dtype=torch.float64, generator=gen),
            model.draw_masks(4, gen),
        )
        for _ in range(2)
    ]
    ys = [torch.randint(0, 11, (20,), generator=gen) for _ in range(2)]
    return model, architect, optimizer, (segs[0], ys[0], segs[1], ys[1])


def _exact_hypergradient(architect, optimizer, seg_train, y_train, seg_val, y_val):
    """d/d alpha L_val(w - xi (c grad_w L_train(w, alpha) + wd w), alpha), c the clip factor held constant."""
    group = optimizer.param_groups[0]
    named = dict(architect.model.named_weights())
    grads = torch.autograd.grad(architect._loss(named, seg_train, y_train), list(named.values()), create_graph=True)
    scale = 1.0
    if architect.grad_clip is not None:
        norm = torch.sqrt(sum(g.detach().pow(2).sum() for g in grads))
        scale = min(1.0, architect.grad_clip / (norm.item() + 1e-6))
    unrolled = {n: w - group["lr"] * (scale * g + group["weight_decay"] * w) for (n, w), g in zip(named.items(), grads)}
    return _flat(torch.autograd.grad(architect._loss(unrolled, seg_val, y_val), architect.alphas)), scale


def _flat(tensors):
    return torch.cat([t.flatten() for t in tensors])


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("clip", [None, 0.05], ids=["unclipped", "clipped"])
def test_finite_differences_match_exact_second_order_on_tiny_recurrent_supernet(clip):
    # tanh, sigmoid and identity only (no relu): a smooth loss, where Eq. 8's error is O(r^2).
    _, architect, optimizer, batch = _setup(SMOOTH_OPS, clip=clip)
    exact, scale = _exact_hypergradient(architect, optimizer, *batch)
    if clip is not None:
        assert scale < 0.5  # the clipping is really active
    errors = {r: _rel(_flat(architect.second_order_grads(*batch, optimizer, r=r)[0]), exact) for r in (1e-2, 1e-3)}
    assert errors[1e-2] < 1e-3
    assert 30 < errors[1e-2] / errors[1e-3] < 300  # O(r^2): a decade of r is two decades of error
    first_order = _flat(torch.autograd.grad(architect._loss({}, batch[2], batch[3]), architect.alphas))
    assert _rel(first_order, exact) > 100 * errors[1e-2]  # the test can tell first from second order


def test_virtual_step_is_the_clipped_weight_step():
    model, architect, optimizer, (seg, y, _, _) = _setup(clip=0.05)
    unrolled = architect.virtual_step(seg, y, optimizer)
    assert architect.clip_scale < 1
    loss = nn.functional.cross_entropy(model(seg), y)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.weights(), 0.05)
    optimizer.step()
    for name, w in model.named_weights():
        torch.testing.assert_close(unrolled[name], w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("unrolled", [False, True])
def test_architecture_step_moves_alphas_only_and_carries_the_state(unrolled):
    model, architect, optimizer, batch = _setup(clip=0.25)
    architect.unrolled = unrolled
    weights = {n: p.detach().clone() for n, p in model.named_weights()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    alphas = [a.detach().clone() for a in model.arch_parameters()]
    loss = architect.step(*batch, optimizer)
    assert loss.ndim == 0 and not loss.requires_grad
    for n, p in model.named_weights():
        assert torch.equal(p, weights[n]), n
    for n, b in model.named_buffers():  # probe passes never move batch-norm statistics
        assert torch.equal(b, buffers[n]), n
    assert all(not torch.equal(a, b) for a, b in zip(model.arch_parameters(), alphas))
    assert batch[2].last is not None and batch[2].last.shape == (4, 6)  # the validation window's final state


def test_lean_mode_gives_the_same_gradients_and_moves_batch_norm_once():
    rates = dict(dropout=0.3, dropouth=0.2, dropoutx=0.3, dropouti=0.1, dropoute=0.1)
    torch.manual_seed(3)
    exact = SearchModel(11, emsize=6, nodes=3, **rates).double()
    lean = SearchModel(11, emsize=6, nodes=3, lean=True, **rates).double()
    lean.load_state_dict(exact.state_dict())
    gen = torch.Generator().manual_seed(3)
    masks = exact.draw_masks(4, gen)
    tokens, y = torch.randint(0, 11, (5, 4), generator=gen), torch.randint(0, 11, (20,), generator=gen)
    for model in (exact, lean):
        nn.functional.cross_entropy(model(Segment(tokens, model.init_hidden(4), masks)), y).backward()
    for (name, p), q in zip(exact.named_parameters(), lean.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-10, atol=1e-12, msg=name)
    for (name, b), c in zip(exact.named_buffers(), lean.buffers()):
        assert torch.equal(b, c), name  # running statistics moved by the forward pass only
    # Second order: the probes run under functional_call; the recomputation must use their weights.
    segs = [Segment(tokens, exact.init_hidden(4), masks), Segment(tokens.flip(0), exact.init_hidden(4), masks)]
    grads = []
    for model in (exact, lean):
        optimizer = torch.optim.SGD(model.weights(), 2.0)
        architect = Architect(model, nn.CrossEntropyLoss(), unrolled=True, grad_clip=0.25)
        grads.append(_flat(architect.second_order_grads(segs[0], y, segs[1], y.flip(0), optimizer)[0]))
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-8, atol=1e-12)
