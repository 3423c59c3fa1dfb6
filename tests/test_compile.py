"""The compiled search step (core/compiled.py): the same alphas, weights and evaluation as eager.

On CPU the network is compiled with the `aot_eager` backend: TorchDynamo captures the passes and AOTAutograd
builds their joint forward/backward graphs (where a wrong capture would show), without generating kernels,
so that the suite needs no C++ toolchain and no minutes of code generation (`lean`, whose recomputation is the
partitioner's work, with `aot_eager_decomp_partition`, which partitions as inductor does). On CUDA the shipped default is
compared: inductor with CUDA graphs (mode reduce-overhead), TF32 off, and no host synchronisation inside a
step (torch.cuda.set_sync_debug_mode)."""

import json

import pytest
import torch

from dartsnas.conv.config import SearchConfig
from dartsnas.core.config import ConfigError

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
TINY = dict(
    dataset="fake",
    data_options={"shape": [3, 8, 8], "size": 96},
    batch_size=16,
    init_channels=8,
    layers=3,
    nodes=2,
    ops=["none", "skip_connect", "sep_conv_3x3", "max_pool_3x3"],
    partial_k=2,
    progress=False,
    plot=False,
)


@pytest.fixture(autouse=True)
def fresh_compiler():
    """Each test compiles from nothing: TorchDynamo caches compiled code per function across networks, and
    past its recompile limit it runs eager without failing, which would make a comparison vacuous."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):  # never silently eager
        yield
    torch._dynamo.reset()


def _graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def _searcher(mode, unrolled, device, **compile_options):
    from dartsnas.conv.search import Searcher, prepare_data

    config = SearchConfig(**TINY, mixed_op=mode, unrolled=unrolled, device=str(device), **compile_options).validate()
    return Searcher(config, prepare_data(config, device), device)


def _batches(searcher, n=3):
    """The first n (weight, architecture) batches, augmented and on the device, as a search draws them."""
    data, b, device = searcher.data, searcher.config.batch_size, searcher.device
    out = []
    for i in range(n):
        part = slice(i * b, (i + 1) * b)
        x = searcher.prepare_inputs(data.train_augment(data.weight_half.images[part].to(device), searcher.generator))
        xa = searcher.prepare_inputs(data.train_augment(data.arch_half.images[part].to(device), searcher.generator))
        out.append((x, data.weight_half.labels[part].to(device), xa, data.arch_half.labels[part].to(device)))
    return out


def _train(searcher, batches):
    for x, y, xa, ya in batches:
        searcher.architect.step(x, y, xa, ya, searcher.optimizer)
        searcher.weight_step(x, y)


def _steps(searcher, n=3):
    """n architecture + weight steps on the first batches, then the evaluation: what a search does."""
    _train(searcher, _batches(searcher, n))
    return searcher.model.state_dict(), searcher.evaluate(searcher.data.arch_half)


def _compare(eager, compiled, tol):
    (a, ea), (b, eb) = eager, compiled
    assert a.keys() == b.keys()  # compiled in place: checkpoints keep the plain module's names
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
    assert worst <= tol, f"compiled differs from eager by {worst:.3g} (tolerance {tol})"
    assert eb["valid_loss"] == pytest.approx(ea["valid_loss"], abs=tol * 10)


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, unrolled, scope",
    [("exact", False, "network"), ("partial", False, "cells"), ("exact", True, "network"), ("lean", False, "network")],
)
def test_compiled_steps_equal_eager_on_cpu(mode, unrolled, scope):
    # Float32, same kernels (aot_eager): only the order of a few sums may differ. lean's recomputation is the
    # partitioner's work: compared with the one inductor uses.
    cpu = torch.device("cpu")
    eager = _steps(_searcher(mode, unrolled, cpu))
    assert _graphs() == 0
    backend = "aot_eager_decomp_partition" if mode == "lean" else "aot_eager"
    compiled = _steps(_searcher(mode, unrolled, cpu, compile=True, compile_backend=backend, compile_scope=scope))
    # Nothing left to eager: no graph breaks; the whole network is one graph per kind of pass: the architecture
    # step's (weights as plain tensors), the weight step's (parameters), the evaluation's; second order adds two
    # (its passes at w' and w +- r*v differ in what needs a gradient). Cells: a few per cell shape.
    from torch._dynamo.utils import counters

    assert not counters["graph_break"], dict(counters["graph_break"])
    # Cells: one graph per cell shape (3 here) and kind of pass.
    assert _graphs() == (5 if unrolled else 3) * (1 if scope == "network" else 3)
    _compare(eager, compiled, 1e-5)


@CUDA
@pytest.mark.slow
@pytest.mark.parametrize("mode, unrolled", [("exact", False), ("partial", False), ("exact", True), ("lean", False)])
def test_compiled_steps_equal_eager_on_cuda_and_never_wait_on_the_host(mode, unrolled, monkeypatch):
    # Inductor fuses and reorders float32 arithmetic: after 3 steps the weights agree to about 1e-5; TF32
    # (which eager and inductor would use differently) is off.
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    cuda = torch.device("cuda")
    eager = _steps(_searcher(mode, unrolled, cuda))
    searcher = _searcher(mode, unrolled, cuda, compile=True)
    assert searcher.compiled == "reduce-overhead"
    batches = _batches(searcher)
    _train(searcher, batches[:2])  # compiled and captured: from here on a step replays graphs
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host synchronisation inside the step raises
    try:
        _train(searcher, batches[2:])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    _compare(eager, (searcher.model.state_dict(), searcher.evaluate(searcher.data.arch_half)), 1e-4)


@pytest.mark.slow
def test_a_compiled_search_through_the_command_line_logs_its_compile_time(tmp_path, cli_search):
    settings = [
        "dataset=digits",
        "subset=128",
        "batch_size=32",
        "init_channels=4",
        "layers=3",
        "nodes=2",
        "ops=[skip_connect, sep_conv_3x3, max_pool_3x3]",
        "epochs=2",
        "plot=false",
    ]
    eager = cli_search(tmp_path / "eager", *settings)
    compiled = cli_search(tmp_path / "compiled", *settings, "compile=true", "compile_backend=aot_eager")
    records = [[json.loads(line) for line in (r / "metrics.jsonl").read_text().splitlines()] for r in (eager, compiled)]
    for a, b in zip(*records):
        assert b["compile_s"] > 0 and "compile_s" not in a
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-5)
        assert b["valid_loss"] == pytest.approx(a["valid_loss"], abs=1e-5)
    assert records[1][0]["compile_s"] == pytest.approx(records[1][1]["compile_s"], rel=0.5)  # paid once, early
    state = torch.load(compiled / "checkpoint.pt", weights_only=True)["model"]
    assert not any("_orig_mod" in k for k in state)  # a compiled run's checkpoint loads into a plain network


def test_sample_mode_is_refused_with_the_way_out():
    with pytest.raises(ConfigError, match="compile: sample .*without compile"):
        SearchConfig(**TINY, mixed_op="sample", compile=True).validate()
    SearchConfig(**TINY, mixed_op="sample").validate()  # without compile, as before


@pytest.mark.slow
def test_compiled_lean_recomputes_the_candidates_instead_of_keeping_them():
    # What autograd keeps for backward (conv/memory.py measures it the same way): under the compiler lean's
    # candidates are a checkpointed region, so the compiled graph saves each edge's inputs, not the candidates'
    # activations. aot_eager_decomp_partition splits forward and backward as inductor does (plain aot_eager's
    # simpler partition keeps more).
    from dartsnas.conv.memory import saved_activation_bytes
    from dartsnas.conv.supernets import search_network
    from dartsnas.core.compiled import compile_network

    x = torch.randn(8, 3, 8, 8)
    saved = {}
    for mode in ("exact", "lean"):
        torch.manual_seed(0)
        network = search_network(
            SearchConfig(
                **dict(TINY, ops=["none", "skip_connect", "sep_conv_3x3", "dil_conv_3x3", "max_pool_3x3"]),
                mixed_op=mode,
            ),
            3,
            10,
        )
        eager = saved_activation_bytes(network, x)
        compile_network(network, torch.device("cpu"), "default", "aot_eager_decomp_partition", scope="network")
        saved[mode] = (eager, saved_activation_bytes(network, x))
    (exact, exact_compiled), (lean, lean_compiled) = saved["exact"], saved["lean"]
    assert lean < exact / 3 and exact_compiled < exact * 1.1  # the eager modes as known; exact compiled keeps as much
    assert lean_compiled < exact_compiled / 2, (
        saved
    )  # measured: 2.6x less (the partitioner recomputes some of exact's too)
    assert lean_compiled < lean * 1.1, saved  # what eager lean keeps
    from torch._dynamo.utils import counters

    assert not counters["graph_break"], dict(counters["graph_break"])


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("compile_mode", "fastest", "compile_mode: unknown 'fastest'; available: auto, default, reduce-overhead"),
        ("compile_backend", "xla", "compile_backend: unknown 'xla'; use inductor"),
        ("compile_scope", "edges", "compile_scope: unknown 'edges'; available: cells, network"),
    ],
)
def test_unknown_compile_settings_are_named(field, value, message):
    with pytest.raises(ConfigError, match=message):
        SearchConfig(**TINY, compile=True, **{field: value}).validate()


def test_auto_mode_means_cuda_graphs_on_cuda_only():
    from dartsnas.core.compiled import resolved_mode

    assert resolved_mode("auto", torch.device("cuda")) == "reduce-overhead"
    assert resolved_mode("auto", torch.device("cpu")) == "default"
    assert resolved_mode("max-autotune", torch.device("cpu")) == "max-autotune"
