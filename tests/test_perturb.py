"""DARTS-PT (methods/derivations/pt.py) and derivation from a run folder (conv/rederive.py, `dartsnas derive`): the op whose
removal hurts is chosen over the largest alpha, the topology keeps 2 inputs per node, evaluations leave batch
norm alone, tuning runs at a tenth of the rate, and end to end a finished search is derived again beside its
own files, which stay untouched; `dartsnas bench quality` reports derived cells as settings of their own."""

import hashlib
import json
import sys
from types import SimpleNamespace

import pytest
import torch
import yaml

from dartsnas.cli import main
from dartsnas.conv.config import load_config
from dartsnas.conv.nb201.genotype import CellGenotype, load_nb201_genotype
from dartsnas.conv.nb201.model import Supernet201
from dartsnas.conv.nb201.table import load_table
from dartsnas.conv.rederive import pt_derive, validation_accuracy
from dartsnas.conv.search import Searcher, prepare_data
from dartsnas.conv.supernet import Supernet
from dartsnas.core.genotype import load_genotype
from dartsnas.core.progressive import FREE, REMOVED
from dartsnas.experiments.quality import summarise, tables
from dartsnas.methods.derivations.pt import node_edges


def _fake_searcher(model, rule):
    """What pt_derive needs of a search when the measure is given and nothing is tuned."""
    return SimpleNamespace(model=model, config=SimpleNamespace(derivation=lambda: rule, lr=0.1))


def test_the_op_whose_removal_destroys_accuracy_is_chosen_over_the_largest_alpha():
    model = Supernet201(3, 4, init_channels=4, stage_cells=1)
    edge, decisive, favoured = 3, model.ops.index("nor_conv_3x3"), model.ops.index("skip_connect")
    with torch.no_grad():
        model.alphas["cell"].zero_()
        model.alphas["cell"][edge, favoured] = 3.0  # argmax would take skip_connect on this edge
    assert model.derive().edges[edge] == "skip_connect"

    def accuracy():  # of the supernet as it computes now: collapses without the decisive op on its edge
        mix = model.mix("cell")
        return 0.2 + 0.7 * float(mix[edge, decisive] > 0) + 0.01 * float(mix.sum()) / len(mix)

    cell, evidence = pt_derive(
        _fake_searcher(model, "nas-bench-201"), torch.Generator().manual_seed(0), tune_epochs=0, accuracy=accuracy
    )
    assert cell.edges[edge] == "nor_conv_3x3"
    (record,) = [d for d in evidence["decisions"] if d["edge"] == edge]
    assert record["edge_name"] == "3<-0" and record["chosen"] == "nor_conv_3x3"
    drops = {op: record["base_acc"] - acc for op, acc in record["acc_without"].items()}
    assert drops["nor_conv_3x3"] > 0.6 and all(d < 0.05 for op, d in drops.items() if op != "nor_conv_3x3")
    assert set(record["acc_without"]) == set(model.ops)  # `none` is a candidate in NAS-Bench-201's space
    assert len(evidence["decisions"]) == 6 and evidence["topology"] == []
    assert evidence["evaluations"] == 6 * (1 + len(model.ops))
    assert model.decided["cell"][edge] == decisive and FREE not in model.decided["cell"]
    assert model.masks == {}  # every mask was taken off again


def test_darts_space_decides_every_edge_and_keeps_the_two_inputs_whose_removal_hurts_most():
    model = Supernet(3, 4, init_channels=4, layers=3)
    with torch.no_grad():
        for a in model.alphas.values():
            a.zero_()  # equal probabilities: an op's weight in the measure below is its importance alone
    importance = {
        k: torch.rand(sum(model.fan_in), len(model.ops), generator=torch.Generator().manual_seed(i))
        for i, k in enumerate(model.kinds)
    }

    def accuracy():
        return float(sum((importance[k] * model.mix(k)).sum() for k in model.kinds))

    genotype, evidence = pt_derive(
        _fake_searcher(model, "darts"), torch.Generator().manual_seed(1), tune_epochs=0, accuracy=accuracy
    )
    none = model.ops.index("none")
    for kind in model.kinds:
        decided = model.decided[kind]
        assert FREE not in decided and none not in decided
        for n, inputs in enumerate(node_edges(model.fan_in)):
            kept = [e for e in inputs if decided[e] != REMOVED]
            assert len(kept) == 2
            # The op: the non-`none` one that weighs most; the inputs: the two whose chosen ops weigh most.
            chosen = {
                e: max((o for o in range(len(model.ops)) if o != none), key=lambda o: importance[kind][e, o])
                for e in inputs
            }
            assert all(decided[e] == chosen[e] for e in kept)
            assert sorted(kept) == sorted(sorted(inputs, key=lambda e: -importance[kind][e, chosen[e]])[:2])
            # The genotype is the decisions.
            cell = getattr(genotype, kind)[2 * n : 2 * n + 2]
            assert sorted(cell) == sorted((model.ops[decided[e]], j) for j, e in enumerate(inputs) if e in kept)
    assert len(evidence["decisions"]) == 2 * 14 and not any("none" in d["acc_without"] for d in evidence["decisions"])
    assert len(evidence["topology"]) == 2 * (1 + 2 + 3)  # nodes of 3, 4 and 5 inputs each cut down to 2
    assert {t["node"] for t in evidence["topology"]} == {"3", "4", "5"}


def _tuned_searcher(model, space):
    """A search whose tuning epochs are recorded: (optimiser, its lr, its momentum buffers) each epoch."""
    weight = torch.zeros(1, requires_grad=True)
    model.weights = lambda: [weight]
    searcher = SimpleNamespace(model=model, seen=[])
    searcher.optimizer = torch.optim.SGD([weight], lr=0.1, momentum=0.9)
    searcher.optimizer.state[weight]["momentum_buffer"] = torch.ones(1)  # the search's momentum
    searcher.config = SimpleNamespace(
        derivation=lambda: space, space=space, lr=0.1, momentum=0.9, weight_decay=3e-4, nesterov=False
    )

    def train_epoch():
        opt = searcher.optimizer
        searcher.seen.append((opt, opt.param_groups[0]["lr"], len(opt.state)))
        weight.grad = torch.ones(1)
        opt.step()  # moves its own state, not the search's

    searcher.train_epoch = train_epoch
    return searcher


def test_tuning_runs_the_search_steps_in_a_fresh_optimiser_at_a_tenth_of_the_rate_between_rounds():
    model = Supernet201(3, 4, init_channels=4, stage_cells=1)
    searcher = _tuned_searcher(model, "nas-bench-201")
    search_optimizer = searcher.optimizer
    _, evidence = pt_derive(searcher, torch.Generator().manual_seed(0), tune_epochs=2, accuracy=lambda: 0.5)
    # 6 edges, one a round: tuning between the rounds only, 5 x 2 epochs, constant rate, in one new optimiser
    # per interval that starts without the search's momentum (darts-pt's reset_optimizer)
    assert [lr for _, lr, _ in searcher.seen] == pytest.approx([0.01] * 10)
    assert all(opt is not search_optimizer for opt, _, _ in searcher.seen)
    assert [n for _, _, n in searcher.seen][:2] == [0, 1]  # fresh: no state at its first step
    assert searcher.optimizer is search_optimizer and search_optimizer.param_groups[0]["lr"] == 0.1
    assert torch.equal(next(iter(search_optimizer.state.values()))["momentum_buffer"], torch.ones(1))
    assert (evidence["tune_epochs"], evidence["tuned_epochs"]) == (2, 10)


@pytest.mark.parametrize("space, epochs", [("nas-bench-201", 5), ("darts", 10)])
def test_tuning_defaults_to_the_authors_epochs_per_space(space, epochs):
    # darts-pt: --proj_intv 5 (nasbench201/train_search.py), 10 (sota/cnn/train_search.py)
    model = Supernet201(3, 4, init_channels=4, stage_cells=1) if space == "nas-bench-201" else None
    if model is None:
        model = Supernet(3, 4, init_channels=4, layers=3, nodes=2)
    searcher = _tuned_searcher(model, space)
    _, evidence = pt_derive(searcher, torch.Generator().manual_seed(0), accuracy=lambda: 0.5)
    rounds = 6 if space == "nas-bench-201" else 5 + 1  # nodes of 2 and 3 inputs: 5 edges, then 1 node to cut
    assert evidence["tune_epochs"] == epochs and len(searcher.seen) == (rounds - 1) * epochs


@pytest.mark.parametrize("mode", ["exact", "sample"])
def test_an_evaluation_is_deterministic_and_leaves_batch_norm_as_it_was(mode):
    config = load_config(
        "nb201-quick",
        [
            "dataset=fake",
            "data_options={shape: [3, 8, 8], size: 48}",
            "download=false",
            "subset=null",
            "batch_size=8",
            "init_channels=4",
            f"mixed_op={mode}",
        ],
    )
    searcher = Searcher(config, prepare_data(config, torch.device("cpu")), torch.device("cpu"))
    searcher.train_epoch(None)  # running statistics away from their start
    before = {k: v.clone() for k, v in searcher.model.state_dict().items()}
    first = validation_accuracy(searcher, max_batches=2)
    assert first == validation_accuracy(searcher, max_batches=2)
    assert all(torch.equal(before[k], v) for k, v in searcher.model.state_dict().items())
    cell, evidence = pt_derive(searcher, torch.Generator().manual_seed(0), tune_epochs=0, max_batches=1)
    assert isinstance(cell, CellGenotype) and evidence["evaluations"] == 6 * 6
    assert all(torch.equal(before[k], v) for k, v in searcher.model.state_dict().items())  # nothing was tuned


# ---------------------------------------------------------------------------------------------------
# dartsnas derive


def _hashes(run):
    return {
        p.relative_to(run): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file() and "derived" not in p.parts
    }


def test_a_folder_that_is_no_search_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    assert main(["derive", str(tmp_path)]) == 2
    assert "is not a search run folder" in capsys.readouterr().err
    assert main(["derive", str(tmp_path), "--rule", "pt", "--skip-cap", "2"]) == 2
    assert "for --rule argmax only" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "dartsnas.methods.derivations.bnb", None)  # as if bnb.py were not there
    assert main(["derive", str(tmp_path), "--rule", "bnb"]) == 2
    assert "dartsnas/methods/derivations/bnb.py" in capsys.readouterr().err


@pytest.mark.slow
def test_derive_a_darts_search_again_by_pt_and_by_argmax_with_a_skip_cap(tmp_path, cli_search, capsys):
    run = cli_search(tmp_path, "epochs=1", "plot=false", "nodes=3", "ops=[none,skip_connect,sep_conv_3x3,max_pool_3x3]")
    files = _hashes(run)
    assert main(["derive", str(run), "--rule", "pt", "--tune-epochs", "1", "--batches", "1", "--device", "cpu"]) == 0
    assert "pt derivation" in capsys.readouterr().out
    record = json.loads((run / "derived" / "pt.json").read_text())
    assert record["rule"] == "pt" and record["options"] == {"tune_epochs": 1, "seed": 0, "batches": 1}
    assert len(record["evidence"]["decisions"]) == 2 * 9 and len(record["evidence"]["topology"]) == 2 * (1 + 2)
    genotype = load_genotype(run / "derived" / "pt.json")  # what `dartsnas train RUN/derived/pt.json` reads
    assert str(genotype) == record["genotype_text"]

    assert main(["derive", str(run), "--rule", "argmax", "--skip-cap", "0", "--device", "cpu"]) == 0
    capped = load_genotype(run / "derived" / "argmax-skip-cap-0.json")
    assert "skip_connect" not in [op for op, _ in capped.normal]
    assert _hashes(run) == files  # checkpoint, genotype.json, logs: untouched


@pytest.mark.slow
def test_derive_an_nb201_search_by_pt_and_report_it_beside_the_search(tmp_path, cli_search, capsys):
    ops = "ops=[none,skip_connect,nor_conv_1x1,nor_conv_3x3,avg_pool_3x3]"
    run = cli_search(tmp_path, "space=nas-bench-201", ops, "stage_cells=1", "epochs=1", "plot=false")
    files = _hashes(run)
    assert main(["derive", str(run), "--rule", "pt", "--tune-epochs", "1", "--device", "cpu"]) == 0
    assert "NAS-Bench-201 cifar10 test accuracy" in capsys.readouterr().out
    record = json.loads((run / "derived" / "pt.json").read_text())
    cell = load_nb201_genotype(run / "derived" / "pt.json")
    assert record["accuracy"] == load_table().accuracy(cell, "cifar10")
    assert _hashes(run) == files
    report = summarise(tmp_path, [("s", 0, run)], {}, [1])
    assert list(report["settings"]) == ["s", "s+pt"]
    (derived,) = report["settings"]["s+pt"]["seeds"]
    assert derived["cell"] == str(cell) and derived["accuracy"] == record["accuracy"]
    search = report["settings"]["s"]["seeds"][0]
    assert derived["seconds"] == pytest.approx(search["seconds"] + record["seconds"])


def _fake_run(run_dir, cell, seconds=2.0):
    """A finished NAS-Bench-201 search's files, as the search writes them (no search needed for the report)."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(load_config("nb201-quick").to_dict()))
    (run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "seconds": seconds, "benchmark_acc": 0.5}) + "\n")
    g = CellGenotype.parse(cell)
    (run_dir / "genotypes.jsonl").write_text(json.dumps({"epoch": 1, "genotype": g.to_dict()}) + "\n")
    g.save(run_dir / "genotype.json")


SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def test_quality_reports_a_derived_cell_as_a_setting_beside_its_search(tmp_path):
    runs = [("a", seed, tmp_path / "a" / f"seed-{seed}") for seed in (0, 1)]
    for _, _, run in runs:
        _fake_run(run, SKIP)
    (runs[0][2] / "derived").mkdir()
    record = {"rule": "pt", "genotype": CellGenotype.parse(BEST).to_dict(), "seconds": 3.0}
    (runs[0][2] / "derived" / "pt.json").write_text(json.dumps(record))
    report = summarise(tmp_path, runs, {}, [1])
    assert list(report["settings"]) == ["a", "a+pt"]
    derived = report["settings"]["a+pt"]
    assert derived["seeds"][0]["cell"] == BEST and derived["seeds"][0]["seconds"] == pytest.approx(5.0)
    assert derived["seeds"][0]["accuracy"] == load_table().accuracy(BEST) == derived["mean"]
    assert derived["seeds"][1]["pending"] == "not derived yet" and "error" not in derived["seeds"][1]
    text = tables(report)
    assert "| a+pt | 1/2 |" in text
    assert f"| a+pt | 1 | not derived yet: `dartsnas derive {runs[1][2]}` |" in text
