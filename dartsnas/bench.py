"""`dartsnas bench search-step`: time and peak memory of one search step (architecture step + weight
step), each configuration in a fresh process so that peak memory is its own.

Runs the search's own code (Searcher) on the `fake` dataset at the asked shape. Peak memory is the
process's peak resident set on CPU (runtime, weights and data included) and
`torch.cuda.max_memory_allocated` on CUDA.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time


def measure(setting: dict) -> dict:
    """One configuration, in this process: median seconds per step after warm-up, and peak memory."""
    import torch

    from .config import SearchConfig
    from .search import Searcher, peak_memory_gb, prepare_data, resolve_device

    if setting.get("threads"):
        torch.set_num_threads(setting["threads"])
    batch = setting["batch_size"]
    config = SearchConfig(dataset="fake", data_options={"shape": [3, setting["resolution"], setting["resolution"]],
                                                        "size": 2 * batch},
                          batch_size=batch, init_channels=setting["init_channels"], layers=setting["layers"],
                          unrolled=setting["order"] == "second", device=setting["device"], progress=False,
                          mixed_op=setting["mode"],
                          plot=False).validate()
    device = resolve_device(config.device)
    searcher = Searcher(config, prepare_data(config, device), device)
    data = searcher.data
    x, y = data.weight_half.images[:batch], data.weight_half.labels[:batch]
    x = searcher.prepare_inputs(data.train_augment(x, searcher.generator))
    xa = searcher.prepare_inputs(data.train_augment(data.arch_half.images[:batch], searcher.generator))
    ya = data.arch_half.labels[:batch]
    times = []
    for _ in range(setting["warmup"] + setting["steps"]):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        searcher.architect.step(x, y, xa, ya, searcher.optimizer)
        searcher.weight_step(x, y)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    measured = times[setting["warmup"]:]
    return {**setting, "step_s": statistics.median(measured), "steps_s": measured,
            "peak_gb": peak_memory_gb(device)}


def _run_fresh(setting: dict) -> dict:
    out = subprocess.run([sys.executable, "-m", "dartsnas.bench", json.dumps(setting)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-1:] or ["no output"]
        return {**setting, "error": tail[0]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def search_step(args) -> list[dict]:
    results = []
    for mode, batch, order in itertools.product(args.mode, args.batch, args.order):
        setting = {"mode": mode, "batch_size": batch, "order": order, "init_channels": args.init_channels, "layers": args.layers,
                   "resolution": args.resolution, "device": args.device, "steps": args.steps,
                   "warmup": args.warmup, "threads": args.threads}
        results.append(_run_fresh(setting))
        if not args.json:
            print(_row(results[-1]), flush=True)
    if args.json:
        print(json.dumps(results, indent=1))
    return results


def _row(r: dict) -> str:
    head = f"{r['mode']:5s}  batch {r['batch_size']:4d}  {r['order']:6s} order"
    if "error" in r:
        return f"{head}  failed: {r['error']}"
    steps = ", ".join(f"{t:.2f}" for t in r["steps_s"])
    return f"{head}  median step {r['step_s']:7.2f} s  peak {r['peak_gb']:6.2f} GB  (steps: {steps})"


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: bench search-step")
    p.add_argument("what", choices=["search-step"])
    p.add_argument("--mode", nargs="+", choices=["exact", "lean"], default=["exact"], help="mixed-op modes")
    p.add_argument("--batch", type=int, nargs="+", default=[64])
    p.add_argument("--order", nargs="+", choices=["first", "second"], default=["first", "second"])
    p.add_argument("--init-channels", type=int, default=16)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=3, help="measured steps (median reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=search_step)


if __name__ == "__main__":  # the child process of one configuration
    print(json.dumps(measure(json.loads(sys.argv[1]))))
