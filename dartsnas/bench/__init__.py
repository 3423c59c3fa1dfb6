"""What times and measures the code, each printing a table with ratios against a baseline in the same run:
`dartsnas bench search-step` (search_step.py: one search step over a grid of settings, against the official
formulation), `dartsnas bench conv` (convs.py: the search's depthwise convs per formulation), `dartsnas bench
distributed` (distributed.py: one process against N data-parallel ranks), and `python -m
dartsnas.bench.dilated_backward` (one formulation switched on and off over whole search steps).

Imports: `core`, `data`, `methods`, `conv` and `recurrent`; nothing imports it but the command line.
"""
