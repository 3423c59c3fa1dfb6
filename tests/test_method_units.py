"""The search units (dartsnas/methods/search/): every registered unit runs its hooks in a real search epoch
(a test generated from the registry, as timm's are), and the worked example of docs/design.md, a toy
regulariser added as one unit, changes the architecture gradient by exactly its own gradient."""

from __future__ import annotations

import importlib
import sys
import types

import pytest
import torch

from dartsnas.conv.config import load_config
from dartsnas.methods.search import SEARCH_UNITS, build, unit_class
from dartsnas.methods.search.base import SearchUnit

# The settings that switch each registered unit on: a new unit adds its line here, or the test below fails.
SWITCH_ON = {
    "temperature": ["temperature=[1, 0.5]"],
    "anneal_entropy": ["anneal_entropy=[1, 0.5]"],
    "beta_decay": ["beta_decay=[0, 50]"],
    "aux_skip": ["aux_skip=1"],
    "sgas": ["progressive=true", "nodes=2", "progressive_warmup=0"],
    "early_stop": ["early_stop=true"],
}
HOOKS = ("start_epoch", "batch_size", "penalty", "decide", "stop")


def test_every_registered_unit_is_a_search_unit_and_says_how_to_switch_it_on():
    assert set(SWITCH_ON) == set(SEARCH_UNITS)
    for name in SEARCH_UNITS:
        assert issubclass(unit_class(name), SearchUnit), name
    with pytest.raises(ValueError, match="search unit must be one of temperature, anneal_entropy"):
        unit_class("nope")


def test_the_registry_imports_without_torch():
    import subprocess

    code = "import dartsnas.methods.search, sys; assert 'torch' not in sys.modules, 'torch imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", list(SEARCH_UNITS))
def test_every_unit_runs_its_hooks_in_a_search_epoch(name, tmp_path, tiny_search):
    from dartsnas.conv.search import Searcher, prepare_data

    config = load_config(None, tiny_search + ["epochs=2"] + SWITCH_ON[name])
    assert name in build(config)
    searcher = Searcher(config, prepare_data(config, torch.device("cpu")), torch.device("cpu"))
    unit, calls = searcher.units[name], []
    for hook in HOOKS:  # count each call, still calling the unit's own
        real = getattr(unit, hook)
        setattr(unit, hook, lambda *args, real=real, hook=hook: calls.append(hook) or real(*args))
    searcher.begin(tmp_path)
    metrics = searcher.end_epoch(tmp_path, searcher.train_epoch())
    assert set(calls) == set(HOOKS)
    assert all(torch.isfinite(p).all() for p in searcher.model.arch_parameters())
    assert metrics["temperature"] == searcher.model.temperature


# -- the worked example of docs/design.md: a toy regulariser, one file and one registry line -------------------

TOY = '''
"""A toy regulariser: weight * the sum of the squared op logits (a pull of every alpha towards 0)."""

from dartsnas.methods.search.base import SearchUnit


class L2Alphas(SearchUnit):
    weight = 0.1

    @classmethod
    def enabled(cls, config) -> bool:
        return True

    def penalty(self, search):
        return self.weight * sum(a.pow(2).sum() for a in search.op_alphas())


UNIT = L2Alphas
'''


@pytest.fixture
def toy_unit(monkeypatch):
    """The toy's file (here a module made from TOY) and its registry line, for this test only."""
    module = types.ModuleType("dartsnas.methods.search.l2_alphas")
    exec(compile(TOY, "l2_alphas.py", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(SEARCH_UNITS, "l2_alphas", "l2_alphas")  # the one registry line
    assert importlib.import_module(module.__name__) is module
    return module.UNIT


def test_a_toy_regulariser_adds_its_gradient_to_the_architecture_step(tiny_search, toy_unit):
    from dartsnas.conv.search import Searcher, prepare_data

    def architecture_gradient(with_toy: bool) -> tuple[list[torch.Tensor], Searcher]:
        config = load_config(None, tiny_search)
        searcher = Searcher(config, prepare_data(config, torch.device("cpu")), torch.device("cpu"))
        if not with_toy:
            searcher.units.pop("l2_alphas")
        seen = []
        searcher.architect.accept = lambda loss, grads: seen.append(grads) or False  # look, step nothing
        _, _, pairs = searcher.epoch_batches(None)
        _, (x, y), (x_arch, y_arch) = next(pairs)
        searcher.architecture_step(x, y, x_arch, y_arch)
        return seen[0], searcher

    toy, searcher = architecture_gradient(True)
    plain, _ = architecture_gradient(False)
    assert isinstance(searcher.units["l2_alphas"], toy_unit)
    for alphas, g_toy, g_plain in zip(searcher.model.arch_parameters(), toy, plain):
        # d/d(alpha) of 0.1 * alpha^2 is 0.2 * alpha, added to the validation loss's gradient
        assert torch.allclose(g_toy - g_plain, 0.2 * alphas.detach(), atol=1e-7)
    assert not torch.allclose(toy[0], plain[0])


@pytest.mark.parametrize(
    "field, bad, message",
    [
        ("beta_decay", [1], "beta_decay must be two numbers >= 0, \\[start, end\\] of its weight"),
        ("anneal_entropy", [1, 1.5], "anneal_entropy must be two numbers in \\(0, 1\\], \\[start, end\\]"),
    ],
)
def test_a_units_setting_is_checked_in_one_place_for_both_searches(field, bad, message):
    from dartsnas.conv.config import SearchConfig
    from dartsnas.core.config import ConfigError
    from dartsnas.recurrent.config import RecurrentSearchConfig

    for config in (SearchConfig, RecurrentSearchConfig):
        with pytest.raises(ConfigError, match=message):
            config(**{field: bad}).validate()
