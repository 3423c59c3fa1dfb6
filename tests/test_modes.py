"""Mixed-op modes `partial` (PC-DARTS) and `sample` (GDAS), temperatures, and the shared ReLU,
each checked against a plain statement of what it should compute."""

import math

import pytest
import torch
from torch import nn

from dartsnas.methods.derivations import derive
from dartsnas.core.genotype import edge_names
from dartsnas.conv.fast import strip_leading_relu
from dartsnas.conv.ops import OPS
from dartsnas.core.relax import temperature
from dartsnas.methods.relaxations import make
from dartsnas.conv.spaces import DARTS_OPS, LARGE_OPS, OP_SETS
from dartsnas.conv.supernet import MixedOp, Supernet


# ---------------------------------------------------------------------------------------------------
# The shared ReLU


@pytest.mark.parametrize("name", [n for n in LARGE_OPS if n != "none"])
@pytest.mark.parametrize("stride", [1, 2])
def test_stripping_the_leading_relu_is_exact(name, stride):
    torch.manual_seed(0)
    whole = OPS[name](6, stride, True)
    stripped, had = strip_leading_relu(OPS[name](6, stride, True))
    stripped.load_state_dict(whole.state_dict())  # same parameter names
    x = torch.randn(2, 6, 7, 7)
    expected_relu = not ("pool" in name or (name == "skip_connect" and stride == 1))
    assert had == expected_relu
    torch.testing.assert_close(stripped(nn.functional.relu(x) if had else x), whole(x))
    leaves = [m for m in stripped.modules() if not list(m.children())]
    assert not isinstance(leaves[0], nn.ReLU)


def test_cell_computes_one_relu_per_state(monkeypatch):
    # 14 edges x 4 conv ops would be 56 ReLUs of edge inputs; shared, the cell needs one per state
    # that feeds an edge (2 inputs + 3 nodes), plus the ops' own inner ones (second half of sep convs),
    # plus the preprocessing ReLUs of both inputs.
    calls = {"n": 0}
    real = nn.functional.relu

    def counting(x, inplace=False):
        calls["n"] += 1
        return real(x, inplace=inplace)

    monkeypatch.setattr(nn.functional, "relu", counting)
    model = Supernet(3, 10, init_channels=4, layers=3, nodes=4)
    cell = model.cells[0]
    s = torch.randn(2, 12, 8, 8)
    calls["n"] = 0
    cell(s, s, torch.full((14, 8), 1 / 8))
    inner = 14 * 2  # sep_conv_3x3 and sep_conv_5x5 each have a second ReLU inside
    assert calls["n"] == 2 + 5 + inner


# ---------------------------------------------------------------------------------------------------
# partial (PC-DARTS)


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
)
@pytest.mark.parametrize("stride", [1, 2])
def test_partial_mixed_op_is_the_pc_darts_formula(stride, device):
    torch.manual_seed(0)
    c, k = 8, 4
    mixed = MixedOp(c, stride, DARTS_OPS, make("partial", partial_k=k)).to(device)
    assert all(m.in_channels == c // k for m in mixed.modules() if isinstance(m, nn.Conv2d))
    exact_quarter = MixedOp(c // k, stride, DARTS_OPS).to(device)  # the same ops on C/K channels, exact mode
    exact_quarter.load_state_dict(mixed.state_dict())
    w = torch.randn(len(DARTS_OPS), device=device).softmax(-1)
    x = torch.randn(2, c, 7, 7, device=device)
    out = mixed(x, w)

    through = exact_quarter(x[:, : c // k], w)
    rest = x[:, c // k :]
    if stride == 2:
        rest = nn.functional.max_pool2d(rest, 2, 2, ceil_mode=True)
    joined = torch.cat([through, rest], 1)
    size = math.ceil(7 / stride)
    # channel shuffle with K groups: output channel i*K + g is input channel g*(C/K) + i
    expected = torch.stack([joined[:, g * (c // k) + i] for i in range(c // k) for g in range(k)], 1)
    assert out.shape == (2, c, size, size)
    torch.testing.assert_close(out, expected)


def test_partial_edge_probs_are_a_softmax_per_node_and_enter_derivation():
    torch.manual_seed(0)
    model = Supernet(1, 3, init_channels=8, layers=3, nodes=3, mixed_op="partial")
    assert set(model.alphas) == {"normal", "reduce", "normal_edges", "reduce_edges"}
    with torch.no_grad():
        model.alphas["normal_edges"].copy_(torch.arange(9.0))
    weights = model.edge_probs()["normal"]
    for start, n in ((0, 2), (2, 3), (5, 4)):
        torch.testing.assert_close(
            weights[start : start + n], torch.arange(start, start + n, dtype=torch.float).softmax(0)
        )
    # Edge weights change which edges win, not which op an edge takes.
    probs = {kind: torch.full((9, 8), 0.1) for kind in ("normal", "reduce")}
    for p in probs.values():
        p[:, DARTS_OPS.index("sep_conv_3x3")] = torch.linspace(0.3, 0.2, 9)  # earlier edges stronger
    plain = derive(probs, DARTS_OPS, 3)
    weighted = derive(probs, DARTS_OPS, 3, edge_probs=model.edge_probs())
    assert [j for _, j in plain.normal] == [0, 1, 0, 1, 0, 1]
    assert [j for _, j in weighted.normal] == [1, 0, 2, 1, 3, 2]  # later edges: higher betas
    assert {op for op, _ in weighted.normal} == {"sep_conv_3x3"}


def test_partial_forward_weighs_each_edge(monkeypatch):
    torch.manual_seed(0)
    model = Supernet(1, 3, init_channels=8, layers=3, nodes=2, mixed_op="partial")
    x = torch.randn(4, 1, 8, 8)
    model(x).sum().backward()
    for kind in ("normal", "reduce"):
        assert model.alphas[f"{kind}_edges"].grad.abs().min() > 0  # every edge weight is used


# ---------------------------------------------------------------------------------------------------
# sample (GDAS)


def test_gumbel_weights_are_one_hot_with_softmax_gradients():
    alphas = torch.randn(14, 8, requires_grad=True)
    g = torch.Generator().manual_seed(0)
    w = make("sample").mix(alphas, 2.0, g)
    assert torch.equal(w.detach().sum(-1), torch.ones(14))
    assert set(w.detach().flatten().tolist()) <= {0.0, 1.0}
    # Straight-through: d w_k / d alphas is the Jacobian of softmax((alphas + noise) / tau).
    (w * torch.arange(8.0)).sum().backward()
    assert (alphas.grad != 0).all()
    # Samples follow softmax(alphas): frequencies over many draws.
    logits = torch.tensor([[2.0, 0.0, -1.0, 1.0]]).expand(20000, 4)
    draws = make("sample").mix(logits, 1.0, g).argmax(-1)
    freq = torch.bincount(draws, minlength=4).float() / len(draws)
    torch.testing.assert_close(freq, logits[0].softmax(0), atol=0.015, rtol=0)
    torch.testing.assert_close(make("sample").probs(alphas.detach(), 5.0), alphas.detach().softmax(-1))


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_sample_mode_runs_exactly_one_op_per_edge(device):
    torch.manual_seed(0)
    model = Supernet(1, 3, init_channels=4, layers=3, nodes=4, mixed_op="sample").to(device)
    model.generator = torch.Generator(device).manual_seed(1)
    ran = set()  # the ops any of whose modules ran (a mixed op may run an op's parts, ops.scaled)
    for cell in model.cells:
        for edge in cell.edges:
            for op in edge.ops:
                for m in op.modules():
                    m.register_forward_hook(lambda *_, op=op: ran.add(id(op)))
    drawn = []
    real_one = MixedOp.single

    def spy(self, x, x_relu, weights, choice):
        drawn.append(choice)
        return real_one(self, x, x_relu, weights, choice)

    MixedOp.single = spy
    try:
        for _ in range(3):
            drawn.clear()
            ran.clear()
            model(torch.randn(2, 1, 8, 8, device=device)).sum().backward()
            edges = 3 * len(edge_names(4))
            assert len(drawn) == edges
            not_none = sum(1 for k in drawn if DARTS_OPS[k] != "none")
            assert len(ran) == not_none  # exactly the drawn op, and nothing for a drawn `none`
    finally:
        MixedOp.single = real_one
    assert all((a.grad != 0).any() for a in model.arch_parameters())


def test_sampling_is_reproducible_from_the_generator():
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = Supernet(1, 3, init_channels=4, layers=3, nodes=2, mixed_op="sample")
        model.generator = torch.Generator().manual_seed(5)
        outs.append(torch.stack([model(torch.ones(1, 1, 8, 8)) for _ in range(4)]))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------
# Temperatures


def test_temperature_schedules_hit_their_ends():
    assert temperature(0, 50, 10, 0.1) == 10
    assert temperature(49, 50, 10, 0.1) == pytest.approx(0.1)
    assert temperature(25, 51, 10, 0.1) == pytest.approx(5.05)  # linear: the midpoint
    assert temperature(25, 51, 10, 0.1, "exponential") == pytest.approx(1.0)  # geometric midpoint
    assert temperature(0, 1, 10, 0.1) == 10
    with pytest.raises(ValueError, match="linear, exponential"):
        temperature(0, 5, 1, 1, "cosine")


def test_softmax_temperature_sharpens():
    a = torch.tensor([1.0, 0.0, -1.0])
    hot, cold = make("exact").mix(a, 1.0), make("exact").mix(a, 0.1)
    torch.testing.assert_close(hot, a.softmax(0))
    assert cold[0] > 0.99 > hot[0]


# ---------------------------------------------------------------------------------------------------
# Through the command line on digits


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, settings",
    [
        ("partial", ["epochs=3"]),
        # One random path per step learns slowly (as GDAS does: 250 epochs in the paper): more data, more epochs.
        ("sample", ["epochs=6", "subset=640", "lr=0.01"]),
    ],
)
def test_modes_search_and_derive_valid_genotypes(tmp_path, cli_search, mode, settings):
    from dartsnas.core.genotype import load_genotype
    from dartsnas.core.runs import read_jsonl

    run_dir = cli_search(tmp_path, "plot=false", f"mixed_op={mode}", "init_channels=8", *settings)
    genotype = load_genotype(run_dir, known_ops=OPS)
    assert genotype.nodes == 4 and all(op != "none" for op, _ in genotype.normal + genotype.reduce)
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"] - 0.1  # the network learns
    taus = [m["temperature"] for m in metrics]
    if mode == "sample":  # GDAS's default schedule: 10 to 0.1, linear over the epochs
        assert taus == pytest.approx([10.0 - 9.9 * e / 5 for e in range(6)])
    else:
        assert taus == [1.0] * 3
        assert metrics[-1]["train_acc"] > 0.3  # 10 classes: chance is 0.1
        record = read_jsonl(run_dir / "alphas.jsonl")[-1]
        assert len(record["edge_probs"]["normal"]) == len(edge_names(4))


def test_op_sets_come_from_the_registry():
    assert sorted(OP_SETS) == [2, 4, 6, 8, 12]
    for n, ops in OP_SETS.items():
        assert len(ops) == n and len(set(ops)) == n and set(ops) <= set(OPS)
    assert OP_SETS[8] == DARTS_OPS


def test_sample_mode_second_order_step_runs_with_undrawn_ops():
    # The virtual step's gradient is zero for the weights of ops no edge drew; the step still runs.
    from dartsnas.core.architect import Architect

    torch.manual_seed(0)
    model = Supernet(1, 3, init_channels=4, layers=3, nodes=2, mixed_op="sample")
    model.generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.SGD(model.weights(), 0.1, momentum=0.9)
    architect = Architect(model, nn.CrossEntropyLoss(), unrolled=True)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 3, (4,))
    before = [a.detach().clone() for a in model.arch_parameters()]
    loss = architect.step(x, y, x, y, optimizer)
    assert torch.isfinite(loss)
    assert all(not torch.equal(a, b) for a, b in zip(model.arch_parameters(), before))


@pytest.mark.slow
def test_arch_warm_up_epochs_leave_alphas_alone(tmp_path, cli_search):
    # PC-DARTS trains the weights alone for its first 15 epochs (arch_start_epoch).
    from dartsnas.core.runs import read_jsonl

    run_dir = cli_search(tmp_path, "epochs=2", "plot=false", "arch_start_epoch=1")
    alphas = [r["alphas"]["normal"] for r in read_jsonl(run_dir / "alphas.jsonl")]
    assert alphas[1] == alphas[0] and alphas[2] != alphas[1]
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert math.isnan(metrics[0]["arch_loss"]) and math.isfinite(metrics[1]["arch_loss"])


def test_shipped_pcdarts_and_gdas_configs():
    from dartsnas.conv.config import load_config

    pc = load_config("cifar10-pcdarts")
    assert (pc.mixed_op, pc.partial_k, pc.arch_start_epoch, pc.batch_size, pc.lr, pc.arch_lr) == (
        "partial",
        4,
        15,
        256,
        0.1,
        6e-4,
    )
    gdas = load_config("cifar10-gdas")
    assert (gdas.mixed_op, gdas.temperatures(), gdas.epochs) == ("sample", (10.0, 0.1), 250)


@pytest.mark.parametrize("mode, syncs", [("exact", 0), ("lean", 0), ("partial", 0), ("sample", 2)])
@pytest.mark.parametrize("unrolled", [False, True])
def test_a_search_step_reads_nothing_back_to_the_host(monkeypatch, mode, syncs, unrolled):
    # On a GPU every read of a tensor's value by Python waits for the device. A step needs none,
    # except `sample`, which must learn which op each edge drew: one read per forward pass
    # (architecture step + weight step; second order adds its four probe passes).
    from dartsnas.core.architect import Architect

    torch.manual_seed(0)
    model = Supernet(1, 3, init_channels=8, layers=3, nodes=2, mixed_op=mode)
    model.generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.SGD(model.weights(), 0.1, momentum=0.9, weight_decay=3e-4)
    architect = Architect(model, nn.CrossEntropyLoss(), unrolled=unrolled)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 3, (4,))
    nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    architect.step(x, y, x, y, optimizer)  # Adam's state exists now
    # Adam keeps its step count in a CPU tensor (also on GPUs): reading it does not wait for the device.
    counters = {id(state["step"]) for state in architect.optimizer.state.values()}
    reads = {"n": 0}
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, **kwargs):
            reads["n"] += id(self) not in counters
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    architect.step(x, y, x, y, optimizer)
    optimizer.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    nn.utils.clip_grad_norm_(model.weights(), 5.0)
    optimizer.step()
    assert reads["n"] == syncs + (3 if unrolled and mode == "sample" else 0)


@pytest.mark.parametrize("mode", ["exact", "partial", "lean"])
def test_shared_parameter_free_candidates_change_nothing(mode, monkeypatch, op_buffers):
    """Pools computed once per state (SharedOps) give the outputs, gradients and BN statistics of the
    network that computes them on every edge (float64)."""
    from dartsnas.conv import supernet

    def build():
        torch.manual_seed(0)
        model = Supernet(1, 3, init_channels=8, layers=3, nodes=3, mixed_op=mode).double()
        with torch.no_grad():
            for a in model.arch_parameters():
                a.normal_()
        return model

    shared = build()
    monkeypatch.setattr(supernet, "is_parameter_free", lambda name: False)
    per_edge = build()
    assert shared.cells[0].shared is not None and per_edge.cells[0].shared is None
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    grads = []
    for model in (shared, per_edge):
        loss = nn.functional.cross_entropy(model(x), y)
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    a, b = op_buffers(shared), op_buffers(per_edge)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("unrolled", [False, True])
def test_sample_mode_step_runs_when_every_edge_of_a_kind_draws_none(unrolled):
    # Every normal-cell edge draws `none`: the loss does not depend on the normal cells' alphas.
    # Their gradient is then zero (as for any op not drawn), not an error.
    from dartsnas.core.architect import Architect

    torch.manual_seed(0)
    model = Supernet(1, 3, init_channels=4, layers=3, nodes=2, ops=["none", "skip_connect"], mixed_op="sample")
    with torch.no_grad():
        model.alphas["normal"][:, 0] = 50.0  # `none` is drawn on every normal edge
    optimizer = torch.optim.SGD(model.weights(), 0.1, momentum=0.9)
    architect = Architect(model, nn.CrossEntropyLoss(), unrolled=unrolled)
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 3, (4,))
    assert torch.isfinite(architect.step(x, y, x, y, optimizer))
    assert all(torch.isfinite(a).all() for a in model.arch_parameters())
