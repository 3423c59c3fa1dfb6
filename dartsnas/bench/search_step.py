"""`dartsnas bench search-step`: time and peak memory of one search step (architecture step + weight
step) over a grid of mode x order x batch size x candidate-set size, each configuration in a fresh
process so that peak memory is its own.

Runs the search's own code (Searcher) on the `fake` dataset at the asked shape; mode `reference` runs
the official code's plain formulation of the same network and step (conv/plain.py), the baseline the
speed targets are stated against. Peak memory is the process's peak resident set on CPU (runtime,
weights and data included) and `torch.cuda.max_memory_allocated` on CUDA. Ratios are taken within the
same invocation: time and memory against `exact` and against `reference` at the same order, batch and
candidate set, and memory against the same mode with the smallest candidate set measured. With
`--compile off on`, every mode that compiles (exact, partial) is also run compiled (core/compiled.py): its
warm-up steps compile (and on CUDA capture the graphs), the compile time is reported apart, and the
compiled step is set against the same mode eager (`time / eager`); the baselines stay eager.
"""

from __future__ import annotations

import itertools
import json
import statistics
import subprocess
import sys
import time

from ..conv.spaces import OP_SETS
from ..methods.relaxations import RELAXATIONS, unit_class


def measure(setting: dict) -> dict:
    """One configuration, in this process: median seconds per step after warm-up, and peak memory."""
    import torch

    if setting.get("threads"):
        torch.set_num_threads(setting["threads"])
    if setting["mode"] == "reference":
        return _measure_reference(setting)

    from ..conv.config import SearchConfig
    from ..conv.memory import estimate_bytes, held_bytes
    from ..conv.search import Searcher, prepare_data
    from ..core.device import resolve_device

    batch = setting["batch_size"]
    config = SearchConfig(
        dataset="fake",
        data_options={"shape": [3, setting["resolution"], setting["resolution"]], "size": 2 * batch},
        batch_size=batch,
        init_channels=setting["init_channels"],
        layers=setting["layers"],
        unrolled=setting["order"] == "second",
        device=setting["device"],
        progress=False,
        mixed_op=setting["mode"],
        ops=list(OP_SETS[setting["ops"]]),
        compile=setting.get("compile", False),
        compile_scope=setting.get("scope", "cells"),
        compile_backend=setting.get("backend", "inductor"),
        plot=False,
    ).validate()
    device = resolve_device(config.device)
    searcher = Searcher(config, prepare_data(config, device), device)
    data = searcher.data
    # What the search would log up front (memory.py), to compare with the measured peak.
    held = held_bytes(device)
    estimate = held + estimate_bytes(
        config, data.weight_half.in_channels, data.weight_half.num_classes, tuple(data.weight_half.size), device
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # the probe's own allocations are not the step's
    x, y = data.weight_half.images[:batch], data.weight_half.labels[:batch]
    x = searcher.prepare_inputs(data.train_augment(x, searcher.generator))
    xa = searcher.prepare_inputs(data.train_augment(data.arch_half.images[:batch], searcher.generator))
    ya = data.arch_half.labels[:batch]

    def step():
        searcher.architect.step(x, y, xa, ya, searcher.optimizer)
        searcher.weight_step(x, y)

    out = {**setting, **_timed(step, setting, device), "estimate_gb": estimate / 2**30}
    if config.compile:
        from ..core.compiled import compile_seconds

        out["compile_s"] = compile_seconds()
    return out


def _measure_reference(setting: dict) -> dict:
    """The plain formulation of the official code (conv/plain.py), timed the same way, on random data."""
    import torch

    from ..conv.plain import Network, Step
    from ..core.device import resolve_device

    device = resolve_device(setting["device"])
    torch.manual_seed(0)
    model = Network(3, 10, setting["init_channels"], setting["layers"], ops=list(OP_SETS[setting["ops"]])).to(device)
    step = Step(model, unrolled=setting["order"] == "second")
    shape = (setting["batch_size"], 3, setting["resolution"], setting["resolution"])
    x, x_val = torch.randn(2, *shape, device=device)
    y, y_val = torch.randint(0, 10, (2, setting["batch_size"]), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return {**setting, **_timed(lambda: step(x, y, x_val, y_val), setting, device)}


def _timed(step, setting: dict, device) -> dict:
    """Median seconds of `setting['steps']` calls after `setting['warmup']`, and the peak memory."""
    import torch

    from ..core.device import peak_memory_gb

    times = []
    for _ in range(setting["warmup"] + setting["steps"]):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    measured = times[setting["warmup"] :]
    return {"step_s": statistics.median(measured), "steps_s": measured, "peak_gb": peak_memory_gb(device)}


def _run_fresh(setting: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "dartsnas.bench.search_step", json.dumps(setting)], capture_output=True, text=True
    )
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        errors = [line for line in lines if "Error" in line] or lines[-1:] or ["no output"]
        return {**setting, "error": errors[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def add_ratios(results: list[dict]) -> list[dict]:
    """Time and memory against `exact` and `reference` (same order, batch, ops), memory against the fewest ops."""
    ok = [r for r in results if "error" not in r]
    for r in ok:
        same = [
            q
            for q in ok
            if (q["order"], q["batch_size"], q["ops"]) == (r["order"], r["batch_size"], r["ops"])
            and not q.get("compile")
        ]  # the baselines run eager
        if r.get("compile"):
            q = next((q for q in same if q["mode"] == r["mode"]), None)
            if q is not None:
                r["time_vs_eager"] = r["step_s"] / q["step_s"]
        for base in ("exact", "reference"):
            q = next((q for q in same if q["mode"] == base), None)
            if q is not None:
                r[f"time_vs_{base}"] = r["step_s"] / q["step_s"]
                r[f"memory_vs_{base}"] = r["peak_gb"] / q["peak_gb"]
        mode = [
            q
            for q in ok
            if (q["mode"], q["order"], q["batch_size"], q.get("compile"))
            == (r["mode"], r["order"], r["batch_size"], r.get("compile"))
        ]
        fewest = min(mode, key=lambda q: q["ops"])
        if fewest["ops"] != r["ops"]:
            r[f"memory_vs_{fewest['ops']}_ops"] = r["peak_gb"] / fewest["peak_gb"]
    return results


def search_step(args) -> list[dict]:
    results = []
    for order, batch, ops, mode, compiled in itertools.product(
        args.order, args.batch, args.ops, args.mode, [c == "on" for c in args.compile]
    ):
        if compiled and (mode == "reference" or not unit_class(mode).compiles):  # the official code is eager
            continue
        # Compiled: the first steps compile, and on CUDA record and capture the graphs; the timed ones replay.
        setting = {
            "mode": mode,
            "batch_size": batch,
            "order": order,
            "ops": ops,
            "compile": compiled,
            "scope": args.compile_scope,
            "backend": args.compile_backend,
            "init_channels": args.init_channels,
            "layers": args.layers,
            "resolution": args.resolution,
            "device": args.device,
            "steps": args.steps,
            "warmup": max(args.warmup, 3) if compiled else args.warmup,
            "threads": args.threads,
        }
        results.append(_run_fresh(setting))
        if not args.json:
            print(_row(results[-1]), flush=True)
    add_ratios(results)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print()
        print(table(results))
    return results


def _row(r: dict) -> str:
    head = f"{r['mode']:7s} {r['order']:6s} order  batch {r['batch_size']:4d}  {r['ops']:2d} ops" + (
        "  compiled" if r.get("compile") else ""
    )
    if "error" in r:
        return f"{head}  failed: {r['error']}"
    steps = ", ".join(f"{t:.2f}" for t in r["steps_s"])
    compiling = f", compiling {r['compile_s']:.1f} s" if "compile_s" in r else ""
    return f"{head}  median step {r['step_s']:7.3f} s  peak {r['peak_gb']:6.2f} GB  (steps: {steps}{compiling})"


def table(results: list[dict]) -> str:
    """A Markdown table of the results with their ratios (against `reference` only when it was run)."""
    ratios = ["time_vs_exact", "memory_vs_exact"]
    if any("time_vs_reference" in r for r in results):
        ratios += ["time_vs_reference", "memory_vs_reference"]
    compiled = any(r.get("compile") for r in results)
    if compiled:
        ratios += ["time_vs_eager"]
    heads = ["mode", "order", "batch", "ops", "step (s)", "peak (GB)"] + [k.replace("_vs_", " / ") for k in ratios]
    heads += ["memory / fewest ops", "estimated (GB)"] + (["compiling (s)"] if compiled else [])
    lines = ["| " + " | ".join(heads) + " |", "|---|---|" + "---:|" * (len(heads) - 2)]
    for r in results:
        head = (
            f"| {r['mode']}{' compiled' if r.get('compile') else ''} | {r['order']} | {r['batch_size']} | {r['ops']} | "
        )
        if "error" in r:
            lines.append(head + f"failed: {r['error']} |" + " |" * (len(heads) - 5))
            continue
        fewest = next((v for k, v in r.items() if k.startswith("memory_vs_") and k.endswith("_ops")), None)
        cells = [
            f"{r['step_s']:.3f}",
            f"{r['peak_gb']:.2f}",
            *(_ratio(r.get(k)) for k in ratios),
            _ratio(fewest),
            f"{r['estimate_gb']:.2f}" if "estimate_gb" in r else "",
        ]
        if compiled:
            cells.append(f"{r['compile_s']:.1f}" if "compile_s" in r else "")
        lines.append(head + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(x) -> str:
    return "" if x is None else f"{x:.2f}x"


def add_parser(what) -> None:
    """`dartsnas bench search-step`, under `what`: the subcommands of `dartsnas bench`."""
    s = what.add_parser("search-step", help="time and memory of one search step over a grid of settings")
    s.add_argument(
        "--mode",
        nargs="+",
        choices=[*RELAXATIONS, "reference"],
        default=list(RELAXATIONS),
        help="mixed-op modes; reference: the official code's plain formulation (conv/plain.py), the baseline",
    )
    s.add_argument("--batch", type=int, nargs="+", default=[64])
    s.add_argument("--order", nargs="+", choices=["first", "second"], default=["first"])
    s.add_argument(
        "--ops",
        type=int,
        nargs="+",
        choices=sorted(OP_SETS),
        default=[8],
        help="candidate-set sizes (spaces.OP_SETS; 8 is the paper's set)",
    )
    s.add_argument(
        "--compile",
        nargs="+",
        choices=["off", "on"],
        default=["off"],
        help="eager (off) and/or torch.compile'd (on: exact, partial and lean; CUDA graphs on CUDA) steps",
    )
    s.add_argument(
        "--compile-scope",
        choices=["cells", "network"],
        default="cells",
        help="what is compiled: each cell (the default) or the whole network",
    )
    s.add_argument("--compile-backend", default="inductor", help="torch.compile backend (aot_eager: trace only)")
    s.add_argument("--init-channels", type=int, default=16)
    s.add_argument("--layers", type=int, default=8)
    s.add_argument("--resolution", type=int, default=32)
    timing_arguments(s, "measured steps (median reported)")
    s.set_defaults(func=search_step)


def timing_arguments(p, steps_help: str) -> None:
    """The flags every timing bench shares (search-step, conv)."""
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=3, help=steps_help)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    p.add_argument("--json", action="store_true")


if __name__ == "__main__":  # the child process of one configuration
    print(json.dumps(measure(json.loads(sys.argv[1]))))
