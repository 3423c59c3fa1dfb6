"""Benchmarks: `dartsnas bench search-step` (bench.py) and `dartsnas bench conv` (bench_conv.py)."""
