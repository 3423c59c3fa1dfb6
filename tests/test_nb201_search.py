"""Search in the NAS-Bench-201 space: the fast supernet against a plain statement of the authors' search cell
(float64), every mode and both orders through the same architecture step, the benchmark's derivation rule,
the config's checks, and CLI searches that log the derived cell's true accuracy every epoch."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from dartsnas.cli import main
from dartsnas.conv.config import SearchConfig, load_config
from dartsnas.conv.nb201.genotype import EDGES, OPS, CellGenotype
from dartsnas.conv.nb201.model import ResidualReduction, Supernet201, candidate, stages
from dartsnas.conv.nb201.table import load_table
from dartsnas.core.architect import Architect
from dartsnas.core.config import ConfigError
from dartsnas.core.plot import read_jsonl


class PlainCell(nn.Module):
    """The authors' search cell, stated plainly: every op on every edge built and run on its own,
    node i = sum_j sum_o p_o * op(state_j)."""

    def __init__(self, c):
        super().__init__()
        self.edges = nn.ModuleList(nn.ModuleList(candidate(name, c) for name in OPS) for _ in EDGES)

    def forward(self, x, probs):
        states, e = [x], 0
        for i in range(1, 4):
            states.append(
                sum(sum(p * op(states[j]) for p, op in zip(probs[e + j], self.edges[e + j])) for j in range(i))
            )
            e += i
        return states[-1]


class PlainNetwork(nn.Module):
    def __init__(self, c=4, n=1, classes=5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers, c_prev = [], c
        for c_curr, reduction in stages(c, n):
            layers.append(ResidualReduction(c_prev, c_curr) if reduction else PlainCell(c_curr))
            c_prev = c_curr
        self.layers = nn.ModuleList(layers)
        self.last = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU())
        self.classifier = nn.Linear(c_prev, classes)
        self.alphas = nn.Parameter(torch.zeros(len(EDGES), len(OPS)))

    def forward(self, x):
        probs = self.alphas.softmax(-1)
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, probs) if isinstance(layer, PlainCell) else layer(x)
        return self.classifier(self.last(x).mean((2, 3)))


def _copy(fast, plain):
    """The plain network's parameters from the fast one's: same modules, the shared pool counted per edge."""
    with torch.no_grad():
        for name, p in plain.named_parameters():
            if name == "alphas":
                p.copy_(fast.alphas["cell"])
        fast_layers = [m for m in fast.layers]
        for fl, pl in zip(fast_layers, plain.layers):
            if isinstance(pl, PlainCell):
                for _e, (fedge, pedge) in enumerate(zip(fl.edges, pl.edges)):
                    for k, op in zip(fedge.index, fedge.ops):
                        for q, r in zip(pedge[k].parameters(), op.parameters(), strict=True):
                            q.copy_(r)
            else:
                pl.load_state_dict(fl.state_dict())
        plain.stem.load_state_dict(fast.stem.state_dict())
        plain.last.load_state_dict(fast.last.state_dict())
        plain.classifier.load_state_dict(fast.classifier.state_dict())


@pytest.mark.parametrize("mode", ["exact", "lean"])
def test_supernet_computes_the_authors_search_network(mode):
    torch.manual_seed(0)
    fast = Supernet201(3, 5, init_channels=4, stage_cells=1, mixed_op=mode).double()
    plain = PlainNetwork().double()
    with torch.no_grad():
        fast.alphas["cell"].normal_()  # away from uniform: every op's share matters
    _copy(fast, plain)
    x = torch.randn(6, 3, 8, 8, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 5, (6,))
    losses, grads = [], []
    for net in (fast, plain):
        loss = nn.functional.cross_entropy(net(x), y)
        losses.append(loss)
        grads.append(
            torch.autograd.grad(
                loss, [net.alphas["cell"] if net is fast else net.alphas] + [net.stem[0].weight, net.classifier.weight]
            )
        )
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-12, atol=0)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mode", ["exact", "lean", "partial", "sample"])
@pytest.mark.parametrize("unrolled", [False, True], ids=["first", "second"])
def test_every_mode_and_order_takes_architecture_steps(mode, unrolled):
    torch.manual_seed(0)
    model = Supernet201(
        3,
        4,
        init_channels=8,
        stage_cells=1,
        mixed_op=mode,
        sample_grad="gdas_nb201" if mode == "sample" else "straight_through",
    )
    architect = Architect(model, nn.CrossEntropyLoss(), arch_lr=0.1, unrolled=unrolled)
    optimizer = torch.optim.SGD(model.weights(), 0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 4, (8,))
    before = {k: a.detach().clone() for k, a in model.alphas.items()}
    architect.step(x, y, x, y, optimizer)
    assert not torch.equal(before["cell"], model.alphas["cell"])
    assert all(torch.isfinite(a).all() for a in model.alphas.values())
    assert isinstance(model.derive(), CellGenotype)


def test_derivation_is_the_strongest_op_per_edge_none_included():
    model = Supernet201(3, 4, init_channels=4, stage_cells=1)
    with torch.no_grad():
        model.alphas["cell"].zero_()
        for e, k in enumerate([0, 3, 1, 4, 2, 0]):  # none wins edge 1<-0 and edge 3<-2
            model.alphas["cell"][e, k] = 1.0
        model.alphas["cell"][2, 2] = 1.0  # a tie on edge 2<-1: skip_connect (1) against nor_conv_1x1 (2)
    assert str(model.derive()) == "|none~0|+|nor_conv_3x3~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"
    with pytest.raises(ValueError, match="its own rule"):
        model.derive("darts")


def test_config_checks_name_the_space():
    assert load_config("nb201-darts-v1").derivation() == "nas-bench-201"
    with pytest.raises(ConfigError, match="unknown op.*nas-bench-201 space.*nor_conv_3x3"):
        load_config(None, ["space=nas-bench-201"])  # the DARTS ops in the NAS-Bench-201 space
    with pytest.raises(ConfigError, match="derivation rule 'gdas' for the nas-bench-201 space"):
        load_config("nb201-darts-v1", ["derive=gdas"])
    with pytest.raises(ConfigError, match="benchmark_dataset.*cifar100"):
        load_config("nb201-darts-v1", ["benchmark_dataset=svhn"])
    with pytest.raises(ConfigError, match="unknown op.*darts space"):
        SearchConfig(ops=["none", "nor_conv_3x3"]).validate()


@pytest.mark.parametrize(
    "name",
    [
        "nb201-darts-v1",
        "nb201-darts-v2",
        "nb201-gdas",
        "nb201-pcdarts",
        "nb201-quick",
        "nb201-cpu-darts-v1",
        "nb201-cpu-darts-v2",
        "nb201-cpu-gdas",
        "nb201-cpu-pcdarts",
        "nb201-cpu-darts-v1-anneal",
        "nb201-cpu-anneal-entropy",
        "nb201-cpu-beta",
        "nb201-cpu-darts-minus",
        "nb201-cpu-sgas",
        "nb201-cpu-darts-plus",
    ],
)
def test_shipped_nb201_configs_build_their_supernet(name):
    config = load_config(name)
    assert config.space == "nas-bench-201" and config.nesterov and config.ops == list(OPS)
    with torch.device("meta"):
        model = Supernet201.from_config(config, 3, 10)
    assert model.relaxation.name == config.mixed_op and model.alphas["cell"].shape == (6, 5)


def test_the_paper_setting_supernet_has_the_authors_size_less_their_biases():
    # Their DARTS-V1 supernet (C=16, N=5): 1,692,826 weights, 6,720 of them conv biases before a batch norm,
    # which ours leaves out (model.py's docstring says why).
    with torch.device("meta"):
        model = Supernet201(3, 10)
    assert sum(p.numel() for p in model.weights()) == 1_692_826 - 6_720


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["exact", "lean", "partial", "sample"])
@pytest.mark.parametrize("order", ["first", "second"])
def test_cli_search_on_cifar10_logs_the_true_accuracy_every_epoch(shared_data, tmp_path, mode, order):
    archive = shared_data / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
    study = Path(__file__).resolve().parents[1] / "studies" / "configs" / "nb201-cpu-darts-v1.yaml"  # the JPEG copy
    args = ["search", "--config", str(study), "--out", str(tmp_path), "--name", "run", "--no-progress"]
    for item in (
        [
            "data_dir=" + str(archive),
            "data_options={limit_per_class: 8}",
            "epochs=2",
            "batch_size=20",
            f"mixed_op={mode}",
            f"unrolled={order == 'second'}",
            "stage_cells=1",
            "plot=false",
        ]
        + (["partial_k=2"] if mode == "partial" else [])
        + (["sample_grad=gdas_nb201"] if mode == "sample" else [])
    ):
        args += ["--set", item]
    assert main(args) == 0
    (run_dir,) = tmp_path.iterdir()
    cell = CellGenotype.from_dict(json.loads((run_dir / "genotype.json").read_text()))
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert len(metrics) == 2
    history = [CellGenotype.from_dict(r["genotype"]) for r in read_jsonl(run_dir / "genotypes.jsonl")]
    table = load_table()
    for m, g in zip(metrics, history):
        assert m["benchmark_acc"] == pytest.approx(table.accuracy(g, "cifar10") / 100)
        assert 0 <= m["onehot_gap"] <= 0.8 and 0 <= m["alpha_entropy"] <= 1  # 5 ops: uniform is 0.8 and 1
    assert history[-1] == cell
