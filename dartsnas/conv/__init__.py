"""The convolutional side: cells searched on images (DARTS Sec. 2.1, 3.1.1) and trained from scratch (3.3).

plain.py (the method, plainly: the first file to read, and the ground truth the fast code is tested
against) - ops.py (candidate ops, the OPS registry) - spaces.py (candidate sets, the registry of spaces) - supernet.py (the fast
supernet and its mixed-op modes; speed tricks in fast.py, lean.py, kernels.py) - search.py (the search
loop) - network.py and train.py (training a found cell) - config.py -
export.py - memory.py (memory estimates before a search) - nb201/ (the NAS-Bench-201 space: its cells
and benchmark table as data, its search and trained networks).
"""
