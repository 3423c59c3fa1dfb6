"""`dartsnas bench quality`: how good are the cells a search finds? Measured on NAS-Bench-201 (Dong & Yang,
ICLR 2020), whose table holds the true test accuracy of every cell of its space, so a search's quality is a
lookup, not weeks of training.

For every setting (a search config: a shipped name or a YAML file; `--set` overrides apply to all) and every
seed, one search runs into OUT/<setting>/seed-<k>-<stamp>, a run folder as always. Reported per search: the
cell it found, its accuracy in the table, the epoch after which the derived cell no longer changed, the wall time;
per setting: the mean and standard deviation over seeds. Beside them, what the table itself expects with no
search at all: the best cell, the mean and median over all 15,625 cells, and the expected best of k cells
drawn at random (random search that trains k cells instead).

Cells derived again after a search by `dartsnas derive` (RUN/derived/<name>.json; DARTS-PT, a skip cap, ...)
are reported as settings of their own, `<setting>+<name>`, beside the plain ones.

Resumable: a search that finished (its genotype.json) is read, not rerun; one that stopped resumes from its
checkpoint. Searches run as `dartsnas search ... --name seed-<k> --out OUT/<setting> --resume auto` processes
through experiments/runner.py: `--jobs` at once, `--threads` intra-op threads each, pinned to `--devices`.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path


def runner_arguments(p, examples: str, seeds: int, out: str) -> None:
    """The flags of every bench that runs K seeds of search settings through experiments/runner.py."""
    from .runner import job_arguments

    p.add_argument(
        "--config",
        nargs="+",
        required=True,
        metavar="CONFIG",
        help=f"search settings: shipped config names ({examples}, ...) or YAML files",
    )
    p.add_argument("--seeds", type=int, default=seeds, help=f"seeds per setting: 0 .. K-1 (default {seeds})")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key in every setting")
    p.add_argument("--out", default=out, help=f"folder of the run folders (default: {out})")
    job_arguments(p, "searches")


def add_parser(what) -> None:
    """`dartsnas bench quality`, under `what`: the subcommands of `dartsnas bench`."""
    p = what.add_parser("quality", help="the NAS-Bench-201 accuracy of the cells K seeds of each search setting find")
    p.set_defaults(func=quality)
    runner_arguments(p, "nb201-cpu-darts-v1", 3, "runs/quality")
    p.add_argument(
        "--random-k",
        type=int,
        nargs="+",
        default=[1, 3, 10, 100],
        help="random search's expected best of k cells, for these k (default 1 3 10 100)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def quality(args) -> dict:
    from ..core.config import ConfigError
    from .runner import failed

    if args.seeds < 1 or args.jobs < 1 or any(k < 1 for k in args.random_k):
        raise ConfigError("--seeds, --jobs and --random-k must be at least 1")
    out = Path(args.out)
    runs, failures = run_searches(args, _settings(args), out)
    report = summarise(out, runs, failures, args.random_k)
    (out / "quality.json").write_text(json.dumps(report, indent=1) + "\n")
    from ..core.plot import PlotError

    try:
        report["picture"] = str(plot_quality(report, out / "quality.png"))
    except PlotError as err:  # no matplotlib: the tables still come
        report["picture"] = f"skipped ({err})"
    print(json.dumps(report, indent=1) if args.json else tables(report))
    if failures:
        raise failed(failures)
    return report


def run_searches(args, settings: dict[str, list], out: Path) -> tuple[list, dict]:
    """Run (or resume, or read) every setting's seeds through the runner; -> the (setting, seed, run folder)
    of each, and the failed ones' errors by run folder (a search that made none: OUT/<setting>/seed-<k>)."""
    from .runner import check_device, check_numbers, newest, parse_devices, run_jobs, search_job

    check_numbers(args)
    devices = parse_devices(args.devices)
    specs = {Path(spec).stem: spec for spec in args.config}
    jobs = {}  # (setting, seed) -> its job
    for name, configs in settings.items():
        for seed, config in enumerate(configs):
            check_device(config.device, devices)
            jobs[name, seed] = search_job(
                specs[name], _overrides(args, seed), out / name, f"seed-{seed}", config, f"{name} seed-{seed}"
            )
    make_out(out)
    errors = run_jobs(list(jobs.values()), args.jobs, args.threads, devices, args.backend, args.cluster_set)
    runs, failures = [], {}
    for (name, seed), job in jobs.items():
        run_dir = newest(job) or job.out / job.name
        runs.append((name, seed, run_dir))
        if job.label in errors:
            failures[str(run_dir)] = errors[job.label]
    return runs, failures


def _overrides(args, seed: int) -> list[str]:
    """The --set items of one seed's search (progress off, pictures off: the report draws its own)."""
    return list(args.set or []) + [f"seed={seed}", "progress=false", "plot=false"]


def make_out(out: Path) -> None:
    """Make the --out folder once every setting is checked: a file or a read-only place there is one clear
    error before any search starts, not a traceback from the first one."""
    from ..core.config import ConfigError

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"--out {out}: cannot make that folder ({err.strerror or err}); give --out a folder you can write to"
        ) from None


def _settings(args, space: str = "nas-bench-201") -> dict[str, list]:
    """setting name -> one validated config per seed (progress off, pictures off: the report draws its own),
    each searching `space`."""
    from ..conv.config import load_config
    from ..core.config import ConfigError

    settings = {}
    for spec in args.config:
        name = Path(spec).stem
        if name in settings:
            raise ConfigError(f"--config names the setting {name!r} twice; give each setting its own file name")
        configs = [load_config(spec, _overrides(args, seed)) for seed in range(args.seeds)]
        if configs[0].space != space and space == "darts":
            raise ConfigError(
                f"{spec}: bench skips counts the skip connections of DARTS-space normal cells; this "
                f"config searches the {configs[0].space} space (bench quality measures those)"
            )
        if configs[0].space != space and space == "nas-bench-201":
            raise ConfigError(
                f"{spec}: bench quality measures searches in the NAS-Bench-201 space, whose cells have "
                f"known accuracies; this config searches the {configs[0].space} space "
                "(use an nb201-* config, or --set space=nas-bench-201 with its ops)"
            )
        settings[name] = configs
    return settings


def summarise(out: Path, runs: list, failures: dict, random_k: list[int]) -> dict:
    """The report: per setting its seeds' cells, accuracies and times; the table's own expectations."""
    from ..conv.nb201.genotype import load_nb201_genotype
    from ..conv.nb201.table import load_table
    from ..core.plot import read_jsonl

    table = load_table()
    settings, dataset = {}, None
    for name, seed, run_dir in runs:
        entry = settings.setdefault(name, {"seeds": []})
        if str(run_dir) in failures or not (run_dir / "genotype.json").exists():
            entry["seeds"].append({"seed": seed, "run": str(run_dir), "error": failures.get(str(run_dir), "not run")})
            continue
        config = _read_yaml(run_dir / "config.yaml")
        dataset = dataset or config["benchmark_dataset"]
        cell = load_nb201_genotype(run_dir)
        metrics = read_jsonl(run_dir / "metrics.jsonl")
        history = [str(load_nb201_genotype(json.dumps(r["genotype"]))) for r in read_jsonl(run_dir / "genotypes.jsonl")]
        entry["seeds"].append(
            {
                "seed": seed,
                "run": str(run_dir),
                "cell": str(cell),
                "accuracy": table.accuracy(cell, config["benchmark_dataset"]),
                "last_change_epoch": last_change(history),
                "epochs": len(metrics),
                "seconds": sum(m.get("seconds", 0.0) for m in metrics),
                "benchmark_acc_by_epoch": [100 * m["benchmark_acc"] for m in metrics if "benchmark_acc" in m],
            }
        )
    settings = _with_derived(settings, table)
    dataset = dataset or "cifar10"
    for entry in settings.values():
        accs = [s["accuracy"] for s in entry["seeds"] if "accuracy" in s]
        entry["mean"] = statistics.fmean(accs) if accs else None
        entry["std"] = statistics.stdev(accs) if len(accs) > 1 else 0.0 if accs else None
        times = [s["seconds"] for s in entry["seeds"] if "seconds" in s]
        entry["mean_seconds"] = statistics.fmean(times) if times else None
    yardsticks = [table.expectations(dataset, k) for k in random_k]
    expect = {key: yardsticks[0][key] for key in ("dataset", "best_cell", "best", "mean", "median")}
    expect["random_best_of_k"] = {str(y["k"]): y["expected_best_of_k"] for y in yardsticks}
    return {"out": str(out), "settings": settings, "table": expect}


def _with_derived(settings: dict, table) -> dict:
    """The settings, each followed by the cells derived again after its searches (`dartsnas derive`,
    RUN/derived/<name>.json) as a setting `<setting>+<name>`: its time is the search's plus the derivation's."""
    from ..conv.nb201.genotype import load_nb201_genotype

    out = {}
    for name, entry in settings.items():
        out[name] = entry
        found = [s for s in entry["seeds"] if "cell" in s]
        derived = sorted({p.stem for s in found for p in Path(s["run"]).glob("derived/*.json")})
        for label in derived:
            seeds = []
            for s in entry["seeds"]:
                path = Path(s["run"]) / "derived" / f"{label}.json"
                if "cell" not in s:  # the search itself failed
                    seeds.append({"seed": s["seed"], "run": s["run"], "error": s["error"]})
                    continue
                if not path.exists():  # a search that has not been derived again (yet): not a failure
                    seeds.append({"seed": s["seed"], "run": s["run"], "pending": "not derived yet"})
                    continue
                record = json.loads(path.read_text())
                cell = load_nb201_genotype(json.dumps(record["genotype"]))
                dataset = _read_yaml(Path(s["run"]) / "config.yaml")["benchmark_dataset"]
                seeds.append(
                    {
                        "seed": s["seed"],
                        "run": s["run"],
                        "cell": str(cell),
                        "accuracy": table.accuracy(cell, dataset),
                        "last_change_epoch": None,
                        "epochs": s["epochs"],
                        "seconds": s["seconds"] + record.get("seconds", 0.0),
                        "benchmark_acc_by_epoch": [],
                    }
                )
            out[f"{name}+{label}"] = {"seeds": seeds}
    return out


def _read_yaml(path: Path) -> dict:
    from ..core.config import read_saved

    return read_saved(path)


def last_change(history: list[str]) -> int:
    """The epoch (1-based) after which the derived cell stayed the same; 1 if it never changed."""
    last = 1
    for epoch in range(2, len(history) + 1):
        if history[epoch - 1] != history[epoch - 2]:
            last = epoch
    return last


def tables(report: dict) -> str:
    t = report["table"]
    lines = [
        f"NAS-Bench-201 {t['dataset']} test accuracy (%) of the cell each search found; run folders in {report['out']}",
        "",
        "| setting | seeds | mean | std | mean wall (min) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in report["settings"].items():
        done = [x for x in s["seeds"] if "accuracy" in x]
        lines.append(
            f"| {name} | {len(done)}/{len(s['seeds'])} | {_num(s['mean'])} | {_num(s['std'])} | "
            f"{_num(s['mean_seconds'] / 60 if s['mean_seconds'] is not None else None, 1)} |"
        )
    lines += [
        "",
        "| setting | seed | cell | accuracy | last change (epoch) | epochs | wall (min) |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for name, s in report["settings"].items():
        for x in s["seeds"]:
            if "error" in x or "pending" in x:
                reason = f"failed: {x['error']}" if "error" in x else f"{x['pending']}: `dartsnas derive {x['run']}`"
                lines.append(f"| {name} | {x['seed']} | {reason} | | | | |")
            else:
                lines.append(
                    f"| {name} | {x['seed']} | `{x['cell']}` | {x['accuracy']:.2f} | "
                    f"{x['last_change_epoch'] or ''} | {x['epochs']} | {x['seconds'] / 60:.1f} |"
                )
    randoms = ", ".join(f"best of {k}: {v:.2f}" for k, v in t["random_best_of_k"].items())
    lines += [
        "",
        f"The table itself: best {t['best']:.2f} (`{t['best_cell']}`), mean {t['mean']:.2f}, median "
        f"{t['median']:.2f}; random cells, expected {randoms}.",
    ]
    if report.get("picture"):
        lines.append(f"Per-epoch accuracy of the derived cell: {report['picture']}")
    return "\n".join(lines)


def _num(x, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def plot_quality(report: dict, path: Path) -> Path:
    """One panel per setting: each seed's derived cell's table accuracy after every epoch, with the table's
    best and random search's expected best of k drawn across."""
    from ..core.plot import figure, integer_ticks, save_figure

    # Cells derived after the search have no per-epoch curve: no panel of their own.
    drawn = {n: s for n, s in report["settings"].items() if any(x.get("benchmark_acc_by_epoch") for x in s["seeds"])}
    settings = drawn or report["settings"]
    t = report["table"]
    fig = figure(4.6 * len(settings), 3.6)
    axes = fig.subplots(1, len(settings), squeeze=False, sharey=True)[0]
    for ax, (name, s) in zip(axes, settings.items()):
        for x in s["seeds"]:
            curve = x.get("benchmark_acc_by_epoch") or []
            if curve:
                ax.plot(
                    range(1, len(curve) + 1),
                    curve,
                    marker="o" if len(curve) < 12 else None,
                    markersize=3,
                    label=f"seed {x['seed']}",
                )
        ax.axhline(t["best"], color="black", linestyle="--", linewidth=1, label=f"best cell {t['best']:.2f}")
        for (k, v), style in zip(t["random_best_of_k"].items(), (":", "-.")):
            ax.axhline(v, color="grey", linestyle=style, linewidth=1, label=f"random, best of {k}: {v:.2f}")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(integer_ticks())
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel(f"NAS-Bench-201 {t['dataset']} test accuracy (%)")
    return save_figure(fig, path)
