"""`dartsnas bench skips`: the skip connections of the DARTS-space normal cells that K seeds of each setting
find, and of the cells `dartsnas derive` wrote beside them."""

import json

import pytest

from dartsnas.cli import main
from dartsnas.core.config import ConfigError
from dartsnas.core.genotype import load_genotype
from dartsnas.experiments.skips import count


def test_count_reads_the_normal_cell_only():
    from dartsnas.core.genotype import PUBLISHED

    darts_v1 = PUBLISHED["DARTS_V1"]  # its normal cell: 3 skip connections of 8 edges, no pool (reduce: pools)
    assert count(darts_v1)["skips"] == 3 and count(darts_v1)["parameter_free"] == 3


def test_nas_bench_201_configs_are_refused():
    from types import SimpleNamespace

    from dartsnas.experiments.skips import skips

    args = SimpleNamespace(config=["nb201-quick"], seeds=1, set=None, out="unused", jobs=1, threads=1, json=False)
    with pytest.raises(ConfigError, match="DARTS-space"):
        skips(args)


@pytest.mark.slow
def test_bench_skips_counts_the_found_and_the_derived_normal_cells(tmp_path, tiny_search, capsys):
    args = ["bench", "skips", "--config", "quick", "--seeds", "2", "--out", str(tmp_path), "--threads", "1"]
    for item in tiny_search + ["epochs=1", "nodes=2"]:
        args += ["--set", item]
    assert main(args) == 0
    (seed0,) = (tmp_path / "quick").glob("seed-0-*")  # the run folder of seed 0: OUT/<setting>/seed-0-<stamp>
    assert main(["derive", str(seed0), "--rule", "argmax", "--skip-cap", "0"]) == 0
    capsys.readouterr()
    assert main(args) == 0  # nothing searched again: the report now has the derived cell too
    report = json.loads((tmp_path / "skips.json").read_text())
    found = report["settings"]["quick"]["seeds"]
    assert [s["seed"] for s in found] == [0, 1]
    for s in found:
        normal = [op for op, _ in load_genotype(s["run"]).normal]
        assert s["skips"] == normal.count("skip_connect")
    derived = report["settings"]["quick+argmax-skip-cap-0"]["seeds"]
    assert [s["seed"] for s in derived] == [0] and derived[0]["skips"] == 0
    assert "| quick+argmax-skip-cap-0 | 0 | 0 |" in capsys.readouterr().out
