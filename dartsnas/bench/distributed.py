"""`dartsnas bench distributed`: the search step of one process against N data-parallel ranks (torchrun) at
the same global batch, and the bytes each rank all-reduces per step.

Each world size runs in fresh processes, `threads` CPU threads in all (split between the ranks), on the
`fake` dataset: the median seconds of a step (architecture step + weight step, every rank's shard of the
global batch) after warm-up, measured on rank 0 between barriers. The bytes are counted where they are
sent: DistributedDataParallel's buckets (a communication hook that counts, then all-reduces as the
default one does) and the architecture step's `Architect.average` all-reduces.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time


def measure(setting: dict) -> dict:
    """One world size, in this process (one rank of it under torchrun)."""
    import torch
    import torch.distributed as dist

    from ..conv.config import SearchConfig
    from ..conv.search import Searcher, prepare_data
    from ..core import distributed

    world, device = distributed.start(setting["device"])
    torch.set_num_threads(max(1, setting["threads"] // world.size))
    batch = setting["batch_size"]
    config = SearchConfig(
        dataset="fake",
        data_options={"shape": [3, 32, 32], "size": 2 * batch},
        batch_size=batch,
        init_channels=setting["init_channels"],
        layers=setting["layers"],
        unrolled=setting["order"] == "second",
        mixed_op=setting["mode"],
        device=setting["device"],
        progress=False,
        plot=False,
    ).validate()
    searcher = Searcher(config, prepare_data(config, device), device)
    sent = {"weights": 0, "alphas": 0}
    if world.wrapped:
        _count_bytes(searcher, sent)
    data = searcher.data
    x = data.train_augment(data.weight_half.images[:batch], searcher.generator)
    xa = data.train_augment(data.arch_half.images[:batch], searcher.generator)
    x, y, xa, ya = (
        searcher.prepare_inputs(distributed.shard(t)) if t.is_floating_point() else distributed.shard(t)
        for t in (x, data.weight_half.labels[:batch], xa, data.arch_half.labels[:batch])
    )
    times = []
    for i in range(setting["warmup"] + setting["steps"]):
        if world.wrapped:
            dist.barrier()
        start = time.perf_counter()
        searcher.architect.step(x, y, xa, ya, searcher.optimizer)
        searcher.weight_step(x, y)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if world.wrapped:
            dist.barrier()
        times.append(time.perf_counter() - start)
        if i == setting["warmup"] - 1:
            sent.update(weights=0, alphas=0)  # count the measured steps only
    steps = setting["steps"]
    result = {
        **setting,
        "world": world.size,
        "ddp": world.wrapped,
        "step_s": statistics.median(times[setting["warmup"] :]),
        "weight_bytes": sent["weights"] / steps,
        "alpha_bytes": sent["alphas"] / steps,
        "weights": sum(p.numel() for p in searcher.model.weights()),
        "alphas": sum(a.numel() for a in searcher.model.arch_parameters()),
    }
    distributed.stop()
    return result


def _count_bytes(searcher, sent: dict) -> None:
    """Count what each all-reduce sends: DDP's buckets and the architecture step's averages."""
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    from ..core.distributed import world

    def counted(state, bucket):
        sent["weights"] += bucket.buffer().numel() * bucket.buffer().element_size()
        return allreduce_hook(state, bucket)

    searcher.network.register_comm_hook(None, counted)
    real = searcher.architect.average

    def average(grads):  # all-reduced only between ranks (alone, averaging is the identity)
        if world().distributed:
            size = sum(g.numel() * g.element_size() for g in grads)
            sent["alphas" if len(grads) == len(searcher.model.arch_parameters()) else "weights"] += size
        return real(grads)

    searcher.architect.average = average
    assert dist.is_initialized()


def run_world(setting: dict, ranks: int, ddp: bool = False) -> dict:
    """A world of `ranks` processes (torchrun for more than one, or with `ddp` for one process under
    DistributedDataParallel); rank 0's result."""
    worker = ["-m", "dartsnas.bench.distributed", json.dumps(setting)]
    launch = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"] + worker
        if ranks > 1 or ddp
        else [sys.executable] + worker
    )
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, setting["threads"] // ranks)), "DARTSNAS_DDP": str(int(ddp))}
    out = subprocess.run(launch, capture_output=True, text=True, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        return {
            **setting,
            "world": ranks,
            "ddp": ddp,
            "error": (out.stderr.strip().splitlines() or ["no output"])[-1][:200],
        }
    return json.loads(lines[0])


def table(results: list[dict]) -> str:
    """Markdown: per world size and order, the step time and its ratio to one process, and the bytes."""
    rows = [
        "| order | world | batch per rank | step (s) | time / one process | all-reduced per step (MB): "
        "weights | alphas |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['order']} | {r['world']} | | error: {r['error']} | | | |")
            continue
        one = next(
            q for q in results if q["world"] == 1 and not q.get("ddp") and q["order"] == r["order"] and "error" not in q
        )
        world = f"{r['world']} (DDP)" if r["world"] == 1 and r.get("ddp") else r["world"]
        rows.append(
            f"| {r['order']} | {world} | {r['batch_size'] // r['world']} | {r['step_s']:.3f} | "
            f"{r['step_s'] / one['step_s']:.2f}x | {r['weight_bytes'] / 1e6:.2f} | {r['alpha_bytes'] / 1e6:.4f} |"
        )
    return "\n".join(rows)


def distributed_bench(args) -> None:
    results = []
    for order in args.order:
        setting = {
            "batch_size": args.batch,
            "init_channels": args.init_channels,
            "layers": args.layers,
            "mode": args.mode,
            "order": order,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": args.threads,
            "device": args.device,
        }
        worlds = [(1, False)] + [(1, True)] * args.ddp_alone + [(r, False) for r in args.ranks if r > 1]
        for ranks, ddp in worlds:
            results.append(run_world(setting, ranks, ddp))
            print(json.dumps(results[-1]), file=sys.stderr)
    print(table(results))


def add_parser(what) -> None:
    """`dartsnas bench distributed`, under `what`: the subcommands of `dartsnas bench`."""
    d = what.add_parser(
        "distributed",
        help="the search step of 1 and of N data-parallel ranks (torchrun) at the "
        "same global batch, and the bytes all-reduced per step",
    )
    d.add_argument(
        "--ranks", type=int, nargs="+", default=[2], help="world sizes beside one plain process (default: 2)"
    )
    d.add_argument(
        "--ddp-alone",
        action="store_true",
        help="also one process under DistributedDataParallel: what the wrapper itself costs (on one GPU, say)",
    )
    d.add_argument("--order", nargs="+", choices=["first", "second"], default=["first"])
    d.add_argument("--mode", default="exact", help="the mixed-op mode (default: exact)")
    d.add_argument("--batch", type=int, default=64, help="the global batch (default: 64)")
    d.add_argument("--init-channels", type=int, default=16)
    d.add_argument("--layers", type=int, default=8)
    d.add_argument("--steps", type=int, default=3)
    d.add_argument("--warmup", type=int, default=1)
    d.add_argument("--threads", type=int, default=2, help="CPU threads in all, split between the ranks (default: 2)")
    d.add_argument("--device", default="cpu", help="cpu (gloo), or cuda (nccl: one GPU per rank)")
    d.set_defaults(func=distributed_bench)


if __name__ == "__main__":
    result = measure(json.loads(sys.argv[1]))
    if os.environ.get("RANK", "0") == "0":  # rank 0's line only: the ranks' prints could interleave on one pipe
        print(json.dumps(result))
