"""`dartsnas bench random`: the FLOPs a drawn cell costs against a hand count, the cells a seed draws within
the search's FLOPs, and end to end: the cell with the best proxy validation accuracy is the one reported, with
its table accuracy; a finished report is read again without training, and kept trainings of other settings are
refused."""

import json
from pathlib import Path

import pytest

from dartsnas.cli import main
from dartsnas.conv.config import load_config
from dartsnas.conv.nb201.genotype import CellGenotype
from dartsnas.conv.nb201.table import load_table
from dartsnas.experiments.random_search import Plan, cell_flops, draw_cells, search_flops, summarise

TINY = [
    "dataset=fake",
    "data_options={shape: [3, 8, 8], size: 40}",
    "download=false",
    "subset=null",
    "epochs=2",
    "batch_size=10",
    "init_channels=4",
    "stage_cells=1",
]
CONVS = "|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"
NO_FIRST = "|none~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"


def test_a_1x1_conv_costs_what_a_hand_count_says():
    # Edge 1<-0's 1x1 conv (C -> C channels, no bias) in each of a stage's N cells: 2 C_s^2 H_s W_s FLOPs forward
    # per image, with C_s = 2^s C and H_s = W_s = H / 2^s, so 2 C^2 H^2 per stage; backward computes the gradient
    # of its input and of its weight, twice the forward. Per image: 3 stages x N x (3 x 2 C^2 H^2) to train, and
    # 3 x N x 2 C^2 H^2 to evaluate.
    c, h, n, train, valid, epochs = 8, 16, 2, 50, 30, 3
    costs = [
        cell_flops(CellGenotype.parse(g), train, valid, epochs, (3, h, h), 10, c, 3 * n) for g in (CONVS, NO_FIRST)
    ]
    per_stage = 2 * c * c * h * h
    assert costs[0] - costs[1] == epochs * 3 * n * per_stage * (3 * train + valid)
    assert cell_flops(CellGenotype.parse(CONVS), train, valid, 2 * epochs, (3, h, h), 10, c, 3 * n) == 2 * costs[0]


def test_a_search_costs_its_epochs_and_its_architecture_steps():
    config = load_config("nb201-quick", TINY)
    once = search_flops(config)
    assert search_flops(load_config("nb201-quick", TINY + ["epochs=4"])) == 2 * once
    # A warm-up epoch without architecture steps costs less; a second-order step more.
    warm_up = search_flops(load_config("nb201-quick", TINY + ["arch_start_epoch=1"]))
    assert 0 < warm_up < once < search_flops(load_config("nb201-quick", TINY + ["unrolled=true"]))


def test_cells_are_drawn_while_their_cost_fits_the_search():
    config = load_config("nb201-quick", TINY)
    budget = search_flops(config)
    plan = draw_cells(config, 0, budget, epochs=2)
    assert len(plan.cells) >= 2 and len(set(map(str, plan.cells))) == len(plan.cells)
    assert sum(plan.costs) <= budget
    more = draw_cells(config, 0, budget, epochs=2, count=len(plan.cells) + 1)  # the next in the seed's order
    assert more.cells[:-1] == plan.cells and sum(more.costs) > budget
    assert draw_cells(config, 1, budget, epochs=2).cells != plan.cells
    assert len(draw_cells(config, 0, 1, epochs=2).cells) == 1  # at least one, even when none fits
    assert len(draw_cells(config, 0, budget, epochs=2, count=3).cells) == 3


def test_the_cell_of_best_validation_accuracy_is_chosen_whatever_its_true_accuracy(tmp_path):
    table = load_table()
    cells = [CellGenotype.from_index(i) for i in (5, 700, 9000)]
    plan = Plan(cells, [3, 4, 5], 20, 1, "cifar10")
    plan.jobs = []
    for i, valid in enumerate((0.30, 0.50, 0.40)):
        run = tmp_path / f"cell-{i}"
        run.mkdir()
        (run / "results.json").write_text("{}")
        (run / "metrics.jsonl").write_text(
            json.dumps({"valid_acc": valid - 0.2, "seconds": 1.0})
            + "\n"
            + json.dumps({"valid_acc": valid, "seconds": 2.0})
            + "\n"
        )
        plan.jobs.append(type("Job", (), {"label": f"cell-{i}", "run": run})())
    report = summarise(tmp_path, {("s", 0): plan}, {}, lambda job: job.run)
    seed = report["settings"]["s"]["seeds"][0]
    truths = [table.accuracy(c) for c in cells]
    assert seed["cell"] == str(cells[1]) and seed["accuracy"] == truths[1]  # the last epoch's validation
    assert seed["perfect_judge"] == max(truths) and seed["seconds"] == 9.0 and seed["flops"] == 12
    # A training that did not finish leaves the seed without a cell, said so; not a choice among the rest.
    (tmp_path / "cell-1" / "results.json").unlink()
    seed = summarise(tmp_path, {("s", 0): plan}, {}, lambda job: job.run)["settings"]["s"]["seeds"][0]
    assert "cell" not in seed and "1 of 3 trainings did not finish" in seed["error"]


@pytest.mark.slow
def test_random_search_reports_the_cell_its_proxy_chose(tmp_path, capsys):
    out = tmp_path / "r"
    args = [
        "bench",
        "random",
        "--config",
        "nb201-quick",
        "--seeds",
        "1",
        "--cells",
        "2",
        "--proxy-epochs",
        "1",
        "--out",
        str(out),
    ]
    for item in TINY:
        args += ["--set", item]
    assert main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    seed = report["settings"]["nb201-quick"]["seeds"][0]
    assert seed["drawn"] == 2 and len(seed["cells"]) == 2
    table = load_table()
    assert all(c["accuracy"] == table.accuracy(c["cell"]) for c in seed["cells"])
    chosen = max(seed["cells"], key=lambda c: c["valid_acc"])
    assert seed["cell"] == chosen["cell"] and seed["accuracy"] == chosen["accuracy"]
    assert seed["perfect_judge"] == max(c["accuracy"] for c in seed["cells"]) >= seed["accuracy"]
    # Each cell is a training run of the search's data and optimiser, judged on the share the search tunes alphas on.
    run = Path(chosen["run"])
    saved = (run / "config.yaml").read_text()
    assert "valid_portion: 0.5" in saved and "init_channels: 4" in saved and "layers: 3" in saved
    assert json.loads((run / "genotype.json").read_text()) == {"nas_bench_201": chosen["cell"]}
    assert json.loads((out / "random.json").read_text())["settings"] == report["settings"]

    # Finished trainings are read, not run again; trainings of other settings are refused.
    logs = sorted((out / "nb201-quick" / "seed-0").glob("cell-*.log"))
    before = [log.read_text() for log in logs]
    assert main(args + ["--json"]) == 0
    assert [log.read_text() for log in logs] == before
    assert json.loads(capsys.readouterr().out)["settings"] == report["settings"]
    assert main(args + ["--proxy-epochs", "2"]) == 2
    assert "other settings (epochs)" in capsys.readouterr().err


def test_a_space_without_a_table_is_refused(capsys):
    assert main(["bench", "random", "--config", "quick", "--seeds", "1"]) == 2
    assert "NAS-Bench-201 space" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--cells", "--proxy-epochs", "--seeds"])
def test_counts_below_one_are_refused(flag, capsys):
    assert main(["bench", "random", "--config", "nb201-quick", flag, "0"]) == 2
    assert f"{flag} must be at least 1" in capsys.readouterr().err
