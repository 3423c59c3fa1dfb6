"""Benchmarks: `dartsnas bench search-step` (bench.py) and `dartsnas bench conv` (bench_conv.py); and
nb201_table.py, which builds the NAS-Bench-201 table the package ships (conv/nb201/nb201.csv.xz)."""
