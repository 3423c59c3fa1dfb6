"""End to end: searches through the command line on a small real dataset (scikit-learn's digits)."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from dartsnas.cli import main
from dartsnas.core import runs as runs_module
from dartsnas.conv.config import load_config
from dartsnas.core.genotype import load_genotype
from dartsnas.conv.ops import OPS
from dartsnas.core.runs import read_jsonl
from dartsnas.conv.search import run_search

pytest.importorskip("sklearn")

# The tiny search on digits is conftest's: fixtures `tiny_search` (its --set items) and `cli_search`.


@pytest.mark.slow
@pytest.mark.parametrize("order", ["first", "second"])
def test_two_epoch_search_through_cli(tmp_path, cli_search, order):
    run_dir = cli_search(tmp_path, "epochs=2", f"unrolled={order == 'second'}")
    for name in ("config.yaml", "env.json", "log.txt", "checkpoint.pt", "genotype.json"):
        assert (run_dir / name).stat().st_size > 0, name
    genotype = load_genotype(run_dir, known_ops=OPS)
    assert genotype.nodes == 4
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert [m["epoch"] for m in metrics] == [1, 2]
    assert metrics[1]["arch_loss"] < metrics[0]["arch_loss"]  # the architecture half's loss goes down
    assert [r["epoch"] for r in read_jsonl(run_dir / "alphas.jsonl")] == [0, 1, 2]
    assert len(read_jsonl(run_dir / "genotypes.jsonl")) == 2
    config = load_config(run_dir / "config.yaml")
    assert config.unrolled == (order == "second") and config.dataset == "digits"
    env = json.loads((run_dir / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["device"] == "cpu"
    plots = run_dir / "plots"
    expected = ["cell_normal.gv", "cell_reduce.gv", "probs.png", "trajectories.png", "curves.png"]
    if shutil.which("dot"):
        expected += ["cell_normal.png", "cell_normal.pdf", "cell_reduce.png", "cell_reduce.pdf"]
    for name in expected:
        assert (plots / name).stat().st_size > 0, name


def _final_alphas(run_dir):
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    return [v for k, v in state["model"].items() if k.startswith("alphas.")]


@pytest.mark.slow
def test_same_seed_gives_bit_identical_alphas(tmp_path, tiny_search):
    config = load_config(None, tiny_search + ["epochs=1", "plot=false"])
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        run_search(config, tmp_path / name)
    for x, y in zip(_final_alphas(tmp_path / "a"), _final_alphas(tmp_path / "b")):
        assert torch.equal(x, y)
    other = load_config(None, tiny_search + ["epochs=1", "plot=false", "seed=3"])
    (tmp_path / "c").mkdir()
    run_search(other, tmp_path / "c")
    assert not torch.equal(_final_alphas(tmp_path / "a")[0], _final_alphas(tmp_path / "c")[0])


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["exact", "sample", "partial"])
def test_killed_run_resumes_exactly(tmp_path, monkeypatch, cli_search, tiny_search, mode):
    # sample: the draws continue from the checkpointed generator; partial: edge logits are restored too.
    extra = [f"mixed_op={mode}"] + (["init_channels=8"] if mode == "partial" else [])
    whole = cli_search(tmp_path, "epochs=3", "plot=false", *extra, name="whole")

    calls = {"n": 0}
    real_save = runs_module.save_checkpoint

    def save_then_die(state, path, *rest):  # the process dies right after the first epoch's checkpoint
        real_save(state, path, *rest)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs_module, "save_checkpoint", save_then_die)
    args = ["search", "--out", str(tmp_path), "--name", "killed"]
    for item in tiny_search + ["epochs=3", "plot=false"] + extra:
        args += ["--set", item]
    assert main(args) == 130
    (killed,) = [p for p in tmp_path.iterdir() if p.name.startswith("killed-")]
    assert len(read_jsonl(killed / "metrics.jsonl")) == 1
    assert main(["search", "--resume", str(killed)]) == 0
    for x, y in zip(_final_alphas(whole), _final_alphas(killed)):
        assert torch.equal(x, y)
    drop = ("seconds", "peak_memory_gb")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(read_jsonl(killed / "metrics.jsonl")) == strip(read_jsonl(whole / "metrics.jsonl"))
    assert read_jsonl(killed / "genotypes.jsonl") == read_jsonl(whole / "genotypes.jsonl")


def test_user_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["search", "--set", "epoch=3", "--out", str(tmp_path)]) == 2
    assert "did you mean 'epochs'" in capsys.readouterr().err
    assert (
        main(["search", "--set", "dataset=mnist", "--set", f"data_dir={tmp_path / 'nowhere'}", "--out", str(tmp_path)])
        == 2
    )
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err
    assert main(["search", "--resume", str(tmp_path)]) == 2
    assert "config.yaml" in capsys.readouterr().err
    assert main(["genotype", "DARTS_V3"]) == 2
    assert "DARTS_V2" in capsys.readouterr().err


def test_genotype_command_prints_published_cells(capsys):
    assert main(["genotype", "DARTS_V2"]) == 0
    assert capsys.readouterr().out.startswith("Genotype(normal=[('sep_conv_3x3', 0)")
    assert main(["genotype", "--list"]) == 0
    assert "PC_DARTS" in capsys.readouterr().out


@pytest.mark.slow  # a fresh interpreter imports torch
def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "dartsnas", "--help"], capture_output=True, text=True, check=True)
    assert "search" in out.stdout and "plot" in out.stdout


@pytest.mark.slow
def test_tensorboard_logging_writes_events(tmp_path, cli_search):
    pytest.importorskip("tensorboard")
    run_dir = cli_search(tmp_path, "epochs=1", "plot=false", "tensorboard=true")
    events = list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
