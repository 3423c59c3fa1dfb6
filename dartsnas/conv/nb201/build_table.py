"""Build the NAS-Bench-201 table the package ships (conv/nb201/nb201.csv.xz) from the benchmark's CSV:

    python -m dartsnas.conv.nb201.build_table nb201_test_accuracy.csv [OUT]

SOURCE has the columns arch (the benchmark's string form of a cell), cifar10, cifar100 and imagenet16_120
(test accuracy in %). Every one of the 15,625 cells must appear exactly once, in the benchmark's own
spelling, with finite accuracies. OUT (default: the package's file) gets the cells in canonical index
order, written by table.py's format_table and read back to check it. Prints the sha256 to put
in table.py as TABLE_SHA256. Needs no torch.
"""

from __future__ import annotations

import csv
import hashlib
import lzma
import math
import sys
from pathlib import Path

from ...core.genotype import GenotypeError
from ...data.download import DataError
from .genotype import SPACE_SIZE, CellGenotype
from .table import DATASETS, TABLE_FILE, format_table, parse_table


def read_source(path: Path) -> list[tuple[float, ...]]:
    """Each cell's accuracies, in canonical index order, after checking every cell is there exactly once."""
    rows: list[tuple[float, ...] | None] = [None] * SPACE_SIZE
    seen: dict[int, int] = {}  # cell index -> line
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("arch",) + DATASETS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path} lacks the column(s) {missing}; it needs arch,{','.join(DATASETS)}")
        for line, record in enumerate(reader, 2):
            arch = record["arch"]
            try:
                cell = CellGenotype.parse(arch)
            except GenotypeError as err:
                raise DataError(f"{path}, line {line}: {err}") from None
            if str(cell) != arch:
                raise DataError(f"{path}, line {line}: {arch!r} is not in the benchmark's spelling {str(cell)!r}")
            if cell.index in seen:
                raise DataError(f"{path}, line {line}: {arch} appears again (first on line {seen[cell.index]})")
            seen[cell.index] = line
            try:
                values = tuple(float(record[d]) for d in DATASETS)
            except (TypeError, ValueError):
                raise DataError(
                    f"{path}, line {line}: accuracies {[record[d] for d in DATASETS]} are not numbers"
                ) from None
            if not all(math.isfinite(v) and 0 <= v <= 100 for v in values):
                raise DataError(f"{path}, line {line}: accuracies {values} are not percentages")
            rows[cell.index] = values
    absent = [i for i, row in enumerate(rows) if row is None]
    if absent:
        raise DataError(
            f"{path} lacks {len(absent)} of the {SPACE_SIZE} cells, e.g. {CellGenotype.from_index(absent[0])}"
        )
    return rows


def build(source: Path, out: Path) -> str:
    """Write the shipped table from `source` to `out`, check it reads back, return its content's sha256."""
    rows = read_source(source)
    text = format_table(rows).encode("ascii")
    out.write_bytes(lzma.compress(text, preset=9 | lzma.PRESET_EXTREME))
    if parse_table(lzma.decompress(out.read_bytes()).decode("ascii"), str(out)) != rows:
        raise DataError(f"{out} does not read back equal to {source}")
    return hashlib.sha256(text).hexdigest()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2 or args[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    source, out = Path(args[0]), Path(args[1]) if len(args) == 2 else TABLE_FILE
    try:
        digest = build(source, out)
    except (OSError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({out.stat().st_size:,} bytes, {SPACE_SIZE:,} cells)")
    print(f"sha256 of the file:     {hashlib.sha256(out.read_bytes()).hexdigest()}")
    print(f"sha256 of its content:  {digest}  <- TABLE_SHA256 in dartsnas/conv/nb201/table.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
