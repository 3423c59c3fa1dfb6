"""Protocols over many runs: they run searches and trainings, jobs at a time, and report on what the runs
found. `dartsnas seeds` (seeds.py: the DARTS paper's multi-seed protocol), `dartsnas bench quality`
(quality.py: the NAS-Bench-201 accuracy of the cells K seeds of each search setting find), `dartsnas bench
random` (random_search.py: random search at a search's cost, the baseline protocol), `dartsnas bench skips`
(skips.py: the skip connections DARTS-space searches keep); runner.py runs their command lines.

Imports: `core`, `data`, `methods`, `conv` and `recurrent`; nothing imports it but the command line.
"""
