"""Memory estimates before a search, and the advice when a run does not fit."""

import pytest
import torch
from torch import nn

from dartsnas.conv import search as search_module
from dartsnas.cli import main
from dartsnas.conv.config import SearchConfig
from dartsnas.conv.memory import advice, estimate_bytes, saved_activation_bytes
from dartsnas.conv.spaces import OP_SETS


def test_saved_activations_are_counted_exactly():
    # Linear keeps its input (4 x 10 floats), ReLU its output (4 x 20); parameters are not counted.
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU())
    assert saved_activation_bytes(model, torch.randn(4, 10)) == 4 * (4 * 10 + 4 * 20)


def _estimate(**kw):
    config = SearchConfig(**{"init_channels": 8, "layers": 5, **kw})
    return estimate_bytes(config, 3, 10, (16, 16), torch.device("cpu"))


@pytest.mark.slow  # each estimate runs a supernet once
def test_estimates_scale_with_batch_and_order_modes_as_expected():
    assert _estimate(batch_size=32) == pytest.approx(2 * _estimate(batch_size=16), rel=0.1)
    exact, lean, partial, sample = (
        _estimate(mixed_op=m, batch_size=32) for m in ("exact", "lean", "partial", "sample")
    )
    assert max(lean, sample) < partial < exact
    assert exact > 3 * lean
    # exact grows with the candidate set; lean barely does
    exact2, lean2 = (_estimate(mixed_op=m, batch_size=32, ops=OP_SETS[2]) for m in ("exact", "lean"))
    assert exact / exact2 > 1.4 and lean / lean2 < 1.3


@pytest.mark.slow
def test_advice_names_settings_that_fit():
    config = SearchConfig(init_channels=8, layers=5, batch_size=64)
    exact = _estimate(batch_size=64)
    text = advice(config, 3, 10, (16, 16), torch.device("cpu"), exact // 2)
    assert "--set mixed_op=lean (about" in text
    assert "--set mixed_op=exact --set batch_size=" in text  # a smaller batch in the same mode
    batch = int(text.split("--set mixed_op=exact --set batch_size=")[1].split()[0])
    assert 24 <= batch <= 32
    assert "no mode fits" in advice(config, 3, 10, (16, 16), torch.device("cpu"), 1000)


@pytest.mark.slow
def test_search_logs_expected_memory_and_warns_when_it_will_not_fit(tmp_path, monkeypatch, cli_search):
    monkeypatch.setattr(search_module, "available_bytes", lambda device: 10 * 2**20)
    run_dir = cli_search(tmp_path, "epochs=1", "plot=false")
    text = (run_dir / "log.txt").read_text()
    assert "memory: a search step should take about" in text
    assert "exact mode at batch_size=32 will likely not fit; settings that should fit in 0.01 GB: " in text


@pytest.mark.slow
def test_out_of_memory_ends_with_advice(tmp_path, monkeypatch, capsys, tiny_search):
    def boom(self, progress, steps):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(search_module.Searcher, "train_epoch", boom)
    monkeypatch.setattr(search_module, "available_bytes", lambda device: 2**40)
    args = ["search", "--out", str(tmp_path)]
    for item in tiny_search + ["epochs=1", "plot=false"]:
        args += ["--set", item]
    assert main(args) == 3  # cli.EXIT_OUT_OF_MEMORY
    err = capsys.readouterr().err
    assert "out of memory in exact mode at batch_size=32 on cpu (peak " in err
    assert "--set mixed_op=lean" in err and "Traceback" not in err
