"""NAS-Bench-201 as data: the test accuracy of every cell of its space, and the yardsticks a search on that
space is judged against (Dong & Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
Architecture Search", ICLR 2020).

The figures are the benchmark's own: test accuracy (%) after its 200-epoch training, averaged over its
seeds, on CIFAR-10, CIFAR-100 and ImageNet16-120, exported from the NATS-Bench topology API (`hp=200`;
NATS-Bench's topology space is NAS-Bench-201) by a third party (docs/nas-bench-201.md, The table). The package
ships them as nb201.csv.xz: a header, then one line per cell in canonical index order
(genotype.CellGenotype.index, so a line's cell follows from its number), each accuracy written as
Python's repr of the source's float, so values read back exactly. `python -m dartsnas.conv.nb201.build_table`
builds that file and prints the sha256 of its decompressed text, TABLE_SHA256 below, which every load checks.

A search that trains k cells is judged against random search with the same budget: the expected best
test accuracy of k distinct cells drawn uniformly (`expected_best_of_k`), beside the best cell, the mean
and the median. This module needs no torch.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import lzma
import math
import operator
import statistics
from pathlib import Path
from collections.abc import Iterator, Sequence

from ...data.download import DataError
from ...core.genotype import GenotypeError
from .genotype import SPACE_SIZE, CellGenotype

DATASETS = ("cifar10", "cifar100", "imagenet16_120")
HEADER = ",".join(DATASETS)
TABLE_FILE = Path(__file__).with_name("nb201.csv.xz")
# sha256 of nb201.csv.xz's decompressed text (not of the .xz bytes, which depend on the lzma build).
TABLE_SHA256 = "daddbde51bd840110498abdb00734e7fa91fbec7c0147db7cf8d2f60b78758a8"


class Benchmark:
    """Test accuracy (%) of every NAS-Bench-201 cell on each of DATASETS, rows in canonical index order."""

    def __init__(self, rows: Sequence[Sequence[float]]):
        if len(rows) != SPACE_SIZE or any(len(row) != len(DATASETS) for row in rows):
            raise DataError(
                f"a NAS-Bench-201 table has {SPACE_SIZE} rows of {len(DATASETS)} accuracies "
                f"({HEADER}); got {len(rows)} rows"
            )
        self._columns = {d: tuple(float(row[c]) for row in rows) for c, d in enumerate(DATASETS)}

    def __len__(self) -> int:
        return SPACE_SIZE

    def __iter__(self) -> Iterator[tuple[CellGenotype, dict[str, float]]]:
        for i in range(SPACE_SIZE):
            yield CellGenotype.from_index(i), {d: self._columns[d][i] for d in DATASETS}

    def values(self, dataset: str = "cifar10") -> tuple[float, ...]:
        """Every cell's accuracy on `dataset`, in canonical index order."""
        return self._columns[check_dataset(dataset)]

    def accuracy(self, cell: CellGenotype | str, dataset: str = "cifar10") -> float:
        if isinstance(cell, str):
            cell = CellGenotype.parse(cell)
        elif not isinstance(cell, CellGenotype):
            raise GenotypeError(f"a NAS-Bench-201 cell is a CellGenotype or its string, got {type(cell).__name__}")
        return self.values(dataset)[cell.index]

    def best(self, dataset: str = "cifar10") -> tuple[CellGenotype, float]:
        """The best cell and its accuracy; of cells tied at the maximum, the lowest index."""
        values = self.values(dataset)
        i = max(range(SPACE_SIZE), key=values.__getitem__)  # max keeps the first of equal keys
        return CellGenotype.from_index(i), values[i]

    def mean(self, dataset: str = "cifar10") -> float:
        return math.fsum(self.values(dataset)) / SPACE_SIZE

    def median(self, dataset: str = "cifar10") -> float:
        return statistics.median(self.values(dataset))

    def expected_best_of_k(self, dataset: str, k: int) -> float:
        """Random search with k trained cells: the expected best accuracy of k distinct cells drawn uniformly."""
        return expected_best_of_k(self.values(dataset), k)

    def expectations(self, dataset: str, k: int) -> dict:
        """The yardsticks for a search that trained k cells, as JSON-able data for a quality report."""
        cell, best = self.best(dataset)
        return {
            "dataset": check_dataset(dataset),
            "k": k,
            "best_cell": str(cell),
            "best": best,
            "mean": self.mean(dataset),
            "median": self.median(dataset),
            "expected_best_of_k": self.expected_best_of_k(dataset, k),
        }


def check_dataset(dataset: str) -> str:
    """The dataset's name in DATASETS; the benchmark's own spelling ("ImageNet16-120") is accepted too."""
    name = str(dataset).lower().replace("-", "_")
    if name not in DATASETS:
        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DataError(f"unknown NAS-Bench-201 dataset {dataset!r}; {hint}valid: {', '.join(DATASETS)}")
    return name


def expected_best_of_k(values: Sequence[float], k: int) -> float:
    """The expected maximum of k distinct values drawn uniformly without replacement.

    With v_1 <= ... <= v_n sorted, v_i is the maximum of exactly C(i-1, k-1) of the C(n, k) equally likely
    draws, so E = sum_i v_i w_i with w_i = C(i-1, k-1) / C(n, k). The weights come from w_n = k / n and
    w_{i-1} = w_i (i - k) / (i - 1), all positive, without forming a binomial (C(15625, k) overflows floats).
    """
    ordered = sorted(values)
    n = len(ordered)
    k = operator.index(k)
    if not 1 <= k <= n:
        raise ValueError(f"k = {k}: the number of cells drawn lies in 1..{n}")
    terms, weight = [], k / n
    for i in range(n, k - 1, -1):  # 1-based rank, from the largest value down
        terms.append(weight * ordered[i - 1])
        if i > k:
            weight *= (i - k) / (i - 1)
    return math.fsum(terms)


def format_table(rows: Sequence[Sequence[float]]) -> str:
    """The shipped file's text: the header, then each cell's accuracies (repr: exact) in canonical order."""
    return "".join([HEADER + "\n"] + [",".join(repr(float(v)) for v in row) + "\n" for row in rows])


def parse_table(text: str, where: str = "the table") -> list[tuple[float, ...]]:
    lines = text.splitlines()
    if not lines or lines[0] != HEADER:
        raise DataError(f"{where} does not start with the header {HEADER!r}")
    try:
        rows = [tuple(float(v) for v in line.split(",")) for line in lines[1:]]
    except ValueError as err:
        raise DataError(f"{where} has a line that is not numbers: {err}") from None
    return rows


@functools.cache
def load_table(path: str | Path | None = None) -> Benchmark:
    """The benchmark the package ships (or the copy at `path`), its digest checked against TABLE_SHA256."""
    path = Path(path) if path is not None else TABLE_FILE
    fix = "reinstall dartsnas (pip install --force-reinstall dartsnas) or restore the file from the repository"
    try:
        raw = lzma.decompress(path.read_bytes())
    except FileNotFoundError:
        raise DataError(f"the NAS-Bench-201 table {path} is missing; {fix}") from None
    except (OSError, lzma.LZMAError) as err:
        raise DataError(f"the NAS-Bench-201 table {path} is damaged ({err}); {fix}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != TABLE_SHA256:
        raise DataError(
            f"the NAS-Bench-201 table {path} is damaged: the sha256 of its content is {digest}, "
            f"expected {TABLE_SHA256}; {fix}"
        )
    return Benchmark(parse_table(raw.decode("ascii"), str(path)))
