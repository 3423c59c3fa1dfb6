"""torch.compile on one search cell (`exact`, the paper's first normal cell: C=16, 32x32, batch 64):
compile time, and forward + backward time compiled and eager, medians of 5, in one process.
Usage: python benchmarks/compile_cell.py   (CPU; takes a few minutes, most of it compiling)
"""

import statistics
import time

import torch

from dartsnas.conv.spaces import DARTS_OPS
from dartsnas.conv.supernet import SearchCell

torch.manual_seed(0)
cell = SearchCell(4, 16, 16, 16, False, False, DARTS_OPS, "exact")
s0, s1 = (torch.randn(64, 16, 32, 32).contiguous(memory_format=torch.channels_last).requires_grad_() for _ in range(2))
probs = torch.randn(14, len(DARTS_OPS)).softmax(-1).requires_grad_()


def step(fn):
    fn(s0, s1, probs).sum().backward()


def median_time(fn, n=5):
    times = []
    for _ in range(n):
        start = time.perf_counter()
        step(fn)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


step(cell)
eager = median_time(cell)
compiled = torch.compile(cell)
start = time.perf_counter()
step(compiled)
print(f"torch {torch.__version__}: compile + first step {time.perf_counter() - start:.1f} s")
compiled_time, eager_again = median_time(compiled), median_time(cell)
print(f"forward + backward: compiled {compiled_time:.3f} s, eager {eager:.3f} s and {eager_again:.3f} s")
print(f"compiled / eager: {compiled_time / statistics.mean([eager, eager_again]):.2f}")
