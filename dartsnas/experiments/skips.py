"""`dartsnas bench skips`: how many skip connections do the normal cells a search finds in the DARTS space have?

Collapse in the DARTS space shows as parameter-free ops, skip connections above all, filling the derived
normal cell (Zela et al., ICLR 2020; Chen et al., P-DARTS, ICCV 2019). There is no table of true accuracies
for this space, so the count itself is the measure: K seeds of each setting search into
OUT/<setting>/seed-<k>-<stamp> (as `bench quality`, through experiments/runner.py: parallel, resumable, refusing
folders of other settings), and for each the normal cell's skip connections and parameter-free ops are
reported, with the cells that `dartsnas derive` wrote into the seed folders as settings of their own
(`<setting>+<name>`).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

PARAMETER_FREE = ("skip_connect", "max_pool_3x3", "avg_pool_3x3", "none")


def add_parser(what) -> None:
    """`dartsnas bench skips`, under `what`: the subcommands of `dartsnas bench`."""
    from .quality import runner_arguments

    p = what.add_parser(
        "skips", help="the skip connections in the DARTS-space normal cells K seeds of each setting find"
    )
    p.set_defaults(func=skips)
    runner_arguments(p, "cifar10-cpu", 2, "runs/skips")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def skips(args) -> dict:
    from ..core.config import ConfigError
    from .quality import _settings, run_searches
    from .runner import failed

    if args.seeds < 1 or args.jobs < 1:
        raise ConfigError("--seeds and --jobs must be at least 1")
    out = Path(args.out)
    runs, failures = run_searches(args, _settings(args, "darts"), out)
    report = summarise(out, runs, failures)
    (out / "skips.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1) if args.json else table(report))
    if failures:
        raise failed(failures)
    return report


def count(cell) -> dict:
    """The normal cell's skip connections and parameter-free ops."""
    ops = [op for op, _ in cell.normal]
    return {
        "normal": [list(e) for e in cell.normal],
        "skips": ops.count("skip_connect"),
        "parameter_free": sum(op in PARAMETER_FREE for op in ops),
    }


def summarise(out: Path, runs: list, failures: dict) -> dict:
    """Per setting (and per derivation found in its seed folders): each seed's normal cell and counts."""
    from ..core.genotype import load_genotype
    from ..core.plot import read_jsonl

    settings = {}
    for name, seed, run_dir in runs:
        entry = settings.setdefault(name, {"seeds": []})
        if str(run_dir) in failures or not (run_dir / "genotype.json").exists():
            entry["seeds"].append({"seed": seed, "run": str(run_dir), "error": failures.get(str(run_dir), "not run")})
            continue
        metrics = read_jsonl(run_dir / "metrics.jsonl")
        entry["seeds"].append(
            {
                "seed": seed,
                "run": str(run_dir),
                **count(load_genotype(run_dir)),
                "epochs": len(metrics),
                "seconds": sum(m.get("seconds", 0.0) for m in metrics),
            }
        )
        for path in sorted(run_dir.glob("derived/*.json")):
            record = json.loads(path.read_text())
            derived = settings.setdefault(f"{name}+{path.stem}", {"seeds": []})
            derived["seeds"].append(
                {
                    "seed": seed,
                    "run": str(run_dir),
                    **count(load_genotype(str(path))),
                    "epochs": len(metrics),
                    "seconds": entry["seeds"][-1]["seconds"] + record.get("seconds", 0.0),
                }
            )
    for entry in settings.values():
        done = [s for s in entry["seeds"] if "skips" in s]
        entry["mean_skips"] = statistics.fmean(s["skips"] for s in done) if done else None
        entry["mean_parameter_free"] = statistics.fmean(s["parameter_free"] for s in done) if done else None
    return {"out": str(out), "settings": settings}


def table(report: dict) -> str:
    lines = [
        f"Skip connections (and all parameter-free ops) in the normal cell each search found; run folders in "
        f"{report['out']}",
        "",
        "| setting | seed | skips | parameter-free | epochs | wall (min) | normal cell |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, s in report["settings"].items():
        for x in s["seeds"]:
            if "error" in x:
                lines.append(f"| {name} | {x['seed']} | | | | | failed: {x['error']} |")
                continue
            cell = ", ".join(f"{op}~{j}" for op, j in x["normal"])
            lines.append(
                f"| {name} | {x['seed']} | {x['skips']} | {x['parameter_free']} | {x['epochs']} | "
                f"{x['seconds'] / 60:.1f} | {cell} |"
            )
        if s["mean_skips"] is not None:
            lines.append(f"| {name} | mean | {s['mean_skips']:.1f} | {s['mean_parameter_free']:.1f} | | | |")
    return "\n".join(lines)
