"""Benchmarks: `dartsnas bench search-step` (bench.py), `dartsnas bench conv` (bench_conv.py) and
`dartsnas bench quality` (quality.py: the NAS-Bench-201 accuracy of the cells searches find); and
nb201_table.py, which builds the NAS-Bench-201 table the package ships (conv/nb201/nb201.csv.xz)."""
