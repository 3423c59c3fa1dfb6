"""`dartsnas bench quality`: the report read from run folders (cells looked up in the table, seeds' mean and
spread, the epoch the cell last changed, the table's own expectations), and end to end: searches run,
resumed and reused, and a folder of other settings refused."""

import json
import statistics
from pathlib import Path

import pytest
import yaml

from dartsnas.cli import main
from dartsnas.conv.config import load_config
from dartsnas.conv.nb201.genotype import CellGenotype
from dartsnas.conv.nb201.table import load_table
from dartsnas.experiments import quality as quality_module
from dartsnas.experiments.quality import last_change, summarise

TINY = [
    "dataset=fake",
    "data_options={shape: [3, 8, 8], size: 40}",
    "download=false",
    "subset=null",
    "epochs=2",
    "batch_size=10",
    "init_channels=4",
]


def test_last_change_is_the_epoch_after_which_the_cell_stayed():
    assert last_change(["a"]) == 1
    assert last_change(["a", "a", "a"]) == 1
    assert last_change(["a", "b", "b", "a", "a"]) == 4
    assert last_change(["a", "b", "c"]) == 3


def _fake_run(run_dir, cells, seconds=2.0):
    """A finished search's files, as the search writes them (no search needed to test the report)."""
    run_dir.mkdir(parents=True)
    config = load_config("nb201-quick").to_dict()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    table = load_table()
    lines = [{"epoch": e, "seconds": seconds, "benchmark_acc": table.accuracy(c) / 100} for e, c in enumerate(cells, 1)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    history = [{"epoch": e, "genotype": CellGenotype.parse(c).to_dict()} for e, c in enumerate(cells, 1)]
    (run_dir / "genotypes.jsonl").write_text("".join(json.dumps(x) + "\n" for x in history))
    CellGenotype.parse(cells[-1]).save(run_dir / "genotype.json")


SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
RESNET = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"


def test_report_looks_cells_up_and_states_the_tables_expectations(tmp_path):
    _fake_run(tmp_path / "a" / "seed-0", [BEST, SKIP, SKIP])
    _fake_run(tmp_path / "a" / "seed-1", [SKIP, RESNET, BEST])
    runs = [
        ("a", 0, tmp_path / "a" / "seed-0"),
        ("a", 1, tmp_path / "a" / "seed-1"),
        ("a", 2, tmp_path / "a" / "seed-2"),
    ]
    report = summarise(tmp_path, runs, {str(tmp_path / "a" / "seed-2"): "ValueError: boom"}, [1, 5])
    table = load_table()
    seeds = report["settings"]["a"]["seeds"]
    assert seeds[0]["accuracy"] == table.accuracy(SKIP) and seeds[1]["accuracy"] == table.accuracy(BEST)
    assert [s.get("last_change_epoch") for s in seeds[:2]] == [2, 3]
    assert seeds[0]["benchmark_acc_by_epoch"] == pytest.approx([table.accuracy(c) for c in (BEST, SKIP, SKIP)])
    assert seeds[2]["error"] == "ValueError: boom"
    accs = [table.accuracy(SKIP), table.accuracy(BEST)]
    assert report["settings"]["a"]["mean"] == pytest.approx(statistics.fmean(accs))
    assert report["settings"]["a"]["std"] == pytest.approx(statistics.stdev(accs))
    assert report["settings"]["a"]["mean_seconds"] == pytest.approx(6.0)
    t = report["table"]
    assert t["best"] == pytest.approx(94.37333333333333) and t["mean"] == pytest.approx(table.mean("cifar10"))
    assert t["random_best_of_k"]["1"] == pytest.approx(t["mean"])
    assert t["random_best_of_k"]["5"] == pytest.approx(table.expected_best_of_k("cifar10", 5))
    text = quality_module.tables(report)
    assert "failed: ValueError: boom" in text and f"`{SKIP}`" in text


def test_a_space_without_a_table_is_refused(capsys):
    assert main(["bench", "quality", "--config", "quick", "--seeds", "1"]) == 2
    assert "NAS-Bench-201 space" in capsys.readouterr().err


@pytest.mark.slow
def test_searches_run_resume_are_reused_and_other_settings_refused(tmp_path, capsys):
    out = tmp_path / "q"
    args = [
        "bench",
        "quality",
        "--config",
        "nb201-quick",
        "--seeds",
        "2",
        "--out",
        str(out),
        "--json",
        "--random-k",
        "1",
        "2",
    ]
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    seeds = report["settings"]["nb201-quick"]["seeds"]
    assert [s["seed"] for s in seeds] == [0, 1] and all(s["epochs"] == 2 for s in seeds)
    assert all(s["accuracy"] == load_table().accuracy(s["cell"]) for s in seeds)
    assert (out / "quality.json").exists()

    # A finished search is read, not rerun; one that stopped after its checkpoint resumes and finishes.
    assert [Path(s["run"]).parent.name for s in seeds] == ["nb201-quick"] * 2  # OUT/<setting>/seed-<k>-<stamp>
    (Path(seeds[1]["run"]) / "genotype.json").unlink()
    logs = [out / "nb201-quick" / f"seed-{k}.log" for k in (0, 1)]  # each search's output, one header per start
    before = [log.read_text() for log in logs]
    assert main(args) == 0
    assert logs[0].read_text() == before[0]
    assert f"resuming {seeds[1]['run']}" in logs[1].read_text()[len(before[1]) :]
    assert json.loads(capsys.readouterr().out)["settings"]["nb201-quick"]["seeds"] == seeds

    # Kept folders of other settings are not reported as this setting's.
    assert main(args + ["--set", "lr=0.1"]) == 2
    assert "other settings (lr)" in capsys.readouterr().err
