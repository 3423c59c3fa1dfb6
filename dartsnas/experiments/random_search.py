"""`dartsnas bench random`: random search at the cost of a search, the baseline a search must beat.

The table's expected best of k cells (`bench quality`) is random search with a perfect judge: it ranks the k
cells by their fully trained accuracy, which costs far more than any search. Random search at equal cost has
to judge cells cheaply, as Li & Talwalkar's random-search baseline (UAI 2019) and NAS-Bench-201's (Dong & Yang,
ICLR 2020, Sec. 5) do: draw cells uniformly from the space, train each briefly, keep the one with the best
validation accuracy, and report that cell's true accuracy from the table.

Here, for a search config of the NAS-Bench-201 space (its data, its split and its weight optimiser):

- each cell trains from scratch in the benchmark's network at the supernet's size (C = `init_channels`,
  N = `stage_cells`) for `--proxy-epochs` epochs (default: the search's epochs) on the search's weight share
  of the images, with the search's SGD settings, and is judged by its accuracy on the other share after its
  last epoch; the test images are never looked at (`dartsnas train` evaluates them once at the end, which
  is not counted as cost, nor used);
- the cost is counted in FLOPs, as torch's FlopCounterMode counts them (convolutions and matrix products,
  forward and backward): the search's every weight and architecture step and its end-of-epoch evaluation,
  against each cell's training steps and end-of-epoch evaluations. Cells are drawn (without replacement, in an
  order fixed by the seed) while their summed cost fits the search's: equal cost, whatever the host's speed.
  `--cells K` draws K cells instead.

Each cell is a `dartsnas train` run, OUT/<setting>/seed-<k>/cell-<i>-<stamp>, through experiments/runner.py: `--jobs`
at once, resumable (a finished cell is read, a stopped one continues). OUT/random.json keeps the report.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

# The train config the proxy trainings start from (every field that matters is set from the search config).
BASE_TRAIN_CONFIG = "nb201-quick"


def add_parser(what) -> None:
    """`dartsnas bench random`, under `what`: the subcommands of `dartsnas bench`."""
    from .quality import runner_arguments

    p = what.add_parser(
        "random",
        help="random search at the cost of a search: K seeds of randomly drawn NAS-Bench-201 "
        "cells, each trained briefly, the best by validation accuracy",
    )
    p.set_defaults(func=random_search)
    runner_arguments(p, "nb201-cpu-darts-v1", 3, "runs/random")
    p.add_argument(
        "--proxy-epochs",
        type=int,
        default=None,
        help="epochs each drawn cell trains (default: the search config's epochs)",
    )
    p.add_argument(
        "--cells",
        type=int,
        default=None,
        help="draw this many cells per seed instead of as many as the search's FLOPs pay for",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def random_search(args) -> dict:
    from .quality import _settings, make_out
    from .runner import check_device, check_numbers, failed, newest, parse_devices, run_jobs

    check_numbers(args, "seeds", "proxy_epochs", "cells")
    out, devices = Path(args.out), parse_devices(args.devices)
    settings = _settings(args)
    make_out(out)
    plans, jobs = {}, []
    for name, configs in settings.items():
        budget = search_flops(configs[0])
        for seed, config in enumerate(configs):
            check_device(config.device, devices)
            epochs = args.proxy_epochs or config.epochs
            plan = draw_cells(config, seed, budget, epochs, args.cells)
            folder = out / name / f"seed-{seed}"
            sets = proxy_sets(config, epochs)
            train = proxy_config(sets)
            plan.jobs = [
                cell_job(cell, i, folder, sets, train, f"{name} seed-{seed} cell-{i}")
                for i, cell in enumerate(plan.cells)
            ]
            plans[name, seed] = plan
            jobs += plan.jobs
    errors = run_jobs(jobs, args.jobs, args.threads, devices, args.backend, args.cluster_set)
    report = summarise(out, plans, errors, newest)
    (out / "random.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1) if args.json else tables(report))
    if errors:
        raise failed({str(newest(j) or j.out / j.name): errors[j.label] for j in jobs if j.label in errors})
    return report


# ----------------------------------------------------------------------------------------------
# what a search costs, what a cell costs


def search_flops(config) -> int:
    """FLOPs of the whole search `config` describes: every epoch's weight steps, architecture steps (from
    `arch_start_epoch` on) and evaluation of the architecture share, as FlopCounterMode counts one batch of
    each, scaled to the share's images (the counted ops are linear in the batch)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..data.batches import batches
    from ..conv.search import Searcher, prepare_data

    config = _on_cpu(config)
    data = prepare_data(config, torch.device("cpu"))
    searcher = Searcher(config, data, torch.device("cpu"))
    x, y = next(batches(data.weight_half, config.batch_size, None, data.eval_augment, shuffle=False))
    xa, ya = next(batches(data.arch_half, config.batch_size, None, data.eval_augment, shuffle=False))
    x, xa = searcher.prepare_inputs(x), searcher.prepare_inputs(xa)
    per_image = {}
    for what, step in (
        ("arch", lambda: searcher.architect.step(x, y, xa, ya, searcher.optimizer)),
        ("weight", lambda: searcher.weight_step(x, y)),
        ("eval", lambda: _evaluate(searcher.model, xa)),
    ):
        with FlopCounterMode(display=False) as counter:
            step()
        per_image[what] = counter.get_total_flops() / len(y)
    # The epoch zips the two shares' batches: it ends with the shorter one.
    images = min(len(data.weight_half), len(data.arch_half))
    arch_epochs = max(config.epochs - config.arch_start_epoch, 0)
    return round(
        images * (config.epochs * per_image["weight"] + arch_epochs * per_image["arch"])
        + config.epochs * len(data.arch_half) * per_image["eval"]
    )


def cell_flops(
    cell,
    train_images: int,
    valid_images: int,
    epochs: int,
    shape: tuple,
    num_classes: int,
    init_channels: int,
    layers: int,
) -> int:
    """FLOPs of training `cell` for `epochs` epochs (forward and backward of every training image) with an
    evaluation of the validation images after each, in the benchmark's network."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..conv.network import build_network

    with torch.device("meta"):  # shapes only: no memory, no arithmetic, the same count
        model = build_network(
            "nas-bench-201",
            cell,
            num_classes=num_classes,
            in_channels=shape[0],
            init_channels=init_channels,
            layers=layers,
        )
        x = torch.zeros(2, *shape)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    train = counter.get_total_flops() / len(x)
    with FlopCounterMode(display=False) as counter:
        _evaluate(model, x)
    return round(epochs * (train_images * train + valid_images * counter.get_total_flops() / len(x)))


def _evaluate(model, x) -> None:
    import torch

    with torch.no_grad():
        model.eval()
        model(x)
        model.train()


def _on_cpu(config):
    """The config counted on the CPU (FLOPs do not depend on the device), without compilation."""
    import dataclasses

    return dataclasses.replace(config, device="cpu", compile=False)


# ----------------------------------------------------------------------------------------------
# the cells a seed draws, and their trainings


class Plan:
    """One seed's random search: the cells it draws, their costs, the budget they fit in."""

    def __init__(self, cells: list, costs: list[int], budget: int, proxy_epochs: int, dataset: str):
        self.cells, self.costs, self.budget, self.proxy_epochs = cells, costs, budget, proxy_epochs
        self.dataset = dataset  # the table column the cells are looked up in (the config's benchmark_dataset)
        self.jobs = []


def draw_cells(config, seed: int, budget: int, epochs: int, count: int | None = None) -> Plan:
    """Cells drawn uniformly without replacement in the seed's order: `count` of them, or while their summed
    training FLOPs fit `budget` (at least one)."""
    import torch

    from ..conv.nb201.genotype import SPACE_SIZE, CellGenotype

    shape, classes, train_images, valid_images = _proxy_shapes(config)
    order = torch.randperm(SPACE_SIZE, generator=torch.Generator().manual_seed(seed)).tolist()
    cells, costs = [], []
    for index in order:
        cell = CellGenotype.from_index(index)
        cost = cell_flops(
            cell, train_images, valid_images, epochs, shape, classes, config.init_channels, 3 * config.stage_cells
        )
        if count is None and cells and sum(costs) + cost > budget:
            break
        cells.append(cell)
        costs.append(cost)
        if count is not None and len(cells) == count:
            break
    return Plan(cells, costs, budget, epochs, config.benchmark_dataset)


def _proxy_shapes(config) -> tuple[tuple, int, int, int]:
    """(image shape, classes, training images, validation images) of the proxy trainings: the search's images,
    split as `dartsnas train` splits them at valid_portion = 1 - train_portion."""
    from ..data.images import load_images

    data = load_images(config.dataset, "train", config.data_dir, config.download, **config.data_options)
    n = min(config.subset, len(data.labels)) if config.subset is not None else len(data.labels)
    held = int(n * (1 - config.train_portion))
    return (data.in_channels, *data.size), data.num_classes, n - held, held


def proxy_sets(config, epochs: int) -> list[str]:
    """The `--set` items that make BASE_TRAIN_CONFIG train a cell as the search trains its weights: the same
    images, share, size of network and SGD settings, for `epochs` epochs."""
    fields = {
        "dataset": config.dataset,
        "data_dir": config.data_dir,
        "download": config.download,
        "data_options": config.data_options,
        "subset": config.subset,
        "cutout": config.cutout,
        "cutout_length": config.cutout_length,
        "crop_padding": config.crop_padding,
        "flip": config.flip,
        "net": "nas-bench-201",
        "init_channels": config.init_channels,
        "layers": 3 * config.stage_cells,
        "valid_portion": round(1 - config.train_portion, 6),
        "epochs": epochs,
        "batch_size": config.batch_size,
        "lr": config.lr,
        "lr_schedule": "cosine",
        "lr_min": config.lr_min,
        "momentum": config.momentum,
        "nesterov": config.nesterov,
        "weight_decay": config.weight_decay,
        "grad_clip": config.grad_clip,
        "seed": config.seed,
        "device": config.device,
        "channels_last": config.channels_last,
        "progress": False,
        "plot": False,
    }
    return [f"{key}={json.dumps(value)}" for key, value in fields.items()]


def proxy_config(sets: list[str]):
    from ..conv.config import load_train_config

    return load_train_config(BASE_TRAIN_CONFIG, sets)


def cell_job(cell, i: int, folder: Path, sets: list[str], train, label: str):
    """The `dartsnas train` job of the i-th drawn cell; its genotype file beside its run folders."""
    from .runner import train_job

    folder.mkdir(parents=True, exist_ok=True)
    genotype = folder / f"cell-{i}.json"
    if not genotype.exists():
        cell.save(genotype)
    return train_job(str(genotype), BASE_TRAIN_CONFIG, sets, folder, f"cell-{i}", train, label)


# ----------------------------------------------------------------------------------------------
# the report


def summarise(out: Path, plans: dict, errors: dict, newest) -> dict:
    """Per seed: every drawn cell's validation accuracy, true accuracy and cost, the cell chosen; per setting:
    the chosen cells' mean and spread, and the best true accuracy among the drawn cells (a perfect judge's)."""
    from ..conv.nb201.table import load_table
    from ..core.plot import read_jsonl

    table = load_table()
    settings = {}
    for (name, seed), plan in plans.items():
        cells, failed = [], []
        for cell, cost, job in zip(plan.cells, plan.costs, plan.jobs):
            run = newest(job)
            if job.label in errors or run is None or not (run / "results.json").exists():
                failed.append(errors.get(job.label, "not run"))
                continue
            metrics = read_jsonl(run / "metrics.jsonl")
            cells.append(
                {
                    "cell": str(cell),
                    "valid_acc": 100 * metrics[-1]["valid_acc"],
                    "accuracy": table.accuracy(cell, plan.dataset),
                    "flops": cost,
                    "seconds": sum(m.get("seconds", 0.0) for m in metrics),
                    "run": str(run),
                }
            )
        entry = settings.setdefault(name, {"seeds": []})
        entry["dataset"] = plan.dataset
        record = {
            "seed": seed,
            "drawn": len(plan.cells),
            "proxy_epochs": plan.proxy_epochs,
            "budget_flops": plan.budget,
            "flops": sum(plan.costs),
            "cells": cells,
        }
        if failed:
            record["error"] = f"{len(failed)} of {len(plan.cells)} trainings did not finish: {failed[0]}"
        else:
            chosen = max(cells, key=lambda c: c["valid_acc"])  # the first of equals: the order drawn
            record |= {
                "cell": chosen["cell"],
                "accuracy": chosen["accuracy"],
                "perfect_judge": max(c["accuracy"] for c in cells),
                "seconds": sum(c["seconds"] for c in cells),
            }
        entry["seeds"].append(record)
    for entry in settings.values():
        done = [s for s in entry["seeds"] if "accuracy" in s]
        for key in ("accuracy", "perfect_judge", "seconds", "drawn"):
            values = [s[key] for s in done]
            entry[f"mean_{key}"] = statistics.fmean(values) if values else None
        entry["std"] = statistics.stdev([s["accuracy"] for s in done]) if len(done) > 1 else 0.0 if done else None
        entry["expected_best_of_drawn"] = (
            table.expected_best_of_k(entry["dataset"], round(entry["mean_drawn"])) if done else None
        )
    return {"out": str(out), "settings": settings}


def tables(report: dict) -> str:
    lines = [
        f"Random search at a search's cost: NAS-Bench-201 test accuracy (%) of the cell with the best proxy "
        f"validation accuracy; run folders in {report['out']}",
        "",
        "| setting | seeds | cells drawn (mean) | proxy epochs | mean | std | a perfect judge of the same cells "
        "| table, best of that many | wall (min) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in report["settings"].items():
        done = [x for x in s["seeds"] if "accuracy" in x]
        epochs = s["seeds"][0]["proxy_epochs"]
        lines.append(
            f"| {name} | {len(done)}/{len(s['seeds'])} | {_num(s['mean_drawn'], 1)} | {epochs} | "
            f"{_num(s['mean_accuracy'])} | {_num(s['std'])} | {_num(s['mean_perfect_judge'])} | "
            f"{_num(s['expected_best_of_drawn'])} | "
            f"{_num(s['mean_seconds'] / 60 if s['mean_seconds'] is not None else None, 1)} |"
        )
    lines += [
        "",
        "| setting | seed | cells (FLOPs / search's) | chosen cell | proxy valid | accuracy | best drawn |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for name, s in report["settings"].items():
        for x in s["seeds"]:
            share = f"{len(x['cells'])} ({x['flops'] / x['budget_flops']:.2f})"
            if "error" in x:
                lines.append(f"| {name} | {x['seed']} | {share} | failed: {x['error']} | | | |")
                continue
            valid = max(c["valid_acc"] for c in x["cells"])
            lines.append(
                f"| {name} | {x['seed']} | {share} | `{x['cell']}` | {valid:.2f} | {x['accuracy']:.2f} | "
                f"{x['perfect_judge']:.2f} |"
            )
    return "\n".join(lines)


def _num(x, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"
