"""The NAS-Bench-201 table shipped with the package: it loads whole with its digest checked, reads back the
benchmark's figures exactly, equals the benchmark's CSV where ../shared has it, and its random-search
yardstick (expected best of k) equals brute force."""

import csv
import hashlib
import itertools
import json
import lzma
import random
import statistics

import pytest

from dartsnas.data.download import DataError
from dartsnas.core.genotype import GenotypeError
from dartsnas.conv.nb201.genotype import PUBLISHED_NB201, SPACE_SIZE, CellGenotype
from dartsnas.conv.nb201.table import (
    DATASETS,
    TABLE_FILE,
    TABLE_SHA256,
    expected_best_of_k,
    format_table,
    load_table,
)
from dartsnas.conv.nb201 import build_table

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


@pytest.fixture(scope="module")
def bench():
    return load_table()


def test_loads_every_cell_once_with_its_digest_checked(bench):
    assert TABLE_FILE.name == "nb201.csv.xz"
    assert hashlib.sha256(lzma.decompress(TABLE_FILE.read_bytes())).hexdigest() == TABLE_SHA256
    assert load_table() is bench  # cached
    assert len(bench) == SPACE_SIZE == 15_625
    rows = list(bench)
    assert len({str(cell) for cell, _ in rows}) == SPACE_SIZE
    assert [cell.index for cell, _ in rows] == list(range(SPACE_SIZE))
    assert all(set(acc) == set(DATASETS) and all(0 <= v <= 100 for v in acc.values()) for _, acc in rows)


def _write_copy(path, edit):
    text = lzma.decompress(TABLE_FILE.read_bytes()).decode("ascii")
    path.write_bytes(lzma.compress(edit(text).encode("ascii"), preset=0))
    return path


def test_a_damaged_copy_is_a_clear_error(tmp_path):
    changed = _write_copy(tmp_path / "changed.csv.xz", lambda t: t.replace("94.37333333333333", "99.37333333333333", 1))
    with pytest.raises(DataError, match="is damaged: the sha256 of its content is .*expected .*reinstall dartsnas"):
        load_table(changed)
    truncated = tmp_path / "truncated.csv.xz"
    truncated.write_bytes(TABLE_FILE.read_bytes()[:5000])
    with pytest.raises(DataError, match="is damaged .*reinstall"):
        load_table(truncated)
    with pytest.raises(DataError, match="is missing; reinstall"):
        load_table(tmp_path / "absent.csv.xz")
    assert len(load_table(_write_copy(tmp_path / "same.csv.xz", lambda t: t))) == SPACE_SIZE


def test_known_entries(bench):
    assert bench.accuracy(BEST) == 94.37333333333333
    assert bench.accuracy(CellGenotype.parse(BEST), "cifar10") == 94.37333333333333
    skip = CellGenotype.parse(ALL_SKIP)
    assert [bench.accuracy(skip, d) for d in DATASETS] == [54.29666666666666, 15.606666662597656, 16.322222197638617]
    assert bench.values("cifar100")[skip.index] == 15.606666662597656


def test_best_cells(bench):
    for dataset in DATASETS:
        cell, acc = bench.best(dataset)
        values = bench.values(dataset)
        assert acc == max(values) == bench.accuracy(cell, dataset)
        assert cell.index == values.index(acc)  # of tied cells, the lowest index
    # Two cells tie at the CIFAR-10 optimum; the published one is one of them.
    assert bench.best("cifar10")[1] == bench.accuracy(PUBLISHED_NB201["NB201_BEST_CIFAR10"]) == 94.37333333333333
    assert bench.values("cifar10").count(94.37333333333333) == 2
    assert bench.best("cifar100") == (PUBLISHED_NB201["NB201_BEST_CIFAR100"], 73.51333326009114)
    assert bench.best("imagenet16_120") == (PUBLISHED_NB201["NB201_BEST_IMAGENET16"], 47.31111105685764)


@pytest.mark.parametrize("name", sorted(PUBLISHED_NB201))
def test_published_cells_are_in_the_table(bench, name):
    cell = PUBLISHED_NB201[name]
    assert all(0 < bench.accuracy(str(cell), d) <= bench.best(d)[1] for d in DATASETS)


def test_lookups_name_bad_input(bench):
    assert bench.accuracy(BEST, "CIFAR10") == bench.accuracy(BEST, "cifar10")
    assert bench.best("ImageNet16-120") == bench.best("imagenet16_120")  # the benchmark's own spelling
    with pytest.raises(
        DataError,
        match="unknown NAS-Bench-201 dataset 'imagenet'; did you mean 'imagenet16_120'.*"
        "valid: cifar10, cifar100, imagenet16_120",
    ):
        bench.accuracy(BEST, "imagenet")
    with pytest.raises(DataError, match="valid: cifar10, cifar100, imagenet16_120"):
        bench.values("svhn")
    with pytest.raises(GenotypeError, match="unknown op 'conv_3x3'"):
        bench.accuracy(BEST.replace("nor_conv_3x3~0|+", "conv_3x3~0|+", 1))
    with pytest.raises(GenotypeError, match="CellGenotype or its string"):
        bench.accuracy(3)


def test_summaries(bench):
    for dataset in DATASETS:
        values = bench.values(dataset)
        assert bench.mean(dataset) == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert bench.median(dataset) == statistics.median(values)
        assert bench.expected_best_of_k(dataset, 1) == pytest.approx(bench.mean(dataset), rel=1e-12)
        assert bench.expected_best_of_k(dataset, SPACE_SIZE) == bench.best(dataset)[1]
        ks = [1, 2, 3, 10, 100, 1000, 10_000, SPACE_SIZE]
        curve = [bench.expected_best_of_k(dataset, k) for k in ks]
        assert curve == sorted(curve) and curve[0] < curve[-1]
    report = bench.expectations("cifar10", 100)
    assert report == {
        "dataset": "cifar10",
        "k": 100,
        "best_cell": str(bench.best("cifar10")[0]),
        "best": 94.37333333333333,
        "mean": bench.mean("cifar10"),
        "median": bench.median("cifar10"),
        "expected_best_of_k": bench.expected_best_of_k("cifar10", 100),
    }
    assert report["median"] < report["expected_best_of_k"] < report["best"]


def test_expected_best_of_k_is_brute_force():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]  # unsorted, with a tie
    curve = []
    for k in range(1, len(values) + 1):
        draws = list(itertools.combinations(values, k))
        brute = sum(max(d) for d in draws) / len(draws)
        assert expected_best_of_k(values, k) == pytest.approx(brute, rel=1e-13)
        curve.append(expected_best_of_k(values, k))
    assert curve[0] == pytest.approx(statistics.fmean(values)) and curve[-1] == max(values)
    assert all(a < b for a, b in zip(curve, curve[1:]))
    for k in (0, len(values) + 1):
        with pytest.raises(ValueError, match="lies in 1..8"):
            expected_best_of_k(values, k)


@pytest.fixture(scope="module")
def csv_lines(bench):
    """The table as the benchmark's CSV lines (arch, accuracies), in canonical order."""
    return [f"{cell}," + ",".join(repr(acc[d]) for d in DATASETS) for cell, acc in bench]


def _csv_text(csv_lines, order):
    return "\n".join(["arch," + ",".join(DATASETS)] + [csv_lines[i] for i in order]) + "\n"


@pytest.fixture
def shuffled():
    order = list(range(SPACE_SIZE))
    random.Random(0).shuffle(order)
    return order


def test_the_maintenance_tool_rebuilds_the_shipped_file(bench, csv_lines, shuffled, tmp_path, capsys):
    source, out = tmp_path / "source.csv", tmp_path / "nb201.csv.xz"
    source.write_text(_csv_text(csv_lines, shuffled))
    assert build_table.main([str(source), str(out)]) == 0
    assert TABLE_SHA256 in capsys.readouterr().out
    assert lzma.decompress(out.read_bytes()) == lzma.decompress(TABLE_FILE.read_bytes())
    assert format_table([[acc[d] for d in DATASETS] for _, acc in bench]) == lzma.decompress(out.read_bytes()).decode()


def test_the_maintenance_tool_needs_every_cell_once(csv_lines, shuffled, tmp_path, capsys):
    source, out = tmp_path / "source.csv", tmp_path / "nb201.csv.xz"
    source.write_text(_csv_text(csv_lines, shuffled[:-1]))
    assert build_table.main([str(source), str(out)]) == 1
    assert f"lacks 1 of the 15625 cells, e.g. {CellGenotype.from_index(shuffled[-1])}" in capsys.readouterr().err
    source.write_text(_csv_text(csv_lines, shuffled + shuffled[:1]))
    assert build_table.main([str(source), str(out)]) == 1
    assert (
        f"line {SPACE_SIZE + 2}: {CellGenotype.from_index(shuffled[0])} appears again (first on line 2)"
        in capsys.readouterr().err
    )
    source.write_text(_csv_text(csv_lines, shuffled).replace("|+|", "|", 1))
    assert build_table.main([str(source), str(out)]) == 1
    assert "line 2: a NAS-Bench-201 cell has 3 nodes" in capsys.readouterr().err
    assert not out.exists()


def test_shipped_copy_equals_the_benchmark_csv(bench, shared_data):
    path = shared_data / "nas-bench-201" / "nb201_test_accuracy.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with open(path, newline="") as f:
        records = list(csv.DictReader(f))
    assert len(records) == SPACE_SIZE
    assert {CellGenotype.parse(r["arch"]).index for r in records} == set(range(SPACE_SIZE))
    for record in records:
        index = CellGenotype.parse(record["arch"]).index
        for dataset in DATASETS:
            assert bench.values(dataset)[index] == float(record[dataset]), (record["arch"], dataset)


def test_info_prints_a_cells_true_accuracies(capsys):
    from dartsnas.cli import main

    assert main(["info", "NB201_ALL_SKIP", "--json"]) == 0
    accs = json.loads(capsys.readouterr().out)["nas_bench_201_test_acc"]
    assert accs == {"cifar10": 54.29666666666666, "cifar100": 15.606666662597656, "imagenet16_120": 16.322222197638617}
    assert main(["info", "NB201_ALL_SKIP"]) == 0
    assert "cifar10 54.30 %, cifar100 15.61 %, imagenet16_120 16.32 %" in capsys.readouterr().out
