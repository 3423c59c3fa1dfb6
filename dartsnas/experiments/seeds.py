"""`dartsnas seeds`: the DARTS paper's way of choosing a cell (Liu et al., ICLR 2019, Sec. 3.2 and 3.3).

A search's result depends on its seed, so the paper searches K times with different seeds, trains each
found cell for a short while, and keeps the one that does best on a validation split; the test split is
only reported, never used to choose. Here:

1. K searches, `dartsnas search --config CONFIG --set seed=<i> ... --name seed-<i> --out OUT/search --resume auto`;
2. each found cell trained briefly, `dartsnas train OUT/search/seed-<i>-*/genotype.json --config TRAIN_CONFIG
   --set epochs=E ... --name seed-<i> --out OUT/train --resume auto`, with a held-out validation split
   (the training config's, or 10 %);
3. the cell of the best validation accuracy (that of the training's best epoch, results.json `best`) is
   chosen: OUT/best_genotype.json; every seed's numbers go to OUT/seeds.json and a table, their
   accuracies and found normal cells side by side to OUT/seeds.png.

Every run goes through experiments/runner.py: `--jobs` at once, pinned to `--devices`, resumable (the same command
again reads the finished runs, resumes the stopped ones and runs the rest), each one's output in OUT/search/
seed-<i>.log or OUT/train/seed-<i>.log.
"""

from __future__ import annotations

import json
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

# The short training of each found cell, by the space searched: a DARTS network, or NAS-Bench-201's.
TRAIN_CONFIGS = {"darts": "quick", "nas-bench-201": "nb201-quick"}
VALID_PORTION = 0.1  # the validation split when the training config holds none out


def add_parser(sub) -> None:
    from .runner import job_arguments

    p = sub.add_parser(
        "seeds",
        help="search K seeds, train each found cell briefly, keep the best on validation (the DARTS paper's protocol)",
    )
    p.add_argument(
        "--config",
        required=True,
        help="the search config: a shipped name (quick, cifar10, nb201-quick, ...) or a YAML file",
    )
    p.add_argument(
        "--seeds", type=int, default=4, help="searches, of seeds --seed-start .. +K-1 (default 4, as the paper)"
    )
    p.add_argument("--seed-start", type=int, default=0, help="the first seed (default 0)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key of the search config")
    p.add_argument(
        "--train-config",
        help="the training config of the found cells (default: quick, or nb201-quick for NAS-Bench-201 searches)",
    )
    p.add_argument("--train-epochs", type=int, help="epochs of each training (default: the training config's)")
    p.add_argument("--train-set", action="append", metavar="KEY=VALUE", help="override a key of the training config")
    p.add_argument(
        "--out",
        default="runs/seeds",
        help="folder of the search and train run folders and the report (default: runs/seeds)",
    )
    job_arguments(p)
    p.set_defaults(func=seeds)


def seeds(args) -> dict:
    from .quality import make_out
    from .runner import check_device, check_kept, check_numbers, failed, finished, parse_devices, run_jobs

    check_numbers(args, "seeds", "train_epochs")
    if args.seed_start < 0:
        raise _error(f"--seed-start {args.seed_start} is negative; seeds start at 0 or above")
    out = Path(args.out)
    searches = search_configs(args)
    space = next(iter(searches.values())).space
    train_spec, train_sets, train_config = training(args, space)
    devices = parse_devices(args.devices)
    for config in [*searches.values(), train_config]:
        check_device(config.device, devices)
    search = {seed: search_job(args, seed, config, out) for seed, config in searches.items()}
    for seed in search:  # a kept training of other settings (--train-epochs changed) ends it before any search
        check_kept(replace(train_job(seed, Path(), train_spec, train_sets, train_config, out), genotype=None))
    make_out(out)
    run = (args.jobs, args.threads, devices, args.backend, args.cluster_set)
    errors = run_jobs(list(search.values()), *run)
    train = {
        seed: train_job(seed, finished(job) / "genotype.json", train_spec, train_sets, train_config, out)
        for seed, job in search.items()
        if finished(job)
    }
    errors |= run_jobs(list(train.values()), *run)
    report = summarise(out, search, train, errors)
    report |= {"config": args.config, "train_config": train_spec}
    (out / "seeds.json").write_text(json.dumps(report, indent=1) + "\n")
    picture = draw(report, out / "seeds.png")
    print(table(report, picture))
    if errors:
        raise failed(errors)
    return report


def _error(message: str):
    from ..core.config import ConfigError

    return ConfigError(message)


# ----------------------------------------------------------------------------------------------
# the jobs


def search_configs(args) -> dict:
    """seed -> the validated config of its search (a convolutional one: DARTS or NAS-Bench-201 space)."""
    from ..conv.config import load_config

    return {
        seed: load_config(args.config, list(args.set or []) + [f"seed={seed}"])
        for seed in range(args.seed_start, args.seed_start + args.seeds)
    }


def training(args, space: str) -> tuple[str, list[str], object]:
    """The training config of the found cells: its name, its --set items, the config they make. It trains
    the network of the searched space, and holds out a validation split: the choice is made on it."""
    from ..conv.config import load_train_config

    spec = args.train_config or TRAIN_CONFIGS[space]
    sets = list(args.train_set or []) + ([f"epochs={args.train_epochs}"] if args.train_epochs else [])
    config = load_train_config(spec, sets)
    if (config.net == "nas-bench-201") != (space == "nas-bench-201"):
        wanted = "nb201-quick or nb201" if space == "nas-bench-201" else "quick or cifar10"
        raise _error(
            f"--train-config {spec} trains the {config.net} network, but the searches find "
            f"{space} cells; give a training config of that space ({wanted})"
        )
    if config.valid_portion == 0:
        if any(item.partition("=")[0].strip() == "valid_portion" for item in args.train_set or []):
            raise _error(
                "--train-set valid_portion=0 leaves no validation split, and seeds chooses the cell by its "
                f"validation accuracy; give a share above 0 (e.g. valid_portion={VALID_PORTION})"
            )
        sets.append(f"valid_portion={VALID_PORTION}")
        config = load_train_config(spec, sets)
    return spec, sets, config


def search_job(args, seed: int, config, out: Path):
    from .runner import search_job as job

    return job(
        args.config,
        list(args.set or []) + [f"seed={seed}"],
        out / "search",
        f"seed-{seed}",
        config,
        f"search seed-{seed}",
    )


def train_job(seed: int, genotype: Path, spec: str, sets: list[str], config, out: Path):
    from .runner import train_job as job

    return job(str(genotype), spec, sets, out / "train", f"seed-{seed}", config, f"train seed-{seed}")


# ----------------------------------------------------------------------------------------------
# the report


def summarise(out: Path, search: dict, train: dict, errors: dict[str, str]) -> dict:
    """Per seed its runs, cell, accuracies and times; the chosen seed (best validation accuracy); the mean
    and standard deviation over seeds. Accuracies are fractions, as the runs write them."""
    from .runner import finished, newest

    entries = []
    for seed, job in search.items():
        search_dir = finished(job)
        train_dir = finished(train[seed]) if seed in train else None
        entry = {
            "seed": seed,
            "search_run": _path(newest(job)),
            "train_run": _path(newest(train[seed])) if seed in train else None,
        }
        if search_dir is None or train_dir is None:
            label = job.label if search_dir is None else train[seed].label
            entry["error"] = f"{label}: {errors.get(label, 'not run')}"
        else:
            entry |= seed_numbers(search_dir, train_dir)
        entries.append(entry)
    chosen = select(entries)
    best = out / "best_genotype.json"
    if chosen is not None:
        shutil.copyfile(Path(next(e for e in entries if e["seed"] == chosen)["search_run"]) / "genotype.json", best)
    return {
        "out": str(out),
        "seeds": entries,
        "chosen_seed": chosen,
        "best_genotype": str(best) if chosen is not None else None,
        **spread(entries, "valid_acc"),
        **spread(entries, "test_acc"),
    }


def _path(run_dir: Path | None) -> str | None:
    return None if run_dir is None else str(run_dir)


def seed_numbers(search_dir: Path, train_dir: Path) -> dict:
    """One seed's cell, its accuracies after the short training (the best validation epoch's weights, and
    the last epoch's on test), its true NAS-Bench-201 accuracy where it has one, the wall times."""
    from ..core.config import read_saved
    from ..core.plot import read_jsonl

    results = json.loads((train_dir / "results.json").read_text())
    best = results.get("best") or {}
    numbers = {
        "genotype": str(cell(search_dir)),
        "valid_acc": best.get("valid_acc"),
        "test_acc": best.get("test_acc"),
        "final_test_acc": results["final"]["test_acc"],
        "search_seconds": sum(m.get("seconds", 0.0) for m in read_jsonl(search_dir / "metrics.jsonl")),
        "train_seconds": sum(m.get("seconds", 0.0) for m in read_jsonl(train_dir / "metrics.jsonl")),
    }
    config = read_saved(search_dir / "config.yaml")
    if config.get("space") == "nas-bench-201":  # the benchmark's 200-epoch test accuracy, in %
        from ..conv.nb201.table import load_table

        numbers["nas_bench_201_test_acc"] = load_table().accuracy(cell(search_dir), config["benchmark_dataset"])
    return numbers


def cell(run_dir: Path):
    from ..conv.nb201.genotype import load_nb201_genotype, names_nb201
    from ..core.genotype import load_genotype

    path = str(run_dir / "genotype.json")
    return load_nb201_genotype(path) if names_nb201(path) else load_genotype(path)


def select(entries: list[dict]) -> int | None:
    """The seed of the best validation accuracy (the lowest seed among equals); never by test accuracy,
    which would make the reported test accuracy a choice made on the test set."""
    done = [e for e in entries if e.get("valid_acc") is not None]
    return max(done, key=lambda e: (e["valid_acc"], -e["seed"]))["seed"] if done else None


def spread(entries: list[dict], key: str) -> dict:
    """The mean and standard deviation of `key` over the seeds that have it (std 0 for one, None for none)."""
    values = [e[key] for e in entries if e.get(key) is not None]
    return {
        f"{key}_mean": statistics.fmean(values) if values else None,
        f"{key}_std": statistics.stdev(values) if len(values) > 1 else 0.0 if values else None,
    }


def table(report: dict, picture: str) -> str:
    nb201 = any("nas_bench_201_test_acc" in e for e in report["seeds"])
    heads = [
        "seed",
        "valid acc (%)",
        "test acc (%)",
        *["NAS-Bench-201 (%)"] * nb201,
        "search (min)",
        "train (min)",
        "cell",
    ]
    lines = [
        f"Seeds searched, their cells trained briefly, chosen by validation accuracy; runs in {report['out']}",
        "",
        _row(heads),
        "|" + "---:|" * (len(heads) - 1) + "---|",
    ]
    for e in report["seeds"]:
        seed = f"**{e['seed']}** (chosen)" if e["seed"] == report["chosen_seed"] else str(e["seed"])
        if "error" in e:
            lines.append(_row([seed, *[""] * (len(heads) - 2), f"failed: {e['error']}"]))
            continue
        lines.append(
            _row(
                [
                    seed,
                    _percent(e["valid_acc"]),
                    _percent(e["test_acc"]),
                    *[f"{e.get('nas_bench_201_test_acc', 0.0):.2f}"] * nb201,
                    f"{e['search_seconds'] / 60:.1f}",
                    f"{e['train_seconds'] / 60:.1f}",
                    f"`{e['genotype']}`",
                ]
            )
        )
    if report["chosen_seed"] is None:
        return "\n".join(lines + ["", "No seed was trained to the end: nothing to choose."])
    full = "nb201" if nb201 else "cifar10"
    lines += [
        "",
        f"validation {_percent(report['valid_acc_mean'])} ± {_percent(report['valid_acc_std'])} %, test "
        f"{_percent(report['test_acc_mean'])} ± {_percent(report['test_acc_std'])} % (mean ± std over "
        f"{sum('error' not in e for e in report['seeds'])} seeds)",
        f"chosen: seed {report['chosen_seed']}, the best validation accuracy; its cell is "
        f"{report['best_genotype']} (train it: dartsnas train {report['best_genotype']} --config {full})",
        f"picture: {picture}",
    ]
    return "\n".join(lines)


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _percent(x) -> str:
    return "" if x is None else f"{100 * x:.2f}"


# ----------------------------------------------------------------------------------------------
# the picture


def draw(report: dict, path: Path) -> str:
    """OUT/seeds.png, or why it was skipped (no matplotlib: how to install it)."""
    from ..core.plot import PlotError

    try:
        return str(plot_seeds(report, path))
    except PlotError as err:
        return f"skipped ({err})"


def cell_picture(run: str | None) -> Path | None:
    """A search run folder's drawn normal cell (graphviz, at the end of the search), if it has one."""
    if run is None:
        return None
    pictures = [Path(run) / "plots" / name for name in ("cell_normal.png", "cell.png")]  # DARTS, NAS-Bench-201
    return next((p for p in pictures if p.exists()), None)


def plot_seeds(report: dict, path: Path) -> Path:
    """Above: each seed's validation and test accuracy, the chosen seed framed. Below, where the searches
    drew them: the found normal cells side by side, in the same order."""
    from ..core.plot import PlotError, figure, require, save_figure

    done = [e for e in report["seeds"] if e.get("valid_acc") is not None]
    if not done:
        raise PlotError("no seed was trained to the end: nothing to draw")
    cells = [(e["seed"], cell_picture(e["search_run"])) for e in done]
    cells = [(seed, png) for seed, png in cells if png is not None]
    fig = figure(max(6.0, 3.0 * len(cells)), 3.6 + 2.4 * bool(cells))
    grid = fig.add_gridspec(2 if cells else 1, max(1, len(cells)), height_ratios=[3, 2] if cells else None)
    ax = fig.add_subplot(grid[0, :])
    x, chosen = range(len(done)), report["chosen_seed"]
    for shift, key, label in ((-0.2, "valid_acc", "validation"), (0.2, "test_acc", "test")):
        bars = ax.bar([i + shift for i in x], [100 * e[key] for e in done], 0.4, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)  # the axis starts near the lowest bar: the numbers say it
    ax.set_xticks(list(x), [f"seed {e['seed']}" + (" (chosen)" if e["seed"] == chosen else "") for e in done])
    for i, e in enumerate(done):
        if e["seed"] == chosen:
            ax.bar(i, 100 * max(e["valid_acc"], e["test_acc"]), 0.84, fill=False, edgecolor="black", linewidth=1.5)
    values = [100 * e[k] for e in done for k in ("valid_acc", "test_acc")]
    ax.set_ylim(max(0.0, min(values) - 5), min(100.0, max(values) + 3))
    ax.set_ylabel("accuracy (%)")
    ax.set_title("each seed's cell after a short training; chosen by validation accuracy", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    image = require("matplotlib.image")
    for k, (seed, png) in enumerate(cells):
        cax = fig.add_subplot(grid[1, k])
        cax.set_axis_off()
        cax.set_title(f"seed {seed}" + (" (chosen)" if seed == chosen else ""), fontsize=9)
        try:
            cax.imshow(image.imread(png))
        except (OSError, ValueError, SyntaxError):  # a half-written picture: the others still come
            cax.text(0.5, 0.5, f"unreadable: {png.name}", ha="center", va="center", fontsize=8)
    return save_figure(fig, path)
