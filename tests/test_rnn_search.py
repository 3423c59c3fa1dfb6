"""End to end: recurrent searches through the command line on a tiny generated corpus (conftest's
`tiny_corpus`: sentences of a small grammar, in the layout of Penn Treebank)."""

import json
import shutil

import pytest
import torch

from dartsnas.cli import main
from dartsnas.core import runs as runs_module
from dartsnas.recurrent.genotype import load_recurrent_genotype
from dartsnas.recurrent.config import RecurrentSearchConfig, load_recurrent_config
from dartsnas.core.runs import read_jsonl

TINY = [
    "max_lines={train: 200, valid: 40}",
    "nodes=4",
    "emsize=16",
    "batch_size=32",
    "eval_batch_size=4",
    "bptt=10",
    "progress=false",
]


def _args(corpus, out, name, extra):
    args = ["search", "--task", "text", "--config", "quick", "--out", str(out), "--name", name]
    for item in [f"data_dir={corpus}"] + TINY + list(extra):
        args += ["--set", item]
    return args


@pytest.fixture
def search_text(tiny_corpus):
    """run(out, *extra, name="run") -> the run folder of a tiny recurrent search on the tiny corpus."""

    def run(out, *extra, name="run"):
        assert main(_args(tiny_corpus, out, name, extra)) == 0
        (run_dir,) = [p for p in out.iterdir() if p.name.startswith(name + "-")]
        return run_dir

    return run


@pytest.mark.slow
@pytest.mark.parametrize("order", ["first", "second"])
def test_short_search_lowers_validation_perplexity(tmp_path, search_text, order):
    run_dir = search_text(tmp_path, "epochs=3", f"unrolled={order == 'second'}")
    for name in ("config.yaml", "env.json", "log.txt", "checkpoint.pt", "genotype.json"):
        assert (run_dir / name).stat().st_size > 0, name
    genotype = load_recurrent_genotype(run_dir)
    assert genotype.nodes == 4 and genotype.concat == (1, 2, 3, 4)
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    # (no epoch 0: before training, the batch-norm statistics of eval mode mean nothing)
    assert [m["epoch"] for m in metrics] == [1, 2, 3]
    assert metrics[-1]["valid_ppl"] < metrics[0]["valid_ppl"]
    assert [r["epoch"] for r in read_jsonl(run_dir / "alphas.jsonl")] == [0, 1, 2, 3]
    assert read_jsonl(run_dir / "alphas.jsonl")[0]["edges"][:3] == ["1<-0", "2<-0", "2<-1"]
    config = load_recurrent_config(RecurrentSearchConfig, run_dir / "config.yaml")  # reruns as saved
    assert config.unrolled == (order == "second") and config.corpus == "text" and config.nodes == 4
    assert json.loads((run_dir / "env.json").read_text())["torch"] == torch.__version__
    plots = run_dir / "plots"
    expected = ["probs.png", "trajectories.png", "perplexity.png", "curves.png"]
    if shutil.which("dot"):
        expected += ["cell_recurrent.gv", "cell_recurrent.png", "cell_recurrent.pdf"]
    for name in expected:
        assert (plots / name).stat().st_size > 0, name


@pytest.mark.slow
def test_killed_search_resumes_exactly(tmp_path, monkeypatch, search_text, tiny_corpus):
    whole = search_text(tmp_path, "epochs=2", "plot=false", name="whole")
    calls = {"n": 0}
    real_save = runs_module.save_checkpoint

    def save_then_die(state, path, *rest):
        real_save(state, path, *rest)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs_module, "save_checkpoint", save_then_die)
    assert main(_args(tiny_corpus, tmp_path, "killed", ["epochs=2", "plot=false"])) == 130
    (killed,) = [p for p in tmp_path.iterdir() if p.name.startswith("killed-")]
    assert main(["search", "--resume", str(killed)]) == 0
    a = torch.load(whole / "checkpoint.pt", weights_only=True)["model"]["alphas.recurrent"]
    b = torch.load(killed / "checkpoint.pt", weights_only=True)["model"]["alphas.recurrent"]
    assert torch.equal(a, b)
    drop = ("seconds", "peak_memory_gb")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(read_jsonl(killed / "metrics.jsonl")) == strip(read_jsonl(whole / "metrics.jsonl"))


def test_recurrent_user_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["search", "--task", "text", "--out", str(tmp_path)]) == 2
    assert "data_dir" in capsys.readouterr().err
    assert main(["search", "--task", "ptb", "--set", f"data_dir={tmp_path / 'nowhere'}", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err
    assert main(["search", "--task", "ptb", "--set", "nodez=3", "--out", str(tmp_path)]) == 2
    assert "did you mean 'nodes'" in capsys.readouterr().err
    assert main(["genotype", "DARTS_RNN"]) == 0
    assert capsys.readouterr().out.startswith("Genotype(recurrent=[('sigmoid', 0)")
