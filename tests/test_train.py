"""Training a genotype from scratch, end to end through the command line on a small real dataset
(scikit-learn's digits), plus the training configs."""

import json
import sys

import pytest
import torch

from dartsnas.cli import main
from dartsnas.core import runs as runs_module
from dartsnas.data.images import ImageSet
from dartsnas.core.genotype import PUBLISHED, load_genotype
from dartsnas.conv.ops import OPS
from dartsnas.core.runs import read_jsonl
from dartsnas.conv.train import Trainer, prepare_data, split_valid
from dartsnas.conv.config import TRAIN_CONFIG_DIR, TrainConfig, load_train_config

pytest.importorskip("sklearn")

# 1,497 digits of 8x8: no cutout (a 16-pixel square would blank them), a small 3-cell network.
TINY = [
    "dataset=digits",
    "init_channels=8",
    "layers=3",
    "batch_size=16",
    "lr=0.05",
    "cutout=false",
    "valid_portion=0.2",
    "drop_path_prob=0.3",
    "progress=false",
    "device=cpu",
]


def _train(tmp_path, *extra, name="run", genotype="DARTS_V2", code=0):
    args = ["train", genotype, "--out", str(tmp_path), "--name", name]
    for item in TINY + list(extra):
        args += ["--set", item]
    assert main(args) == code
    found = [p for p in tmp_path.iterdir() if p.name.startswith(name + "-")]
    return found[0] if found else None


@pytest.mark.slow
def test_one_epoch_through_cli_learns_and_leaves_a_run_folder(tmp_path):
    run_dir = _train(tmp_path, "epochs=1")
    for name in (
        "config.yaml",
        "env.json",
        "log.txt",
        "metrics.jsonl",
        "checkpoint.pt",
        "best.pt",
        "genotype.json",
        "results.json",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    assert load_genotype(run_dir, known_ops=OPS) == PUBLISHED["DARTS_V2"]
    (metrics,) = read_jsonl(run_dir / "metrics.jsonl")
    assert metrics["epoch"] == 1 and metrics["drop_path_prob"] == 0.0  # the ramp starts at zero
    assert {"train_loss", "train_acc", "valid_loss", "valid_acc", "lr", "seconds"} <= set(metrics)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["final"]["test_acc"] > 0.3  # ten classes: chance is 0.1
    assert results["best"]["epoch"] == 1
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and "auxiliary_head.classifier.weight" in state["model"]
    assert load_train_config(run_dir / "config.yaml").dataset == "digits"


@pytest.mark.slow
def test_drop_path_ramps_over_the_epochs_and_plots_are_drawn(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from dartsnas.core import plot

    def no_graphviz(*args):
        raise plot.PlotError("drawing needs the 'graphviz' package")

    monkeypatch.setattr(plot, "draw_cell", no_graphviz)  # the curves are drawn all the same
    run_dir = _train(tmp_path, "epochs=3", "drop_path_prob=0.3", "plot=true", "valid_portion=0")
    ramp = [m["drop_path_prob"] for m in read_jsonl(run_dir / "metrics.jsonl")]
    assert ramp == pytest.approx([0.0, 0.1, 0.2])  # 0.3 * epoch / epochs, epoch counted from 0
    assert (run_dir / "plots" / "curves.png").stat().st_size > 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["best"] is None and not (run_dir / "best.pt").exists()  # nothing held out, nothing chosen


@pytest.mark.slow
def test_killed_run_resumes_exactly(tmp_path, monkeypatch):
    whole = _train(tmp_path, "epochs=3", "plot=false", name="whole")
    calls = {"n": 0}
    real_save = runs_module.save_checkpoint

    def save_then_die(state, path, *rest):  # the process dies right after the first epoch's checkpoint
        real_save(state, path, *rest)
        if path.name == "checkpoint.pt":
            calls["n"] += 1
            if calls["n"] == 1:
                raise KeyboardInterrupt

    monkeypatch.setattr(runs_module, "save_checkpoint", save_then_die)
    killed = _train(tmp_path, "epochs=3", "plot=false", name="killed", code=130)
    assert len(read_jsonl(killed / "metrics.jsonl")) == 1
    assert main(["train", "--resume", str(killed)]) == 0
    a = torch.load(whole / "checkpoint.pt", weights_only=True)
    b = torch.load(killed / "checkpoint.pt", weights_only=True)
    for key, value in a["model"].items():  # drop path was on in epochs 2 and 3: its RNG state was restored
        assert torch.equal(value, b["model"][key]), key
    drop = ("seconds", "peak_memory_gb")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(read_jsonl(killed / "metrics.jsonl")) == strip(read_jsonl(whole / "metrics.jsonl"))
    assert json.loads((killed / "results.json").read_text()) == json.loads((whole / "results.json").read_text())


@pytest.mark.slow
def test_bfloat16_autocast_trains(tmp_path):
    run_dir = _train(tmp_path, "epochs=1", "plot=false", "amp=true")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["final"]["test_acc"] > 0.2


def test_compile_flag_builds_a_compiled_network_sharing_the_weights():
    # Compiling and running takes minutes on 2 CPU cores, too long for the suite: check the wiring only.
    config = load_train_config(None, TINY + ["compile=true"])
    generator = torch.Generator().manual_seed(0)
    trainer = Trainer(
        config,
        PUBLISHED["DARTS_V2"],
        prepare_data(config, torch.device("cpu"), generator),
        torch.device("cpu"),
        generator,
    )
    assert isinstance(trainer.forward, torch._dynamo.eval_frame.OptimizedModule)
    assert trainer.forward._orig_mod is trainer.model
    assert not any(k.startswith("_orig_mod") for k in trainer.state_dict()["model"])


def test_validation_split_is_held_out_of_training_and_fixed_by_the_seed():
    data = ImageSet(
        torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 1, 2, 2).contiguous(),
        torch.zeros(100, dtype=torch.int64),
        ["x"],
    )
    train, valid = split_valid(data, 0.1, seed=3)
    ids = lambda d: set(d.images[:, 0, 0, 0].tolist())  # noqa: E731
    assert len(valid) == 10 and len(train) == 90 and not ids(train) & ids(valid)
    assert ids(split_valid(data, 0.1, seed=3)[1]) == ids(valid) != ids(split_valid(data, 0.1, seed=4)[1])
    assert split_valid(data, 0.0, seed=3) == (data, None)


@pytest.mark.parametrize("path", sorted(TRAIN_CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_training_config_loads(path):
    config = load_train_config(path.stem)
    assert config == load_train_config(path) and config.validate() is config


def test_training_configs_hold_the_papers_settings():
    cifar = load_train_config("cifar10")
    assert cifar == TrainConfig(valid_portion=0.0)  # the defaults are the paper's CIFAR-10 evaluation
    expected = dict(
        epochs=600,
        batch_size=96,
        lr=0.025,
        lr_schedule="cosine",
        lr_min=0.0,
        momentum=0.9,
        weight_decay=3e-4,
        grad_clip=5.0,
        cutout=True,
        cutout_length=16,
        drop_path_prob=0.2,
        auxiliary=True,
        auxiliary_weight=0.4,
        layers=20,
        init_channels=36,
        net="cifar10",
    )
    assert {k: getattr(cifar, k) for k in expected} == expected
    imagenet = load_train_config("imagenet")
    expected = dict(
        epochs=250,
        batch_size=128,
        lr=0.1,
        lr_schedule="step",
        lr_gamma=0.97,
        momentum=0.9,
        weight_decay=3e-5,
        label_smoothing=0.1,
        auxiliary_weight=0.4,
        grad_clip=5.0,
        layers=14,
        init_channels=48,
        net="imagenet",
        data_loader="workers",
        cutout=False,
    )
    assert {k: getattr(imagenet, k) for k in expected} == expected


def test_user_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["train", "DARTS_V2", "--set", "epoch=3", "--out", str(tmp_path)]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path)]) == 2
    assert "name the genotype" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "genotype.json" in capsys.readouterr().err
    _train(tmp_path, "epochs=1", "net=imagenet", code=2)  # 8x8 digits through a stem that divides by 8
    assert "at least 17x17" in capsys.readouterr().err
    _train(tmp_path, "epochs=1", "cutout=true", code=2)
    assert "blanks the whole 8x8 image" in capsys.readouterr().err
    assert main(["train", "DARTS_V2", "--set", "data_loader=workers", "--out", str(tmp_path)]) == 2
    assert "dataset: imagefolder" in capsys.readouterr().err
    assert main(["train", "DARTS_V2", "--config", "nope", "--out", str(tmp_path)]) == 2
    assert "quick" in capsys.readouterr().err


def test_workers_loader_without_torchvision_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # as if it were not installed
    args = [
        "train",
        "DARTS_V2",
        "--out",
        str(tmp_path),
        "--set",
        "dataset=imagefolder",
        "--set",
        f"data_dir={tmp_path}",
        "--set",
        "data_loader=workers",
    ]
    assert main(args) == 2
    assert "pip install 'dartsnas[imagenet]'" in capsys.readouterr().err


@pytest.mark.slow
def test_search_then_train_its_run_folder(tmp_path):
    # The hand-off of the README: `dartsnas search ...` then `dartsnas train runs/<search folder>`.
    args = ["search", "--out", str(tmp_path / "search"), "--name", "s"]
    for item in [
        "dataset=digits",
        "subset=128",
        "batch_size=32",
        "init_channels=4",
        "layers=3",
        "epochs=1",
        "progress=false",
        "plot=false",
    ]:
        args += ["--set", item]
    assert main(args) == 0
    (search_dir,) = (tmp_path / "search").iterdir()
    run_dir = _train(tmp_path, "epochs=1", "plot=false", genotype=str(search_dir))
    assert load_genotype(run_dir, known_ops=OPS) == load_genotype(search_dir, known_ops=OPS)
    assert json.loads((run_dir / "results.json").read_text())["final"]["test_acc"] > 0


def _torchvision_works():
    try:
        import torchvision.transforms  # noqa: F401  (PyPI's wheel fails to import beside a CPU-only torch)
    except (ImportError, RuntimeError):
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(
    not _torchvision_works(), reason="needs an importable torchvision (pip install 'dartsnas[imagenet]')"
)
def test_workers_loader_trains_on_an_image_folder(tmp_path):
    from PIL import Image

    rng = torch.Generator().manual_seed(0)
    for split, count in (("train", 12), ("test", 4)):
        for label, name in enumerate(("cats", "dogs")):
            folder = tmp_path / "images" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = (torch.rand(40, 48, 3, generator=rng) * 100 + 120 * label).byte().numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")
    run_dir = _train(
        tmp_path,
        "dataset=imagefolder",
        f"data_dir={tmp_path / 'images'}",
        "data_loader=workers",
        "workers=2",
        "image_size=32",
        "batch_size=4",
        "valid_portion=0.25",
        "epochs=2",
        "plot=false",
    )
    record = json.loads((run_dir / "network.json").read_text())
    assert record["classes"] == ["cats", "dogs"] and record["input_size"] == [32, 32] and record["in_channels"] == 3
    assert [m["epoch"] for m in read_jsonl(run_dir / "metrics.jsonl")] == [1, 2]
    results = json.loads((run_dir / "results.json").read_text())
    assert 0 <= results["final"]["test_acc"] <= 1 and results["best"] is not None
