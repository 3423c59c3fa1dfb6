"""Short searches whose alphas are pinned: a guard for refactoring, not a check of the method.

The method is checked against ground truth elsewhere (test_reference.py and friends). These pins hold the
*code's* results still while the code moves: every mixed-op mode in both orders, both convolutional spaces,
the recurrent cell, and the schedules that only move between files (entropy annealing, DARTS-'s auxiliary
skip). A change of method that is meant to change results (a corrected schedule, a new default) re-pins
with the reason in its commit:

    DARTSNAS_WRITE_PINS=1 python -m pytest -q tests/test_pinned.py

Float32 on one intra-op thread (conftest) is deterministic on CPU; the tolerance leaves room for a
different BLAS summation order, never for a different step.
"""

import json
import os
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

PINS = Path(__file__).parent / "data" / "pinned_alphas.json"
WRITE = os.environ.get("DARTSNAS_WRITE_PINS") == "1"

TINY = ["dataset=digits", "subset=96", "batch_size=24", "init_channels=4", "layers=3", "lr=0.1", "arch_lr=0.05"]
NB201 = [
    "space=nas-bench-201",
    "ops=[none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3]",
    "stage_cells=1",
    "nesterov=true",
]
RUN = ["epochs=2", "progress=false", "plot=false", "checkpoint_minutes=null"]

CONV = {
    **{
        f"darts-{mode}-{order}": [
            f"mixed_op={mode}",
            f"unrolled={order == 'second'}",
            *(["partial_k=2"] if mode == "partial" else []),
        ]
        for mode in ("exact", "lean", "partial", "sample")
        for order in ("first", "second")
    },
    "nb201-exact-first": NB201,
    "nb201-exact-second": [*NB201, "unrolled=true"],
    "nb201-sample-first": [*NB201, "mixed_op=sample", "sample_grad=gdas_nb201"],
    "darts-anneal-entropy": ["anneal_entropy=[1, 0.2]"],
    "darts-temperature-exponential": ["temperature=[2, 0.5]", "temperature_schedule=exponential"],
    "darts-aux-skip": ["aux_skip=1.0"],
}


def _compare(name: str, alphas: dict) -> None:
    pins = json.loads(PINS.read_text()) if PINS.exists() else {}
    if WRITE:
        pins[name] = alphas
        PINS.parent.mkdir(exist_ok=True)
        PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
    assert name in pins, f"no pinned alphas for {name}: run with DARTSNAS_WRITE_PINS=1 once"
    assert sorted(pins[name]) == sorted(alphas)
    for kind, values in alphas.items():
        torch.testing.assert_close(torch.tensor(values), torch.tensor(pins[name][kind]), rtol=1e-4, atol=1e-6)


def _last_alphas(run_dir: Path) -> dict:
    last = json.loads((run_dir / "alphas.jsonl").read_text().splitlines()[-1])
    return last["alphas"]


@pytest.mark.parametrize("name", sorted(CONV))
def test_a_short_convolutional_search_keeps_its_alphas(tmp_path, name):
    pytest.importorskip("sklearn")
    from dartsnas.conv.config import load_config
    from dartsnas.conv.search import run_search

    config = load_config(None, TINY + RUN + CONV[name])
    run_search(config, tmp_path)
    _compare(name, _last_alphas(tmp_path))


@pytest.mark.parametrize("mode", ["exact", "lean"])
@pytest.mark.parametrize("order", ["first", "second"])
def test_a_short_recurrent_search_keeps_its_alphas(tmp_path, tiny_corpus, mode, order):
    from dartsnas.recurrent.config import RecurrentSearchConfig, load_recurrent_config
    from dartsnas.recurrent.search import run_recurrent_search

    config = load_recurrent_config(
        RecurrentSearchConfig,
        None,
        [
            "corpus=text",
            f"data_dir={tiny_corpus}",
            "emsize=16",
            "batch_size=8",
            "bptt=8",
            "max_lines={train: 150, valid: 60}",
            "epochs=2",
            f"unrolled={order == 'second'}",
            f"mixed_op={mode}",
            "progress=false",
            "plot=false",
        ],
    )
    run_recurrent_search(config, tmp_path)
    _compare(f"recurrent-{mode}-{order}", _last_alphas(tmp_path))
