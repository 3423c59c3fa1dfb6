"""NAS-Bench-201's trained network as a layout of conv/network.py: sizes against the benchmark authors' own
counts, the command line's genotype and info commands on NAS-Bench-201 cells, and the cell's drawing."""

import json

import pytest
import torch

from dartsnas.cli import main
from dartsnas.conv.nb201.genotype import PUBLISHED_NB201, CellGenotype
from dartsnas.conv.nb201.model import Network201
from dartsnas.conv.network import NETWORKS, build_network, count_parameters, network_info

# Parameters of the benchmark's network (C=16, N=5, 10 classes) as the authors' code (xautodl's TinyNetwork)
# counts them.
AUTHORS_COUNTS = {
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|": 1_288_506,
    "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|": 73_306,
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|": 73_306,
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|": 241_306,
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|": 129_306,
}
# Every op of the space once or more, `none` included.
EVERY_OP = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


@pytest.mark.parametrize("cell, expected", AUTHORS_COUNTS.items())
def test_parameters_are_the_authors_counts(cell, expected, capsys):
    with torch.device("meta"):
        assert sum(p.numel() for p in Network201(CellGenotype.parse(cell)).parameters()) == expected
    assert main(["info", cell, "--json"]) == 0  # the default layout of a NAS-Bench-201 cell is its network
    info = json.loads(capsys.readouterr().out)
    assert info["net"] == "nas-bench-201" and info["parameters"] == expected and info["auxiliary_parameters"] == 0
    assert (info["layers"], info["init_channels"], info["num_classes"], info["input_shape"]) == (
        15,
        16,
        10,
        [3, 32, 32],
    )
    assert info["macs"] > 0


def test_info_sizes_and_layout_errors(capsys):
    assert main(["info", "NB201_ALL_CONV3X3", "--init-channels", "8", "--layers", "6", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    with torch.device("meta"):
        small = Network201(PUBLISHED_NB201["NB201_ALL_CONV3X3"], init_channels=8, layers=6)
    assert (info["layers"], info["init_channels"], info["parameters"]) == (6, 8, count_parameters(small))
    assert main(["info", "NB201_BEST_CIFAR10"]) == 0
    out = capsys.readouterr().out
    assert "nas-bench-201 layout: 15 cells" in out and "1,073,466" in out and "auxiliary" not in out
    assert main(["info", "NB201_ALL_SKIP", "--layers", "10"]) == 2
    assert "multiple of 3" in capsys.readouterr().err
    assert main(["info", "NB201_ALL_SKIP", "--net", "cifar10"]) == 2
    assert "NAS-Bench-201 cell" in capsys.readouterr().err
    assert main(["info", "DARTS_V2", "--net", "nas-bench-201"]) == 2
    assert "DARTS genotype" in capsys.readouterr().err
    assert main(["info", "DARTS_V2", "--json"]) == 0  # a DARTS genotype still defaults to the CIFAR-10 layout
    assert json.loads(capsys.readouterr().out)["net"] == "cifar10"


def test_layout_takes_sides_that_are_multiples_of_4():
    layout = NETWORKS["nas-bench-201"]
    assert (layout.cls, layout.input_shape, layout.num_classes, layout.min_size, layout.side_multiple) == (
        Network201,
        (3, 32, 32),
        10,
        4,
        4,
    )
    model = build_network(
        "nas-bench-201", CellGenotype.parse(EVERY_OP), num_classes=3, in_channels=1, init_channels=4, layers=3
    ).eval()
    for side in (4, 8, 12):
        assert model(torch.randn(2, 1, side, side)).shape == (2, 3)
    for side in (7, 10):  # a reduction's 2x2-pooled shortcut and its stride-2 conv disagree on odd sides
        with pytest.raises(RuntimeError):
            model(torch.randn(2, 1, side, side))
    # (At 6x6 the second reduction adds a 1x1 shortcut to 2x2 maps: broadcast, silently wrong; hence the check.)
    with pytest.raises(ValueError, match="multiples of 4"):
        network_info("nas-bench-201", CellGenotype.parse(EVERY_OP), size=6)
    with pytest.raises(ValueError, match="at least 4x4"):
        network_info("nas-bench-201", CellGenotype.parse(EVERY_OP), size=0)


def test_the_network_trains_every_op_forward_and_backward():
    model = build_network("nas-bench-201", CellGenotype.parse(EVERY_OP), init_channels=4, layers=3)
    model.set_drop_path_prob(0.0)  # the trainer sets it every epoch; 0 is the only rate it takes
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="drop_path_prob: 0"):
        model.set_drop_path_prob(0.1)


# ----------------------------------------------------------------------------------------------
# dartsnas genotype


def test_genotype_command_prints_nas_bench_201_cells(tmp_path, capsys):
    best = PUBLISHED_NB201["NB201_BEST_CIFAR10"]
    assert main(["genotype", "NB201_BEST_CIFAR10"]) == 0
    assert capsys.readouterr().out.strip() == str(best)
    assert main(["genotype", "NB201_BEST_CIFAR10", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"nas_bench_201": str(best)}
    assert main(["genotype", f"  {EVERY_OP} "]) == 0  # pasted text
    assert capsys.readouterr().out.strip() == EVERY_OP
    best.save(tmp_path / "genotype.json")
    for spec in (tmp_path / "genotype.json", tmp_path):  # a file, and a run folder holding one
        assert main(["genotype", str(spec)]) == 0
        assert capsys.readouterr().out.strip() == str(best)
    assert main(["genotype", "|nor_conv_3x3~0|+|nor_conv_5x5~0|none~1|+|none~0|none~1|none~2|"]) == 2
    assert "unknown op 'nor_conv_5x5'" in capsys.readouterr().err


def test_genotype_list_holds_every_kind(capsys):
    assert main(["genotype", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = {line.split(":")[0] for line in lines}
    assert set(PUBLISHED_NB201) | {"DARTS_V2", "DARTS_RNN"} <= names
    assert f"NB201_ALL_SKIP: {PUBLISHED_NB201['NB201_ALL_SKIP']}" in lines


# ----------------------------------------------------------------------------------------------
# The cell's picture


def test_cell_drawing_names_every_kept_op_and_no_none(tmp_path):
    pytest.importorskip("graphviz")
    from dartsnas.conv.nb201.plot import draw_nb201_cell

    cell = CellGenotype.parse(EVERY_OP)
    written = draw_nb201_cell(cell, tmp_path / "cell")
    assert written[0] == tmp_path / "cell.gv"
    source = (tmp_path / "cell.gv").read_text()
    assert "none" not in source
    for op in ("nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_1x1"):
        assert f"label={op}" in source
    edges = [line.split("[")[0].split() for line in source.splitlines() if "->" in line]
    assert sorted((e[0], e[2]) for e in edges) == [("0", "1"), ("0", "3"), ("1", "2"), ("1", "3"), ("2", "3")]
    assert "darkseagreen2" in source and "palegoldenrod" in source  # input node 0, output node 3
    assert "dashed" not in source  # every intermediate node reaches the output


def test_a_node_that_does_not_reach_the_output_is_dashed(tmp_path):
    pytest.importorskip("graphviz")
    from dartsnas.conv.nb201.plot import draw_nb201_cell

    # Node 1 feeds only node 2, and node 2 feeds nothing: both are computed for nothing.
    draw_nb201_cell(
        CellGenotype.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|none~2|"), tmp_path / "cell"
    )
    nodes = {
        line.split()[0]: line
        for line in (tmp_path / "cell.gv").read_text().splitlines()
        if line.strip()[:1] in "0123" and "->" not in line
    }
    assert "dashed" in nodes["1"] and "dashed" in nodes["2"]
    all_none = CellGenotype(("none",) * 6)
    draw_nb201_cell(all_none, tmp_path / "empty")
    assert "->" not in (tmp_path / "empty.gv").read_text()
