"""Settings of the recurrent side: one typed dataclass for the search (the paper's PTB search, Sec. 3.1.2 and
A.1.2) and one for training a found cell (A.2.2), each default with its source.

Shipped configs live in `dartsnas/configs/rnn/` (search) and `dartsnas/configs/rnn/train/` (training) and
can be named without a path; YAML files and `--set key=value` override fields and unknown keys are errors,
by the same rules as the convolutional configs (config.load_dataclass).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.config import CONFIG_DIR, ConfigError, check_ranges, load_dataclass, read_saved
from ..core.options import RUN_OPTIONS, RunOptions
from ..methods.search import check as check_units
from .genotype import RECURRENT_OPS

RNN_CONFIG_DIR = CONFIG_DIR / "rnn"
CORPORA = ("ptb", "wikitext2", "text")  # text.CORPORA, named here so that configs load without torch
SPLITS = ("train", "valid", "test")
# How the second-order step treats gradient clipping (core/architect.py, `official_clip`): "paper"
# scales the implicit term by the virtual step's clipping factor capped at 1 and leaves v unclipped;
# "official" follows rnn/architect.py `_backward_step_unrolled`: v clipped to grad_clip, factor uncapped.
UNROLLED_FORMS = ("paper", "official")
# The interval of the numeric fields both recurrent configs have (core.config.check_ranges).
COMMON_RANGES = {
    "emsize": "[1, inf)",
    "dropout": "[0, 1)",
    "dropouth": "[0, 1)",
    "dropoutx": "[0, 1)",
    "dropouti": "[0, 1)",
    "dropoute": "[0, 1)",
    "epochs": "[1, inf)",
    "batch_size": "[1, inf)",
    "eval_batch_size": "[1, inf)",
    "bptt": "[1, inf)",
    "seq_jitter": "[0, inf)",
    "lr": "(0, inf)",
    "weight_decay": "[0, inf)",
    "grad_clip": "(0, inf)",
    "tar": "[0, inf)",
    "seed": "[0, inf)",
}


@dataclass
class RecurrentSearchConfig(RunOptions):
    # fmt: off
    # data (the official search: weights on the training text, alphas on the validation text)
    corpus: str = "ptb"                 # ptb | wikitext2 | text (a folder of your own, data_dir)
    data_dir: str | None = None         # the corpus folder (only there); None: $DARTSNAS_DATA/<corpus>, then the cache (docs/search.md, Datasets)
    download: bool = False              # fetch the official files (md5-checked) when found nowhere, into data_dir, $DARTSNAS_DATA/<corpus> or the cache
    max_lines: dict = field(default_factory=dict)  # {train: N, valid: N}: keep the first N lines (quick runs)
    # search space and model (A.1.2)
    ops: list[str] = field(default_factory=lambda: list(RECURRENT_OPS))
    nodes: int = 8                      # intermediate nodes of the cell
    emsize: int = 300                   # embedding and hidden size (tied weights)
    batch_norm: bool = True             # batch norm on every node's state during search
    mixed_op: str = "exact"             # exact, or lean: each time step recomputed in backward (same gradients, less memory)
    dropout: float = 0.75               # variational dropout on the output
    dropouth: float = 0.25              # ... on the states entering each node
    dropoutx: float = 0.75              # ... on the cell's input x_t
    dropouti: float = 0.2               # ... on the embeddings
    dropoute: float = 0.0               # words dropped from the embedding matrix (official rnn/train_search.py: 0)
    # weight optimisation (SGD)
    epochs: int = 50
    batch_size: int = 256
    eval_batch_size: int = 10           # streams of the validation text when measuring perplexity
    bptt: int = 35                      # window length (official search: bptt or bptt / 2, p = 0.05)
    seq_jitter: float = 0.0             # std of the normal draw around it; the official search has none
    lr: float = 20.0                    # scaled by window length / bptt each step
    weight_decay: float = 5e-7
    grad_clip: float = 0.25
    tar: float = 1e-3                   # temporal activation regularisation (beta in the official code)
    # architecture optimisation (Adam)
    unrolled: bool = False              # second order (Eq. 7) when true
    unrolled_form: str = "paper"        # paper | official: clipping in the second-order step (UNROLLED_FORMS)
    arch_lr: float = 3e-3
    arch_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    arch_weight_decay: float = 1e-3
    beta_decay: list[float] | None = None  # beta-DARTS: [start, end] of lambda (core/collapse.py; their code has
                                        # it on the convolutional spaces only)
    beta_decay_epochs: int | None = 100  # lambda moves (end - start) / this per epoch (theirs: 100); null:
                                        # rescaled to end at the run's last epoch (dartsnas's earlier form)
    anneal_entropy: list[float] | None = None  # [start, end]: each epoch's softmax temperature puts the mixture's
    #                                   normalised entropy on this line (1 uniform, 0 one-hot), as the conv search;
    #                                   dartsnas's own, not a published method (core/relax.py)
    # run
    seed: int = 2
    device: str = "auto"
    progress: bool = True
    plot: bool = True
    # fmt: on

    # The sections of its YAML form (core.config.SECTION_NAMES): each field in exactly one.
    # fmt: off
    SECTIONS = {
        "data": ("corpus", "data_dir", "download", "max_lines"),
        "network": ("ops", "nodes", "emsize", "batch_norm", "dropout", "dropouth", "dropoutx", "dropouti", "dropoute"),
        "relaxation": ("mixed_op", "anneal_entropy"),
        "method": ("beta_decay", "beta_decay_epochs"),
        "optimisation": (
            "epochs", "batch_size", "eval_batch_size", "bptt", "seq_jitter", "lr", "weight_decay", "grad_clip", "tar",
            "unrolled", "unrolled_form", "arch_lr", "arch_betas", "arch_weight_decay",
        ),
        "run": ("seed", "device", "progress", "plot", *RUN_OPTIONS),
    }
    # fmt: on

    RANGES = COMMON_RANGES | {
        "nodes": "[1, inf)",
        "arch_lr": "[0, inf)",
        "arch_betas": "[0, 1)",
        "arch_weight_decay": "[0, inf)",
        "beta_decay": "[0, inf)",
        "beta_decay_epochs": "[1, inf)",
        "anneal_entropy": "(0, 1]",
    }

    @staticmethod
    def legacy(saved: dict) -> dict:
        """What a run folder saved before a field existed ran with, where that field's default changed a
        method (core.config.load_saved): beta decay rescaled to the run's epochs."""
        return {"beta_decay_epochs": None} if saved.get("beta_decay") is not None else {}

    def validate(self) -> RecurrentSearchConfig:
        _check_common(self)
        check_units(self)  # beta_decay, anneal_entropy: the search units' own checks (methods/search/)
        unknown = [o for o in self.ops if o not in RECURRENT_OPS]
        if unknown:
            raise ConfigError(f"ops: unknown recurrent op(s) {unknown}; known: {', '.join(RECURRENT_OPS)}")
        if len(set(self.ops)) != len(self.ops) or not [o for o in self.ops if o != "none"]:
            raise ConfigError(f"ops: {self.ops} must list each op once and at least one besides 'none'")
        if len(self.arch_betas) != 2:
            raise ConfigError(f"arch_betas must be two numbers, got {self.arch_betas}")
        if self.unrolled_form not in UNROLLED_FORMS:
            raise ConfigError(f"unrolled_form: unknown {self.unrolled_form!r}; available: {', '.join(UNROLLED_FORMS)}")
        if self.unrolled_form != "paper" and not self.unrolled:
            raise ConfigError(
                f"unrolled_form: {self.unrolled_form} shapes the second-order step; set unrolled=true too"
            )
        if self.mixed_op not in ("exact", "lean"):
            raise ConfigError(f"mixed_op: the recurrent search has the modes exact and lean, got {self.mixed_op!r}")
        check_ranges(self)  # after the checks above: their messages are the more specific
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RecurrentTrainConfig(RunOptions):
    # fmt: off
    # data
    corpus: str = "ptb"                 # ptb | wikitext2 | text
    data_dir: str | None = None         # as RecurrentSearchConfig's: only there; None: $DARTSNAS_DATA/<corpus>, the cache
    download: bool = False              # fetch the official files (md5-checked) when found nowhere
    max_lines: dict = field(default_factory=dict)
    # model (A.2.2)
    emsize: int = 850                   # embedding and hidden size (tied weights)
    dropout: float = 0.75
    dropouth: float = 0.25
    dropoutx: float = 0.75
    dropouti: float = 0.2
    dropoute: float = 0.1               # words dropped from the embedding matrix (official rnn/train.py --dropoute)
    # optimisation: SGD, then averaged SGD once validation stops improving (non-monotone trigger)
    epochs: int = 8000                  # the official upper limit; the paper trains to convergence
    batch_size: int = 64
    eval_batch_size: int = 10
    test_batch_size: int = 1
    bptt: int = 35
    seq_jitter: float = 5.0             # training windows: N(bptt or bptt / 2, 5), at least 5
    lr: float = 20.0
    weight_decay: float = 8e-7
    grad_clip: float = 0.25
    tar: float = 1e-3
    nonmono: int = 5                    # switch to ASGD when validation loss exceeds the best of all but the last nonmono epochs
    # run
    seed: int = 1267                    # the official train.py seed
    device: str = "auto"
    progress: bool = True
    plot: bool = True
    # fmt: on

    # fmt: off
    SECTIONS = {
        "data": ("corpus", "data_dir", "download", "max_lines"),
        "network": ("emsize", "dropout", "dropouth", "dropoutx", "dropouti", "dropoute"),
        "optimisation": (
            "epochs", "batch_size", "eval_batch_size", "test_batch_size", "bptt", "seq_jitter", "lr", "weight_decay",
            "grad_clip", "tar", "nonmono",
        ),
        "run": ("seed", "device", "progress", "plot", *RUN_OPTIONS),
    }
    # fmt: on

    RANGES = COMMON_RANGES | {"test_batch_size": "[1, inf)", "nonmono": "[1, inf)"}

    def validate(self) -> RecurrentTrainConfig:
        _check_common(self)
        for name in ("test_batch_size", "nonmono"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        check_ranges(self)  # after the checks above: their messages are the more specific
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_common(config) -> None:
    if config.corpus not in CORPORA:
        raise ConfigError(f"corpus: unknown {config.corpus!r}; available: {', '.join(CORPORA)}")
    if config.corpus == "text" and not config.data_dir:
        raise ConfigError("corpus: text reads a folder of your own; set data_dir=DIR (train, valid and test files)")
    for name in ("epochs", "batch_size", "eval_batch_size", "bptt", "emsize"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(config, name)}")
    if getattr(config, "nodes", 1) < 1:
        raise ConfigError(f"nodes must be at least 1, got {config.nodes}")
    for name in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute"):
        if not 0.0 <= getattr(config, name) < 1.0:
            raise ConfigError(f"{name} must lie in [0, 1), got {getattr(config, name)}")
    bad = set(config.max_lines) - set(SPLITS)  # not sorted: YAML keys may mix numbers and names
    if bad or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in config.max_lines.values()):
        raise ConfigError(
            f"max_lines must map train, valid or test to a positive number of lines, got {config.max_lines}"
        )


def load_recurrent_config(cls, path: str | Path | None = None, overrides: list[str] | None = None):
    """Defaults of `cls`, then the YAML file (a path or a shipped recurrent config's name), then overrides."""
    folder = RNN_CONFIG_DIR / "train" if cls is RecurrentTrainConfig else RNN_CONFIG_DIR
    return load_dataclass(cls, path, overrides, folder, what="recurrent config")


def is_recurrent_run(run_dir: str | Path) -> bool:
    """Was this run folder written by a recurrent search or training? (its config.yaml names a corpus)"""
    path = Path(run_dir) / "config.yaml"
    try:
        data = read_saved(path)  # capped: a huge or binary file is not a run's config
    except ConfigError:
        return False
    return "corpus" in data
