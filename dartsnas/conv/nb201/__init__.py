"""The NAS-Bench-201 search space and benchmark (Dong & Yang, ICLR 2020): a 4-node cell whose 6 edges
each take one of 5 ops, 15,625 cells in all, every one trained by the benchmark.

genotype.py (a cell as data: the benchmark's string form, its index, the cells the benchmark names;
no torch) - table.py (the benchmark's test accuracies, shipped as nb201.csv.xz, and the yardsticks a
search is judged against: best cell, mean, median, expected best of k random cells; no torch) -
build_table.py (rebuilds that file from the benchmark's CSV; no torch) - model.py (the search supernet,
and Network201, the network the benchmark trains a cell in) - plot.py (a cell drawn like the DARTS cells,
and the pictures of a run folder).
"""
