"""Whole-step effect of kernels.Conv2d's transposed input gradient for dilated stride-1 convs (CPU).

Alternates search steps (architecture + weight step, `exact`, first order, the paper's setting) in one
process with the formulation on and off (off: kernels.Conv2d.keeps_size answers False, so PyTorch's own
backward runs), so that both see the same host state; prints the medians and their ratio.

    python -m dartsnas.bench.dilated_backward [--batch 64] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv: list[str] | None = None) -> dict[str, float]:
    import torch

    from ..conv import kernels
    from ..conv.config import SearchConfig
    from ..conv.search import Searcher, prepare_data
    from ..conv.spaces import DARTS_OPS
    from ..core.device import resolve_device

    parser = argparse.ArgumentParser(
        prog="python -m dartsnas.bench.dilated_backward", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7, help="on/off pairs; the first is warm-up")
    args = parser.parse_args(argv)
    if args.rounds < 2 or args.batch < 1:
        parser.error("--rounds needs at least 2 (the first pair is warm-up), --batch at least 1")
    config = SearchConfig(
        dataset="fake",
        data_options={"shape": [3, 32, 32], "size": 2 * args.batch},
        batch_size=args.batch,
        device="cpu",
        progress=False,
        ops=DARTS_OPS,
        plot=False,
    ).validate()
    device = resolve_device("cpu")
    searcher = Searcher(config, prepare_data(config, device), device)
    data = searcher.data
    x = searcher.prepare_inputs(data.train_augment(data.weight_half.images[: args.batch], searcher.generator))
    y = data.weight_half.labels[: args.batch]
    xa = searcher.prepare_inputs(data.train_augment(data.arch_half.images[: args.batch], searcher.generator))
    ya = data.arch_half.labels[: args.batch]
    keeps_size = kernels.Conv2d.keeps_size
    times = {"transposed": [], "native": []}
    try:
        for i in range(args.rounds):
            for name in times:
                kernels.Conv2d.keeps_size = keeps_size if name == "transposed" else (lambda self: False)
                start = time.perf_counter()
                searcher.architect.step(x, y, xa, ya, searcher.optimizer)
                searcher.weight_step(x, y)
                if i:
                    times[name].append(time.perf_counter() - start)
    finally:
        kernels.Conv2d.keeps_size = keeps_size
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, {args.rounds - 1} steps each"
    )
    for name, m in medians.items():
        print(f"{name:10s} median step {m:.2f} s")
    print(f"transposed / native: {medians['transposed'] / medians['native']:.3f}")
    return medians


if __name__ == "__main__":
    main()
