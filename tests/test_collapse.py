"""The answers to collapse that live in the search loop: beta-DARTS's beta decay, DARTS-'s auxiliary skip,
DARTS+'s early stopping, P-DARTS's skip cap and SGAS's progressive decisions; each against a hand computation
or a constructed case, and through a real search where its state must survive a resume."""

import math

import pytest
import torch

from dartsnas.cli import main
from dartsnas.conv.config import load_config
from dartsnas.conv.nb201.model import Supernet201
from dartsnas.core import runs as runs_module
from dartsnas.core.collapse import aux_skip_coefficient, beta_decay, beta_weight, darts_plus_stop, linear
from dartsnas.core.config import ConfigError
from dartsnas.methods.derivations import derive_cell, strongest_ops
from dartsnas.core.progressive import FREE, REMOVED, decide_one, decision_epoch
from dartsnas.core.runs import read_jsonl

DARTS_OPS = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]


# -- beta-DARTS ---------------------------------------------------------------------------------------


def test_beta_decay_gradient_is_softmax_over_edge_count():
    a = torch.tensor([[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[1.0, 1.0, -2.0]], dtype=torch.float64, requires_grad=True)
    loss = beta_decay([a, b])
    # By hand: mean over the 3 edges of log(sum exp); d/d alpha = softmax(alpha) / 3.
    rows = [[0.0, 1.0, 2.0], [3.0, -1.0, 0.5], [1.0, 1.0, -2.0]]
    lse = [math.log(sum(math.exp(x) for x in r)) for r in rows]
    assert loss.item() == pytest.approx(sum(lse) / 3, abs=1e-12)
    loss.backward()
    expect = [[math.exp(x - s) / 3 for x in r] for r, s in zip(rows, lse)]
    assert torch.allclose(a.grad, torch.tensor(expect[:2], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(b.grad, torch.tensor(expect[2:], dtype=torch.float64), atol=1e-12)


def test_beta_weight_follows_the_authors_fixed_horizon_whatever_the_runs_length():
    # Their Architect._backward_step: weights = 0 + 50*epoch/100, epoch from 0, in both spaces.
    for epochs in (20, 50, 100):
        assert [beta_weight(e, epochs, 0.0, 50.0) for e in range(epochs)] == [50 * e / 100 for e in range(epochs)]
    # The earlier form, kept as an option: rescaled to reach the end at the run's last epoch.
    assert [beta_weight(e, 5, 0.0, 50.0, None) for e in range(5)] == [0.0, 12.5, 25.0, 37.5, 50.0]
    assert [linear(e, 5, 0.0, 50.0) for e in range(5)] == [0.0, 12.5, 25.0, 37.5, 50.0]


def test_beta_weight_is_the_authors_and_the_architect_adds_its_gradient(tmp_path, tiny_search):
    from dartsnas.conv.search import Searcher, prepare_data

    config = load_config(None, tiny_search + ["epochs=5", "beta_decay=[0, 50]"])
    searcher = Searcher(config, prepare_data(config, torch.device("cpu")), torch.device("cpu"))
    assert searcher.units["beta_decay"].weight(2) == 1.0  # 50 * 2 / 100, not 25 (rescaled to the 5 epochs)
    rescaled = load_config(None, tiny_search + ["epochs=5", "beta_decay=[0, 50]", "beta_decay_epochs=null"])
    assert beta_weight(2, rescaled.epochs, *rescaled.beta_decay, rescaled.beta_decay_epochs) == 25.0
    searcher.epoch = 50  # lambda 25: 50 * 50 / 100
    model = searcher.model
    edges = sum(a.shape[0] for a in (model.alphas["normal"], model.alphas["reduce"]))
    grads = torch.autograd.grad(searcher.architect.penalty(), model.arch_parameters())
    for kind, g in zip(model.alphas.keys(), grads):
        assert torch.allclose(g, 25.0 * model.alphas[kind].softmax(-1) / edges, atol=1e-7)


# -- DARTS- ---------------------------------------------------------------------------------------------


def test_aux_skip_coefficient_decays_linearly_to_zero():
    assert [aux_skip_coefficient(e, 4) for e in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert aux_skip_coefficient(1, 4, start=2.0) == 1.5


def test_aux_skip_adds_beta_times_input_on_every_edge_and_leaves_alpha_gradient_by_hand():
    # A NAS-Bench-201 cell of parameter-free ops: its output and alpha gradient computed by hand.
    torch.manual_seed(0)
    net = Supernet201(3, 10, init_channels=4, stage_cells=1, ops=["skip_connect", "avg_pool_3x3"])
    cell = net.layers[0]
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    alphas = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    beta = 0.3
    out = cell(x, alphas.softmax(-1), aux=beta)
    pool = torch.nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    p = alphas.softmax(-1)
    states, e = [x], 0
    for i in (1, 2, 3):
        node = 0
        for j in range(i):
            node = node + p[e, 0] * states[j] + p[e, 1] * pool(states[j]) + beta * states[j]
            e += 1
        states.append(node)
    assert torch.allclose(out, states[-1], atol=1e-12)
    w = torch.randn_like(out)
    (g_net,) = torch.autograd.grad((out * w).sum(), alphas)
    (g_hand,) = torch.autograd.grad((states[-1] * w).sum(), alphas)
    assert torch.allclose(g_net, g_hand, atol=1e-12)
    assert not torch.allclose(out, cell(x, alphas.softmax(-1)))  # beta = 0 is the plain cell


def test_aux_skip_runs_in_darts_space_reduction_cells(tiny_search):
    from dartsnas.conv.supernet import Supernet

    net = Supernet(1, 10, init_channels=4, layers=3, nodes=2, aux_skip=True)
    x = torch.randn(2, 1, 8, 8)
    plain = net(x)
    net.aux_skip = 0.5
    out = net(x)
    assert out.shape == plain.shape and not torch.allclose(out, plain)
    out.sum().backward()
    assert all(a.grad is not None for a in net.arch_parameters())


# -- DARTS+ ---------------------------------------------------------------------------------------------


def _probs(rank):  # edges x 8 ops whose learnable ops (4..7) are ranked as `rank` on every edge
    row = [0.05] * 8
    for place, op in enumerate(rank):
        row[op] = 0.3 - 0.05 * place
    return [row[:] for _ in range(14)]


def test_darts_plus_stops_on_two_skips_and_on_a_stable_ranking_only():
    learnable = [4, 5, 6, 7]
    one_skip = [("skip_connect", 0), ("sep_conv_3x3", 1)] + [("sep_conv_3x3", 0)] * 6
    two_skips = [("skip_connect", 0), ("skip_connect", 1)] + [("sep_conv_3x3", 0)] * 6
    moving = [_probs([4, 5, 6, 7]), _probs([5, 4, 6, 7])] * 6  # the ranking changes every epoch
    assert darts_plus_stop(one_skip, moving, learnable, 2, 3) is None
    assert "criterion 1" in darts_plus_stop(two_skips, moving, learnable, 2, 3)
    stable = moving[:4] + [_probs([6, 4, 5, 7])] * 4
    assert "criterion 2" in darts_plus_stop(one_skip, stable, learnable, 2, 3)
    assert darts_plus_stop(one_skip, stable, learnable, 2, 4) is None  # stable for 3 epochs only
    assert darts_plus_stop(two_skips, stable, learnable, None, None) is None  # both criteria off


def test_darts_plus_lets_nas_bench_201_keep_the_resnet_cells_two_skips(tmp_path, tiny_search):
    from dartsnas.conv.config import SearchConfig
    from dartsnas.conv.nb201.genotype import CellGenotype
    from dartsnas.conv.search import Searcher, prepare_data
    from dartsnas.core.config import load_saved

    config = load_config(None, tiny_search + NB201 + ["early_stop=true", "early_stop_patience=null"])
    assert config.skip_threshold() == 3 and load_config(None, tiny_search + ["early_stop=true"]).skip_threshold() == 2
    searcher = Searcher(config, prepare_data(config, torch.device("cpu")), torch.device("cpu"))
    resnet = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"  # 93.91 %
    searcher.last_genotype = CellGenotype.parse(resnet)
    early_stop = searcher.units["early_stop"]  # methods/search/early_stop.py
    assert early_stop.stop(searcher, tmp_path) is None  # 2 skips in 6 edges are no collapse here
    searcher.last_genotype = CellGenotype.parse(resnet.replace("nor_conv_3x3~1", "skip_connect~1"))
    assert "3 skip connections" in early_stop.stop(searcher, tmp_path)
    # A run made before the field stopped at early_stop_skips in NAS-Bench-201 too, and resumes so.
    run = _saved_before(tmp_path, config, "early_stop_skips_nb201")
    assert load_saved(SearchConfig, run / "config.yaml").skip_threshold() == 2
    with pytest.raises(ConfigError, match="early_stop needs a criterion: set early_stop_skips_nb201 or"):
        load_config(
            None, tiny_search + NB201 + ["early_stop=true", "early_stop_patience=null", "early_stop_skips_nb201=null"]
        )


def test_early_stopped_search_stays_stopped_through_resume(tmp_path, cli_search):
    run = cli_search(
        tmp_path,
        "epochs=6",
        "plot=false",
        "early_stop=true",
        "early_stop_skips=null",
        "early_stop_patience=1",
        "arch_lr=0",
    )  # alphas frozen: the ranking never changes
    metrics = read_jsonl(run / "metrics.jsonl")
    assert len(metrics) == 2  # epoch 1 gives the first ranking, epoch 2 repeats it
    assert "criterion 2" in (run / "log.txt").read_text()
    assert main(["search", "--resume", str(run)]) == 0
    assert len(read_jsonl(run / "metrics.jsonl")) == 2
    assert (run / "genotype.json").exists()


# -- P-DARTS -------------------------------------------------------------------------------------------


def test_skip_cap_keeps_the_strongest_skips():
    ops = DARTS_OPS
    probs = []
    for e in range(14):  # every edge prefers skip; skip strength grows with the edge index
        row = [0.0] * 8
        row[3] = 0.5 + 0.01 * e
        row[4] = 0.3
        probs.append(row)
    free = derive_cell(probs, ops, 4)
    assert sum(op == "skip_connect" for op, _ in free) == 8
    for cap in (0, 1, 2, 3):
        capped = derive_cell(probs, ops, 4, skip_cap=cap)
        skips = [(op, j) for op, j in capped if op == "skip_connect"]
        assert len(skips) <= cap
        assert len(capped) == 8
    # Cap 2: the two strongest skip edges (the last node's, indices 12 and 13: inputs 3 and 4) stay.
    capped = derive_cell(probs, ops, 4, skip_cap=2)
    assert capped[-2:] == [("skip_connect", 4), ("skip_connect", 3)]


def test_skip_cap_in_nas_bench_201_takes_each_edges_next_op():
    ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    probs = [[0.1, 0.5 + 0.01 * e, 0.2, 0.15, 0.05] for e in range(6)]
    assert strongest_ops(probs, ops).count("skip_connect") == 6
    capped = strongest_ops(probs, ops, skip_cap=1)
    assert capped == ["nor_conv_1x1"] * 5 + ["skip_connect"]


def test_skip_cap_config_reaches_the_search(tmp_path, cli_search):
    run = cli_search(tmp_path, "epochs=1", "plot=false", "skip_cap=0")
    assert "skip_connect" not in (run / "genotype.json").read_text()


# -- SGAS ----------------------------------------------------------------------------------------------


def test_sgas_decides_the_most_certain_important_edge_and_cuts_the_rest_of_its_node():
    # The earlier form (v1), scored over the free edges only; the authors' form is checked against their code below.
    ops = DARTS_OPS
    uniform = [1 / 8] * 8
    probs = [uniform[:] for _ in range(5)]  # nodes of 2 and 3 inputs
    probs[1] = [0.02, 0.02, 0.02, 0.02, 0.86, 0.02, 0.02, 0.02]  # certain and important: sep_conv_3x3
    probs[0] = [0.9, 0.1 / 7, 0.1 / 7, 0.1 / 7, 0.1 / 7, 0.1 / 7, 0.1 / 7, 0.1 / 7]  # mostly `none`
    decided = [FREE] * 5
    first = decide_one(probs, ops, decided, [2, 3], 2, form="v1")
    assert (first["edge"], first["op"]) == (1, 4) and decided == [FREE, 4, FREE, FREE, FREE]
    # Edge 0 is mostly `none` (least important); the uniform edges tie, the earlier wins and takes its
    # first best op (max_pool_3x3); node 1's second decision cuts its third input.
    second = decide_one(probs, ops, decided, [2, 3], 2, form="v1")
    third = decide_one(probs, ops, decided, [2, 3], 2, form="v1")
    assert (second["edge"], second["op"], third["edge"], third["removed"]) == (2, 1, 3, [4])
    fourth = decide_one(probs, ops, decided, [2, 3], 2, form="v1")
    assert fourth["edge"] == 0 and fourth["op"] != 0  # never `none` where edges are kept per node
    assert decide_one(probs, ops, decided, [2, 3], 2, form="v1") is None
    assert decided == [fourth["op"], 4, 1, 1, REMOVED]


def test_sgas_schedule_is_the_authors():
    # Their loop decides after training the epoch numbered e from 0 when e >= 9 and (e - 9) % 5 == 0: after
    # 10, 15, ... epochs have finished; `decision_epoch` is asked with the number finished.
    theirs = [e + 1 for e in range(50) if e >= 9 and (e - 9) % 5 == 0]
    assert [n for n in range(1, 51) if decision_epoch(n, 9, 5)] == theirs == [10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert [n for n in range(1, 30) if decision_epoch(n, 9, 5, "v1")] == [9, 14, 19, 24, 29]  # one early


def _their_edge_decision(alphas, history, candidate, fan_in):
    """lightaime/sgas cnn/train_search.py `edge_decision` (`none` first), restated: -> (edge, op index)."""
    mat = alphas.softmax(-1)
    importance = mat[:, 1:].sum(-1)
    probs = mat[:, 1:] / importance[:, None]
    entropy = torch.distributions.Categorical(probs=probs).entropy() / math.log(probs.shape[1])

    def normalize(v):  # their utils.normalize
        return (v - v.min()) / (v.max() - v.min()) if v.max() > v.min() else torch.zeros_like(v)

    score = normalize(importance) * normalize(1 - entropy)
    if history:
        inter = sum(torch.minimum(h, probs).sum(1) for h in history) / len(history)
        score = score * normalize(inter)
    masked = torch.where(candidate, score, torch.tensor(-math.inf, dtype=score.dtype))
    edge = int(masked.argmax())
    return edge, int(probs[edge].argmax()) + 1


@pytest.mark.parametrize("criterion", [1, 2])
def test_sgas_decisions_are_the_authors_code(criterion):
    """Every decision of a whole DARTS cell (14 edges, k = 2) against a restatement of their edge_decision:
    factors from every edge's softmax, normalised over all edges, stability on renormalised non-`none` rows."""
    fan_in, agree, v1_differs = [2, 3, 4, 5], 0, 0
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        alphas = torch.randn(14, 8, generator=g, dtype=torch.float64)
        past = [alphas + 0.5 * torch.randn(14, 8, generator=g, dtype=torch.float64) for _ in range(4)]
        history = [(p.softmax(-1)[:, 1:] / p.softmax(-1)[:, 1:].sum(-1, keepdim=True)) for p in past]
        ours = {"sgas": [FREE] * 14, "v1": [FREE] * 14}
        rows, past_rows = alphas.softmax(-1).tolist(), [p.softmax(-1).tolist() for p in past]
        for _ in range(8):
            candidate = torch.tensor([d == FREE for d in ours["sgas"]])
            expect = _their_edge_decision(alphas, history if criterion == 2 else [], candidate, fan_in)
            kept = list(ours["sgas"])
            got = decide_one(rows, DARTS_OPS, ours["sgas"], fan_in, 2, past_rows if criterion == 2 else ())
            assert (got["edge"], got["op"]) == expect, (seed, kept)
            old = decide_one(rows, DARTS_OPS, list(kept), fan_in, 2, past_rows if criterion == 2 else (), "v1")
            v1_differs += old["edge"] != got["edge"]
            agree += 1
    assert agree == 40 * 8 and v1_differs > 0  # the earlier form would have failed this


def test_sgas_batch_grows_after_each_decision_epoch_only_when_asked(tiny_search):
    from dartsnas.conv.search import Searcher, prepare_data

    extra = ["progressive=true", "nodes=2", "subset=640"]  # 320 images a half
    config = load_config(None, tiny_search + extra + ["progressive_batch_increase=8"])
    searcher = Searcher(config, prepare_data(config, torch.device("cpu")), torch.device("cpu"))
    assert (searcher.epoch_batch_size(), searcher.steps_per_epoch()) == (32, 10)
    # Their count: + batch_increase per decision epoch (either kind deciding), 32 + 8 * count
    searcher.model.set_decisions({"normal": [4, 5, REMOVED, FREE, FREE], "reduce": [4, FREE, FREE, FREE, FREE]})
    assert (searcher.epoch_batch_size(), searcher.steps_per_epoch()) == (48, 7)
    fixed = load_config(None, tiny_search + extra)
    assert fixed.progressive_batch_increase == 0
    searcher.units["sgas"].config = fixed
    assert searcher.epoch_batch_size() == 32


def test_sgas_scores_decided_edges_by_their_alphas_not_their_one_hot_rows(tmp_path, monkeypatch, tiny_search):
    from dartsnas.conv.search import Searcher, prepare_data
    from dartsnas.methods.search import sgas as sgas_module

    config = load_config(None, tiny_search + ["progressive=true", "nodes=2", "progressive_warmup=0"])
    searcher = Searcher(config, prepare_data(config, torch.device("cpu")), torch.device("cpu"))
    searcher.model.decide("normal", 0, 4)
    seen = []
    monkeypatch.setattr(sgas_module, "decide_one", lambda probs, *rest: seen.append(probs))
    searcher.epoch = 1
    searcher.units["sgas"].decide(searcher, tmp_path)
    expect = searcher.model.alphas["normal"].softmax(-1)
    assert torch.allclose(torch.tensor(seen[0]), expect.detach(), atol=1e-6)  # edge 0 too, not one-hot


@pytest.mark.parametrize("form", ["sgas", "v1"])
def test_sgas_freezes_the_alphas_of_decided_and_cut_edges(tiny_search, form):
    from dartsnas.conv.search import Searcher, prepare_data

    config = load_config(None, tiny_search + ["progressive=true", "nodes=2", f"progressive_form={form}"])
    searcher = Searcher(config, prepare_data(config, torch.device("cpu")), torch.device("cpu"))
    model, data = searcher.model, searcher.data
    model.decide("normal", 1, 4)
    model.decide("reduce", 4, REMOVED)
    before = {k: a.detach().clone() for k, a in model.alphas.items()}
    x, y = data.arch_half.images[:8].float() / 255, data.arch_half.labels[:8]
    for _ in range(3):
        searcher.architect.step(x, y, x, y, searcher.optimizer)
    moved = {k: (model.alphas[k].detach() != before[k]).any(-1).tolist() for k in model.alphas}
    if form == "sgas":  # as their requires_grad = False: Adam's weight decay and momentum never reach them
        assert not moved["normal"][1] and not moved["reduce"][4]
    else:  # the earlier form let the optimiser move them (they are out of the mixture either way)
        assert moved["normal"][1] and moved["reduce"][4]
    assert moved["normal"][0] and moved["reduce"][0]


def test_a_run_made_before_progressive_form_keeps_the_earlier_sgas(tmp_path):
    from dartsnas.conv.config import SearchConfig
    from dartsnas.core.config import load_saved

    run = _saved_before(tmp_path, SearchConfig(progressive=True), "progressive_form", "progressive_batch_increase")
    resumed = load_saved(SearchConfig, run / "config.yaml")
    assert (resumed.progressive_form, resumed.progressive_batch_increase) == ("v1", 0)
    assert load_config(run / "config.yaml").progressive_form == "sgas"
    plain = _saved_before(tmp_path / "plain", SearchConfig(), "progressive_form")
    assert load_saved(SearchConfig, plain / "config.yaml").progressive_form == "sgas"
    with pytest.raises(ConfigError, match="progressive_form: unknown 'x'; available: sgas, v1"):
        load_config(None, ["progressive_form=x"])


def test_decided_edges_are_fixed_and_get_no_gradient():
    torch.manual_seed(0)
    net = Supernet201(3, 10, init_channels=4, stage_cells=1)
    net.decide("cell", 2, 3)
    mix = net.mix("cell")
    assert mix[2].tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]
    net(torch.randn(2, 3, 8, 8)).sum().backward()
    g = net.alphas["cell"].grad
    assert torch.all(g[2] == 0) and torch.any(g[0] != 0)
    assert net.derive().edges[2] == net.ops[3]
    with net.overridden(decided={}):
        assert net.mix("cell")[2].tolist() != [0.0, 0.0, 0.0, 1.0, 0.0]
    assert net.mix("cell")[2].tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]


@pytest.mark.slow
def test_sgas_decisions_survive_resume_and_make_the_genotype(tmp_path, monkeypatch, cli_search, tiny_search):
    extra = ["epochs=6", "plot=false", "progressive=true", "progressive_warmup=1", "progressive_interval=1", "nodes=2"]
    whole = cli_search(tmp_path, *extra, name="whole")
    # killed right after the second epoch's checkpoint (one decision made: the first follows epoch 2)
    killed = _killed_and_resumed(tmp_path, monkeypatch, tiny_search + extra, die=lambda state, n: n == 2)
    decisions = read_jsonl(killed / "decisions.jsonl")
    assert decisions == read_jsonl(whole / "decisions.jsonl")
    # Every epoch after a decision keeps it: the recorded decided rows only ever grow.
    records = read_jsonl(killed / "alphas.jsonl")
    for before, after in zip(records, records[1:]):
        for kind, row in before.get("decided", {}).items():
            assert all(a == b for a, b in zip(row, after["decided"][kind]) if a != FREE)
    # The final genotype is the sequence of decisions: each kept edge is a decided (edge, op).
    import json

    genotype = json.loads((whole / "genotype.json").read_text())
    names = load_config(None, tiny_search + extra).ops
    fan_in = [2, 3]
    for kind in ("normal", "reduce"):
        decided = {(d["edge"], d["op_name"]) for d in decisions if d["kind"] == kind}
        assert len(decided) == 4  # 2 nodes x 2 kept inputs
        kept = set()
        for n, (op, j) in enumerate(genotype[kind]):
            kept.add((sum(fan_in[: n // 2]) + j, op))
        assert kept == decided and all(op in names for _, op in kept)


def test_collapse_options_are_checked():
    for bad in (
        ["beta_decay=[1]"],
        ["beta_decay=[-1, 2]"],
        ["aux_skip=-1"],
        ["skip_cap=-1"],
        ["early_stop=true", "early_stop_skips=null", "early_stop_patience=null"],
        ["progressive_interval=0"],
        ["early_stop_patience=0"],
    ):
        with pytest.raises(ConfigError):
            load_config(None, bad)
    from dartsnas.recurrent.config import RecurrentSearchConfig

    for bad in ([0, 0.5], [1], [1, 1.5]):
        with pytest.raises(ConfigError, match="anneal_entropy must be two numbers in \\(0, 1\\]"):
            RecurrentSearchConfig(anneal_entropy=bad).validate()


@pytest.mark.slow
def test_beta_decay_lowers_the_recurrent_alphas_smooth_maximum(tmp_path, tiny_corpus):
    # Its gradient, softmax(alpha) / edges, is positive on every logit: the smooth maximum must fall.
    def search(name, *extra):
        args = ["search", "--task", "text", "--config", "quick", "--out", str(tmp_path), "--name", name]
        for item in [
            f"data_dir={tiny_corpus}",
            "max_lines={train: 200, valid: 40}",
            "nodes=3",
            "emsize=16",
            "batch_size=32",
            "eval_batch_size=4",
            "bptt=10",
            "progress=false",
            "plot=false",
            "epochs=2",
            *extra,
        ]:
            args += ["--set", item]
        assert main(args) == 0
        (run,) = [p for p in tmp_path.iterdir() if p.name.startswith(name + "-")]
        alphas = torch.tensor(read_jsonl(run / "alphas.jsonl")[-1]["alphas"]["recurrent"])
        return torch.logsumexp(alphas, -1).mean().item()

    assert search("beta", "beta_decay=[100, 100]") < search("plain") - 1e-3


def _saved_before(tmp_path, config, *missing):
    """RUN/config.yaml as a run made before the fields `missing` existed saved it."""
    import yaml

    saved = {k: v for k, v in config.to_dict().items() if k not in missing}
    run = tmp_path / "run-20260101-000000"
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    (run / "checkpoint.pt").write_text("{}")
    return run


def test_a_run_made_before_beta_decay_epochs_keeps_the_rescaled_form(tmp_path):
    from dartsnas.conv.config import SearchConfig
    from dartsnas.core.config import load_saved
    from dartsnas.recurrent.config import RecurrentSearchConfig
    from dartsnas.experiments import runner

    run = _saved_before(tmp_path, SearchConfig(beta_decay=[0.0, 50.0]), "beta_decay_epochs")
    assert load_saved(SearchConfig, run / "config.yaml").beta_decay_epochs is None  # resumed as it began
    assert load_config(run / "config.yaml").beta_decay_epochs == 100  # as a new run's file: the authors'
    plain = _saved_before(tmp_path / "plain", SearchConfig(), "beta_decay_epochs")
    assert load_saved(SearchConfig, plain / "config.yaml").beta_decay_epochs == 100  # no beta decay: nothing kept
    recurrent = _saved_before(tmp_path / "rnn", RecurrentSearchConfig(beta_decay=[0.0, 50.0]), "beta_decay_epochs")
    assert load_saved(RecurrentSearchConfig, recurrent / "config.yaml").beta_decay_epochs is None
    # `bench quality` does not report that run as one of the authors' form
    job = runner.search_job("x", [], tmp_path, "run", SearchConfig(beta_decay=[0.0, 50.0]), "search")
    with pytest.raises(ConfigError, match=r"other settings \(beta_decay_epochs\)"):
        runner.check_kept(job)
    runner.check_kept(runner.search_job("x", [], tmp_path, "run", load_saved(SearchConfig, run / "config.yaml"), ""))


def test_dartsnas_search_resume_runs_an_old_folder_in_the_forms_it_began_with(tmp_path, monkeypatch):
    from dartsnas.conv import search as search_module
    from dartsnas.conv.config import SearchConfig

    made = SearchConfig(dataset="digits", beta_decay=[0.0, 50.0], progressive=True, early_stop=True)
    made.space, made.ops = "nas-bench-201", ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    run = _saved_before(tmp_path, made, "beta_decay_epochs", "progressive_form", "early_stop_skips_nb201")
    seen = []
    monkeypatch.setattr(search_module, "run_search", lambda config, run_dir, resume: seen.append(config))
    assert main(["search", "--resume", str(run)]) == 0
    (config,) = seen
    assert (config.beta_decay_epochs, config.progressive_form, config.skip_threshold()) == (None, "v1", 2)


def test_recurrent_beta_weight_is_the_authors(tiny_corpus):
    from dartsnas.recurrent.config import RecurrentSearchConfig
    from dartsnas.recurrent.search import RecurrentSearcher, prepare_text

    config = RecurrentSearchConfig(
        data_dir=str(tiny_corpus),
        max_lines={"train": 50, "valid": 20},
        nodes=2,
        emsize=8,
        batch_size=4,
        epochs=5,
        beta_decay=[0.0, 50.0],
        device="cpu",
    ).validate()
    searcher = RecurrentSearcher(config, prepare_text(config, torch.device("cpu")), torch.device("cpu"))
    searcher.epoch = 2
    expect = 1.0 * beta_decay(searcher.model.arch_parameters())  # 50 * 2 / 100; rescaled to 5 epochs: 25
    assert searcher.architect.penalty().item() == pytest.approx(expect.item(), rel=1e-6)


# -- annealing by entropy ----------------------------------------------------------------------------------


def test_temperature_for_entropy_hits_the_target_whatever_the_logits_scale():
    from dartsnas.core.relax import discreteness, temperature_for_entropy

    torch.manual_seed(0)
    for scale in (0.01, 0.1, 3.0):
        alphas = [scale * torch.randn(14, 8), scale * torch.randn(14, 8)]
        for target in (0.9, 0.5, 0.05):
            tau = temperature_for_entropy(alphas, target)
            got = discreteness([(a / tau).softmax(-1) for a in alphas])["alpha_entropy"]
            assert got == pytest.approx(target, abs=1e-6)
    # (scale 3: the softmax at temperature 1 is far from uniform) a target it cannot reach below `high` gives high
    assert temperature_for_entropy(alphas, 0.999999, high=1.0) == pytest.approx(1.0, rel=1e-9)


def test_entropy_annealed_search_ends_near_one_hot(tmp_path, cli_search):
    run = cli_search(tmp_path, "epochs=3", "plot=false", "anneal_entropy=[1, 0.05]")
    metrics = read_jsonl(run / "metrics.jsonl")
    # The last epoch trains at the temperature of entropy 0.05 (set from its first alphas); the record after
    # it, with the alphas moved by one more epoch, is still near one-hot.
    assert metrics[-1]["alpha_entropy"] < 0.25 and metrics[0]["alpha_entropy"] > 0.9
    assert metrics[-1]["temperature"] < metrics[0]["temperature"] <= 1.0


# -- composable with every mode and order, in both spaces ---------------------------------------------------

NB201 = ["space=nas-bench-201", "ops=[none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3]", "stage_cells=1"]


@pytest.mark.slow
@pytest.mark.parametrize("space", ["darts", "nas-bench-201"])
@pytest.mark.parametrize("mode", ["exact", "lean", "partial", "sample"])
@pytest.mark.parametrize("order", ["first", "second"])
def test_every_option_together_in_every_mode_and_order(tmp_path, cli_search, space, mode, order):
    options = [
        "beta_decay=[0, 50]",
        "aux_skip=1",
        "progressive=true",
        "progressive_warmup=1",
        "progressive_interval=1",
        "early_stop=true",
        "early_stop_skips=null",
        "early_stop_patience=5",
        "skip_cap=1",
        "nodes=2",
    ]
    if mode != "sample":
        options.append("anneal_entropy=[1, 0.5]")
    extra = [f"mixed_op={mode}", f"unrolled={order == 'second'}", "epochs=3", "plot=false", *options]
    extra += ["init_channels=8", "partial_k=2"] if mode == "partial" else []
    run = cli_search(tmp_path, *extra, *(NB201 if space == "nas-bench-201" else []))
    decisions = read_jsonl(run / "decisions.jsonl")
    # The first decision follows the epoch numbered 1 from 0 (SGAS's warmup_dec_epoch), i.e. epoch 2.
    assert [d["epoch"] for d in decisions][:2] == ([2, 2] if space == "darts" else [2, 3])
    if space == "darts":
        from dartsnas.core.genotype import load_genotype

        ops = [op for op, _ in load_genotype(run).normal]
    else:
        from dartsnas.conv.nb201.genotype import load_nb201_genotype

        ops = list(load_nb201_genotype(run).edges)
    assert ops.count("skip_connect") <= 1


@pytest.mark.slow
def test_an_annealed_search_resumes_exactly_from_inside_an_epoch(tmp_path, monkeypatch, cli_search, tiny_search):
    # The epoch's temperature is found from the alphas at its start; resumed from a checkpoint inside the epoch
    # (the alphas have moved since), it must be the checkpointed one, not found again.
    extra = ["epochs=2", "plot=false", "anneal_entropy=[1, 0.05]", "checkpoint_steps=2"]  # 5 steps an epoch
    whole = cli_search(tmp_path, *extra, name="whole")
    # killed after the first checkpoint inside the second epoch
    killed = _killed_and_resumed(
        tmp_path,
        monkeypatch,
        tiny_search + extra,
        die=lambda state, n: state["epoch"] == 1 and state["position"] is not None,
    )
    temperatures = [[r["temperature"] for r in read_jsonl(run / "metrics.jsonl")] for run in (whole, killed)]
    assert temperatures[0] == temperatures[1] and temperatures[0][1] < 1.0, temperatures
    assert read_jsonl(killed / "alphas.jsonl") == read_jsonl(whole / "alphas.jsonl")


@pytest.mark.slow
@pytest.mark.parametrize("mode, unrolled", [("exact", False), ("lean", True)])
def test_entropy_annealing_in_the_recurrent_search_hits_its_line_and_resumes_exactly(
    tmp_path, tiny_corpus, monkeypatch, mode, unrolled
):
    # With beta-DARTS's decay beside it (the options compose), in both modes and orders.
    from dartsnas.core.relax import discreteness

    def search_args(name):
        args = ["search", "--task", "text", "--config", "quick", "--out", str(tmp_path), "--name", name]
        for item in [
            f"data_dir={tiny_corpus}",
            "max_lines={train: 200, valid: 40}",
            "nodes=3",
            "emsize=16",
            "batch_size=32",
            "eval_batch_size=4",
            "bptt=10",
            "progress=false",
            "plot=false",
            "epochs=3",
            "anneal_entropy=[1, 0.05]",
            "checkpoint_steps=2",
            "beta_decay=[0, 50]",
            f"mixed_op={mode}",
            f"unrolled={unrolled}",
        ]:
            args += ["--set", item]
        return args

    assert main(search_args("whole")) == 0
    (whole,) = [p for p in tmp_path.iterdir() if p.name.startswith("whole-")]
    records, metrics = read_jsonl(whole / "alphas.jsonl"), read_jsonl(whole / "metrics.jsonl")
    # Each epoch's temperature puts the alphas it started from on the line from entropy 1 to 0.05.
    for epoch in (1, 2):
        alphas = torch.tensor(records[epoch]["alphas"]["recurrent"])  # records[0]: before the first epoch
        got = discreteness([(alphas / metrics[epoch]["temperature"]).softmax(-1)])["alpha_entropy"]
        assert got == pytest.approx(linear(epoch, 3, 1.0, 0.05), abs=1e-6)
    assert metrics[-1]["alpha_entropy"] < 0.25 and metrics[0]["temperature"] == 1.0

    # killed after the first checkpoint inside the second epoch
    killed = _killed_and_resumed(
        tmp_path,
        monkeypatch,
        search_args("killed"),
        die=lambda state, n: state["epoch"] == 1 and state["position"] is not None,
    )
    drop = ("seconds", "peak_memory_gb")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(read_jsonl(killed / "metrics.jsonl")) == strip(metrics)
    assert read_jsonl(killed / "alphas.jsonl") == records


def _killed_and_resumed(tmp_path, monkeypatch, args, die):
    """Runs `dartsnas search` (args: full argument list, or the --set items of a convolutional search named
    "killed"), interrupted right after the checkpoint for which die(state, n-th save) is true, then resumes it
    to the end; returns its run folder."""
    if args[0] != "search":
        args = ["search", "--out", str(tmp_path), "--name", "killed"] + [a for item in args for a in ("--set", item)]
    real_save, saves = runs_module.save_checkpoint, {"n": 0}

    def save_then_die(state, path, *rest):
        real_save(state, path, *rest)
        saves["n"] += 1
        if die(state, saves["n"]):
            raise KeyboardInterrupt

    monkeypatch.setattr(runs_module, "save_checkpoint", save_then_die)
    assert main(args) == 130
    (killed,) = [p for p in tmp_path.iterdir() if p.name.startswith("killed-")]
    monkeypatch.setattr(runs_module, "save_checkpoint", real_save)
    assert main(["search", "--resume", str(killed)]) == 0
    return killed
