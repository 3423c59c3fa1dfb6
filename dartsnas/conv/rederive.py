"""Derivation after the search, from its run folder: `dartsnas derive RUN --rule argmax | pt | bnb`.

The search's checkpoint holds the supernet (weights and alphas) as the search left it, so a cell can be derived
again, by another rule, without searching again:

- `argmax`: the space's own rule on the checkpoint's alphas (Sec. 2.4; NAS-Bench-201's per-edge argmax), with
  P-DARTS's skip cap when `skip_cap` is given (Chen et al., ICCV 2019, Sec. 3.3);
- `pt`: DARTS-PT's perturbation-based selection (Wang et al., ICLR 2021; methods/derivations/pt.py), which tunes
  a copy of the supernet in memory;
- `bnb`: branch and bound on held-out batches (methods/derivations/bnb.py; dartsnas's own).

The rules that evaluate the network live in methods/derivations/ and know the search only through
`SearchNet`, the adapter here (methods/derivations/base.py's `Net`): the supernet, its held-out batches,
its accuracy and its tuning.

Each derivation goes to RUN/derived/<name>.json: the rule, its options, the genotype (loadable by `dartsnas
train RUN/derived/<name>.json`), the evidence it was chosen on, the seconds it took and, in the NAS-Bench-201
space, the cell's accuracy in the benchmark's table. Nothing else of the run folder is touched (no checkpoint,
genotype.json or log is written).
"""

from __future__ import annotations

import contextlib
import itertools
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
from ..data.batches import batches as image_batches
from ..methods.derivations import NETWORK, unit
from ..methods.derivations.pt import expected_mixture
from .config import SearchConfig
from .search import Searcher, prepare_data

# argmax: the space's own rule over probabilities (the config's `derive`); the others evaluate the network.
RULES = ("argmax", *NETWORK)


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


class SearchNet:
    """A search as the rules that evaluate the network see it (methods/derivations/base.py's `Net`).

    `searcher` needs `model` and `config` (`derivation()`, `lr`, `batch_size`, `space`), and for the held-out
    batches `data.arch_half`, `data.eval_augment` and `prepare_inputs`; for tuning, `train_epoch()` and
    `optimizer`. `accuracy` replaces the default measure (`validation_accuracy` over at most `max_batches`)."""

    def __init__(self, searcher, max_batches: int | None = None, accuracy: Callable[[], float] | None = None):
        self.searcher, self.model = searcher, searcher.model
        self.max_batches, self._accuracy = max_batches, accuracy

    @property
    def space(self) -> str:
        return self.searcher.config.space

    @property
    def lr(self) -> float:
        return self.searcher.config.lr

    def accuracy(self) -> float:
        if self._accuracy is not None:
            return self._accuracy()
        return validation_accuracy(self.searcher, self.max_batches)

    def held_out(self, batches: int):
        s = self.searcher
        data = s.data
        stream = image_batches(data.arch_half, s.config.batch_size, None, data.eval_augment, shuffle=False)
        return [(s.prepare_inputs(x), y) for x, y in itertools.islice(stream, batches)]

    def tune(self, epochs: int, lr: float) -> None:
        with fresh_optimizer(self.searcher, lr):
            for _ in range(epochs):
                self.searcher.train_epoch()

    def derive(self):
        return self.model.derive(self.searcher.config.derivation())


@torch.no_grad()
def validation_accuracy(searcher, max_batches: int | None = None) -> float:
    """The supernet's accuracy on the validation half (`data.arch_half`, in order, first `max_batches`
    batches), batch norm in training mode as darts-pt evaluates; every buffer (running statistics) restored."""
    model, data = searcher.model, searcher.data
    saved = [b.clone() for b in model.buffers()]
    model.train()
    correct, seen = 0.0, 0
    try:
        with expected_mixture(model):
            for i, (x, y) in enumerate(
                image_batches(data.arch_half, searcher.config.batch_size, None, data.eval_augment, shuffle=False)
            ):
                if max_batches is not None and i >= max_batches:
                    break
                logits = model(searcher.prepare_inputs(x))
                correct += (logits.argmax(1) == y).sum()  # a tensor: one host sync at the end
                seen += len(y)
    finally:
        for b, s in zip(model.buffers(), saved):
            b.copy_(s)
    return float(correct) / max(seen, 1)


@contextlib.contextmanager
def fresh_optimizer(searcher, lr: float):
    """Inside, the weight steps use a new SGD of the search's settings at the constant rate `lr` (darts-pt's
    `reset_optimizer`: no momentum carried over from the search); the search's own optimiser is back after."""
    cfg, saved = searcher.config, searcher.optimizer
    searcher.optimizer = torch.optim.SGD(
        searcher.model.weights(), lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov
    )
    try:
        yield
    finally:
        searcher.optimizer = saved


def pt_derive(
    searcher,
    generator: torch.Generator,
    tune_epochs: int | None = None,
    log: Callable[[str], None] | None = None,
    max_batches: int | None = None,
    accuracy: Callable[[], float] | None = None,
) -> tuple[object, dict]:
    """DARTS-PT (methods/derivations/pt.py) on `searcher` (SearchNet says what it needs); -> (genotype, evidence)."""
    return unit("pt")(SearchNet(searcher, max_batches, accuracy), generator, tune_epochs, log)


def bnb_derive(searcher, generator=None, **options) -> tuple:
    """Branch and bound (methods/derivations/bnb.py) on `searcher`; -> (genotype, evidence). `options`:
    batches, prior_weight, exhaustive."""
    return unit("bnb")(SearchNet(searcher), generator, **options)


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

    if rule != "argmax":
        _network_rule(rule)  # before any work
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
            genotype, evidence = pt_derive(searcher, generator, tune_epochs, say, options.get("batches"))
            return genotype, evidence, {"tune_epochs": evidence["tune_epochs"], "seed": seed, **options}
    else:

        def derive(searcher, generator, say):
            genotype, evidence = bnb_derive(searcher, generator, **options)
            return genotype, evidence, {"seed": seed, **options}

    return derive


def _network_rule(rule: str):
    """The rule's unit, imported before any work: one clear line when this installation lacks its file."""
    try:
        return unit(rule, NETWORK)
    except ModuleNotFoundError as err:
        if err.name != f"dartsnas.methods.derivations.{NETWORK[rule]}":
            raise
        raise ConfigError(
            f"--rule {rule} needs dartsnas/methods/derivations/{NETWORK[rule]}.py, which this installation does "
            "not have; use --rule argmax"
        ) from None


def summary(record: dict, path: Path) -> str:
    """A few lines on one derivation: its cell, its table accuracy (NAS-Bench-201), time, where it is."""
    lines = [f"{record['rule']} derivation ({record['seconds']:.1f} s): {record['genotype_text']}"]
    if "accuracy" in record:
        lines.append(f"NAS-Bench-201 {record['benchmark_dataset']} test accuracy: {record['accuracy']:.2f} %")
    recipe = " --config nb201" if "accuracy" in record else ""
    lines.append(f"written to {path}; train it with: dartsnas train {path}{recipe}")
    return "\n".join(lines)
