"""Derivation after the search, from its run folder: `dartsnas derive RUN --rule argmax | pt | bnb`.

The search's checkpoint holds the supernet (weights and alphas) as the search left it, so a cell can be derived
again, by another rule, without searching again:

- `argmax`: the space's own rule on the checkpoint's alphas (Sec. 2.4; NAS-Bench-201's per-edge argmax), with
  P-DARTS's skip cap when `skip_cap` is given (Chen et al., ICCV 2019, Sec. 3.3);
- `pt`: DARTS-PT's perturbation-based selection (Wang et al., ICLR 2021; conv/perturb.py), which tunes a copy of
  the supernet in memory;
- `bnb`: conv/bnb.py's `bnb_derive`, when installed.

Each derivation goes to RUN/derived/<name>.json: the rule, its options, the genotype (loadable by `dartsnas
train RUN/derived/<name>.json`), the evidence it was chosen on, the seconds it took and, in the NAS-Bench-201
space, the cell's accuracy in the benchmark's table. Nothing else of the run folder is touched (no checkpoint,
genotype.json or log is written).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from collections.abc import Callable

import torch

from ..core.config import ConfigError, check_name
from ..core.device import resolve_device
from ..core.checkpoints import RunError, latest_state
from ..core.config import load_saved, read_saved
from ..core.runs import atomic_write_text, load_state
from .config import SearchConfig
from .search import Searcher, prepare_data

RULES = ("argmax", "pt", "bnb")


def load_searcher(run_dir: str | Path, device: str | torch.device = "cpu") -> Searcher:
    """The search of a run folder as its last checkpoint left it: config.yaml, its data, checkpoint.pt."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "alphas.jsonl").is_file():
        raise RunError(
            f"{run_dir} is not a search run folder (no config.yaml and alphas.jsonl there); give the "
            "folder `dartsnas search` wrote"
        )
    saved = read_saved(run_dir / "config.yaml")  # with the size cap
    if "corpus" in saved:
        raise RunError(f"{run_dir} is a recurrent search; dartsnas derive re-derives convolutional cells")
    config = load_saved(SearchConfig, run_dir / "config.yaml")  # as the run ran (core.config.load_saved)
    device = resolve_device(str(device))
    state, path = latest_state(run_dir, device, config.keep_checkpoints, resume=False)  # before the data: fail fast
    searcher = Searcher(config, prepare_data(config, device), device)
    load_state(searcher, state, path, run_dir)
    return searcher


def default_name(rule: str, skip_cap: int | None = None) -> str:
    return f"{rule}-skip-cap-{skip_cap}" if skip_cap is not None else rule


def rederive(
    run_dir: str | Path,
    rule: str,
    *,
    skip_cap: int | None = None,
    tune_epochs: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    name: str | None = None,
    log: Callable[[str], None] | None = None,
    **options,
) -> tuple[object, Path]:
    """Derive the run's cell by `rule`; -> (genotype, RUN/derived/<name>.json; `summary` says it in a few lines).
    `log(line)`: progress. `options` (None values dropped): `batches` caps the validation batches per
    evaluation (pt, bnb); the rest go to bnb."""
    options = {k: v for k, v in options.items() if v is not None}
    derive = _checked_rule(rule, skip_cap, tune_epochs, seed, options)
    name = default_name(rule, skip_cap) if name is None else name
    check_name(name)  # it becomes RUN/derived/<name>.json: never a path out of the run folder
    run_dir = Path(run_dir)
    # Not the "dartsnas" logger: in a process that ran a search it still writes into that run's log.txt.
    say = log or (lambda line: None)
    searcher = load_searcher(run_dir, device)
    torch.manual_seed(seed)
    start = time.perf_counter()
    genotype, evidence, used = derive(searcher, torch.Generator().manual_seed(seed), say)
    record = {
        "rule": rule,
        "options": used,
        "genotype": genotype.to_dict(),
        "genotype_text": str(genotype),
        "evidence": evidence,
        "seconds": time.perf_counter() - start,
    }
    config = searcher.config
    if config.space == "nas-bench-201":
        from .nb201.table import load_table

        record["benchmark_dataset"] = config.benchmark_dataset
        record["accuracy"] = load_table().accuracy(genotype, config.benchmark_dataset)
    path = run_dir / "derived" / f"{name}.json"
    try:
        path.parent.mkdir(exist_ok=True)
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    except OSError as err:  # a read-only run folder, or a file named `derived`
        raise RunError(
            f"cannot write {path} ({err.strerror or err}); make {run_dir} writable, or copy the "
            "run folder somewhere writable and derive there"
        ) from None
    return genotype, path


def _checked_rule(rule: str, skip_cap, tune_epochs: int | None, seed: int, options: dict):
    """The derivation `rule` names, as (searcher, generator, log) -> (genotype, evidence, options used);
    flags that do not apply to it are refused before any work."""
    if rule not in RULES:
        raise ConfigError(f"unknown rule {rule!r}; rules: {', '.join(RULES)}")
    if skip_cap is not None and (rule != "argmax" or skip_cap < 0):
        raise ConfigError("--skip-cap is a whole number >= 0, and for --rule argmax only")
    if tune_epochs is not None and tune_epochs < 0:
        raise ConfigError(f"--tune-epochs must be at least 0, got {tune_epochs}")
    if options.get("batches") is not None and options["batches"] < 1:
        raise ConfigError(f"--batches must be at least 1, got {options['batches']}")
    allowed = {"argmax": set(), "pt": {"batches"}, "bnb": None}[rule]
    extra = sorted(set(options) - allowed) if allowed is not None else []
    if extra:
        raise ConfigError(f"--rule {rule} takes no {', '.join('--' + e.replace('_', '-') for e in extra)}")

    if rule == "argmax":

        def derive(searcher, generator, say):
            model = searcher.model
            evidence = {
                "probs": {k: p.cpu().tolist() for k, p in model.probs().items()},
                "ops": model.ops,
                "edges": model.edge_names(),
            }
            return model.derive(searcher.config.derivation(), skip_cap), evidence, {"skip_cap": skip_cap}
    elif rule == "pt":

        def derive(searcher, generator, say):
            from .perturb import pt_derive

            genotype, evidence = pt_derive(searcher, generator, tune_epochs, say, options.get("batches"))
            return genotype, evidence, {"tune_epochs": evidence["tune_epochs"], "seed": seed, **options}
    else:
        bnb_derive = _bnb()

        def derive(searcher, generator, say):
            genotype, evidence = bnb_derive(searcher, generator, **options)
            return genotype, evidence, {"seed": seed, **options}

    return derive


def _bnb():
    try:
        from .bnb import bnb_derive
    except ModuleNotFoundError as err:
        if err.name != f"{__package__}.bnb":
            raise
        raise ConfigError(
            "--rule bnb needs dartsnas/conv/bnb.py, which this installation does not have yet; use --rule pt or argmax"
        ) from None
    return bnb_derive


def summary(record: dict, path: Path) -> str:
    """A few lines on one derivation: its cell, its table accuracy (NAS-Bench-201), time, where it is."""
    lines = [f"{record['rule']} derivation ({record['seconds']:.1f} s): {record['genotype_text']}"]
    if "accuracy" in record:
        lines.append(f"NAS-Bench-201 {record['benchmark_dataset']} test accuracy: {record['accuracy']:.2f} %")
    recipe = " --config nb201" if "accuracy" in record else ""
    lines.append(f"written to {path}; train it with: dartsnas train {path}{recipe}")
    return "\n".join(lines)
