"""Training a NAS-Bench-201 cell from scratch with the benchmark's recipe through `dartsnas train`: the shipped
configs, the checks of `net: nas-bench-201`, the genotype deciding the kind of network, and end to end on
scikit-learn's digits a run folder that resumes, exports and plots."""

import json

import pytest
import torch

from dartsnas.cli import main
from dartsnas.conv.config import TrainConfig, load_train_config
from dartsnas.conv.nb201.genotype import PUBLISHED_NB201, CellGenotype, load_nb201_genotype
from dartsnas.conv.train import Trainer, prepare_data
from dartsnas.core import runs as runs_module
from dartsnas.core.config import ConfigError
from dartsnas.core.runs import read_jsonl

# Every op of the space once or more, `none` included.
EVERY_OP = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
# The benchmark's recipe (--config nb201) on 8x8 digits: a 3-cell network of 4 channels, small batches.
TINY = [
    "dataset=digits",
    "subset=400",
    "init_channels=4",
    "layers=3",
    "batch_size=32",
    "valid_portion=0.2",
    "progress=false",
    "plot=false",
    "device=cpu",
]


def _train(out, *extra, genotype=EVERY_OP, name="run", code=0):
    args = ["train", genotype, "--config", "nb201", "--out", str(out), "--name", name]
    for item in TINY + list(extra):
        args += ["--set", item]
    assert main(args) == code
    found = [p for p in out.iterdir() if p.name.startswith(name + "-")]
    return found[0] if found else None


# ----------------------------------------------------------------------------------------------
# Configs


def test_nb201_config_is_the_benchmarks_recipe():
    config = load_train_config("nb201")
    expected = dict(
        net="nas-bench-201",
        init_channels=16,
        layers=15,
        auxiliary=False,
        drop_path_prob=0.0,
        epochs=200,
        batch_size=256,
        lr=0.1,
        lr_schedule="cosine",
        lr_min=0.0,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        grad_clip=None,
        label_smoothing=0.0,
        cutout=False,
        crop_padding=4,
        flip=True,
        dataset="cifar10",
        valid_portion=0.0,
    )
    assert {k: getattr(config, k) for k in expected} == expected
    quick = load_train_config("nb201-quick")
    assert (quick.net, quick.nesterov, quick.grad_clip, quick.auxiliary, quick.drop_path_prob) == (
        "nas-bench-201",
        True,
        None,
        False,
        0.0,
    )
    # the official CIFAR-10, downloaded where missing (the repository's figures: studies/configs/train/nb201-quick.yaml)
    assert (quick.dataset, quick.download, quick.data_dir, quick.subset) == ("cifar10", True, None, 5000)


def test_darts_defaults_are_unchanged():
    config = TrainConfig()
    assert (config.nesterov, config.grad_clip) == (False, 5.0)


def test_net_nas_bench_201_names_every_conflict_and_the_fix():
    with pytest.raises(ConfigError) as err:
        load_train_config(None, ["net=nas-bench-201"])  # the DARTS defaults: auxiliary head, drop path 0.2, 20 cells
    message = str(err.value)
    for fix in ("auxiliary: false", "drop_path_prob: 0", "multiple of 3", "--config nb201"):
        assert fix in message
    for bad, fix in (
        ("layers=10", "multiple of 3"),
        ("layers=0", "multiple of 3"),
        ("auxiliary=true", "auxiliary: false"),
        ("drop_path_prob=0.2", "drop_path_prob: 0"),
    ):
        with pytest.raises(ConfigError, match=fix):
            load_train_config("nb201", [bad])
    assert load_train_config("nb201", ["layers=6", "init_channels=5"]).layers == 6  # no factorized reduction: odd C


def test_darts_layouts_keep_their_checks():
    with pytest.raises(ConfigError, match="at least 3"):
        load_train_config(None, ["layers=2"])
    with pytest.raises(ConfigError, match="even"):
        load_train_config(None, ["init_channels=5"])
    assert load_train_config(None, ["layers=10"]).layers == 10  # any depth from 3


def test_gradient_clipping_and_nesterov_options_are_checked():
    assert load_train_config(None, ["grad_clip=null", "nesterov=true"]).grad_clip is None
    with pytest.raises(ConfigError, match="grad_clip"):
        load_train_config(None, ["grad_clip=0"])
    with pytest.raises(ConfigError, match="nesterov needs momentum"):
        load_train_config(None, ["nesterov=true", "momentum=0"])


# ----------------------------------------------------------------------------------------------
# The genotype decides the kind of network


def test_a_cell_and_a_layout_of_another_kind_are_one_clear_error(tmp_path, capsys):
    pytest.importorskip("sklearn")
    args = ["--out", str(tmp_path), "--set", "dataset=digits"]
    assert main(["train", "NB201_BEST_CIFAR10", "--config", "quick", *args]) == 2
    err = capsys.readouterr().err
    assert "is a NAS-Bench-201 cell" in err and "--config nb201" in err and "--set net=nas-bench-201" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["train", "DARTS_V2", "--config", "nb201", *args]) == 2
    err = capsys.readouterr().err
    assert "not a DARTS genotype" in err and "--set net=cifar10" in err
    assert list(tmp_path.iterdir()) == []  # refused before a run folder was made


def test_image_sides_must_suit_the_network(tmp_path, capsys):
    args = [
        "train",
        "NB201_ALL_SKIP",
        "--config",
        "nb201",
        "--out",
        str(tmp_path),
        "--set",
        "dataset=fake",
        "--set",
        "data_options={shape: [3, 6, 6], size: 8}",
        "--set",
        "progress=false",
    ]
    assert main(args) == 2
    assert "multiples of 4" in capsys.readouterr().err


def test_nesterov_reaches_the_optimiser_and_no_clipping_means_none(monkeypatch):
    pytest.importorskip("sklearn")
    clipped = []
    monkeypatch.setattr(
        torch.nn.utils, "clip_grad_norm_", lambda params, norm: clipped.append(norm) or torch.tensor(0.0)
    )
    for overrides, calls in (([], 0), (["grad_clip=5"], 2)):
        config = load_train_config("nb201", TINY + ["subset=64", "valid_portion=0"] + overrides)
        generator = torch.Generator().manual_seed(0)
        trainer = Trainer(
            config,
            CellGenotype.parse(EVERY_OP),
            prepare_data(config, torch.device("cpu"), generator),
            torch.device("cpu"),
            generator,
        )
        assert trainer.optimizer.param_groups[0]["nesterov"] is True
        clipped.clear()
        trainer.train_epoch(None)  # two steps of 32
        assert clipped == [5.0] * calls


# ----------------------------------------------------------------------------------------------
# End to end


@pytest.mark.slow
def test_a_cell_trains_through_the_cli_and_its_run_folder_exports_and_plots(tmp_path, capsys):
    run_dir = _train(tmp_path, "epochs=2", "plot=true")
    cell = CellGenotype.parse(EVERY_OP)
    assert json.loads((run_dir / "genotype.json").read_text()) == {"nas_bench_201": EVERY_OP}
    assert load_nb201_genotype(run_dir) == cell
    assert json.loads((run_dir / "network.json").read_text())["net"] == "nas-bench-201"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["epochs"] == 2 and 0 <= results["final"]["test_acc"] <= 1 and results["best"] is not None
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["optimizer"]["param_groups"][0]["nesterov"] is True
    if (run_dir / "plots").exists():  # the plot extra installed: the run drew its cell and curves
        assert {"cell.gv", "curves.png"} <= {p.name for p in (run_dir / "plots").iterdir()}

    pytest.importorskip("matplotlib")
    pytest.importorskip("graphviz")
    assert main(["plot", str(run_dir)]) == 0
    drawn = {p.split("/")[-1] for p in capsys.readouterr().out.split()}
    assert {"cell.gv", "curves.png"} <= drawn
    assert "none" not in (run_dir / "plots" / "cell.gv").read_text()

    assert main(["export", str(run_dir), "--format", "pt2"]) == 0
    assert "max |logit difference| against eager: 0" in capsys.readouterr().out
    program = torch.export.load(run_dir / "export" / "model.pt2").module()
    assert program(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    assert main(["export", str(run_dir), "--best", "--format", "pt2"]) == 0


@pytest.mark.slow
def test_a_killed_run_resumes_exactly(tmp_path, monkeypatch):
    whole = _train(tmp_path, "epochs=2", name="whole")
    real_save = runs_module.save_checkpoint

    def save_then_die(state, path, *rest):  # the process dies right after the first epoch's checkpoint
        real_save(state, path, *rest)
        if path.name == "checkpoint.pt":
            raise KeyboardInterrupt

    monkeypatch.setattr(runs_module, "save_checkpoint", save_then_die)
    killed = _train(tmp_path, "epochs=2", name="killed", code=130)
    monkeypatch.setattr(runs_module, "save_checkpoint", real_save)
    assert main(["train", "--resume", str(killed)]) == 0
    a = torch.load(whole / "checkpoint.pt", weights_only=True)
    b = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert json.loads((killed / "results.json").read_text()) == json.loads((whole / "results.json").read_text())


@pytest.mark.slow
def test_a_search_run_folder_plots_and_its_cell_trains(tmp_path, cli_search, capsys):
    pytest.importorskip("matplotlib")
    pytest.importorskip("graphviz")
    ops = "ops=[none,skip_connect,nor_conv_1x1,nor_conv_3x3,avg_pool_3x3]"
    search = cli_search(tmp_path / "search", "space=nas-bench-201", ops, "stage_cells=1", "epochs=2", "plot=false")
    assert main(["plot", str(search)]) == 0
    drawn = {p.split("/")[-1] for p in capsys.readouterr().out.split()}
    assert {"cell.gv", "probs.png", "trajectories.png", "curves.png"} <= drawn
    assert "benchmark_acc" in read_jsonl(search / "metrics.jsonl")[-1]
    run_dir = _train(tmp_path, "epochs=1", genotype=str(search))
    assert load_nb201_genotype(run_dir) == load_nb201_genotype(search)
    assert main(["genotype", str(run_dir), "--json"]) == 0
    assert "nas_bench_201" in json.loads(capsys.readouterr().out)


def test_published_cells_train_by_name_in_the_nb201_layout():
    # Every published NAS-Bench-201 cell passes the kind check of `dartsnas train --config nb201`.
    from dartsnas.conv.train import check_genotype

    config = load_train_config("nb201")
    for cell in PUBLISHED_NB201.values():
        check_genotype(config, cell)
