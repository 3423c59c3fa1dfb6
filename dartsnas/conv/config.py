"""Settings of the convolutional side: one typed dataclass for the search (the paper's, Sec. 3.1.1 and
A.1.1) and one for training a found cell (Sec. 3.3 and A.2), each default with its source. The image
data fields are declared once (`ImageData`) and shared by both.

Shipped configs live in `dartsnas/configs/` (search) and `dartsnas/configs/train/` (training) and can be
named without a path; YAML files and `--set key=value` override fields by the rules of core/config.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.config import CONFIG_DIR, ConfigError, check_ranges, load_dataclass
from ..core.options import RUN_OPTIONS, RunOptions
from .nb201.genotype import OPS as NB201_OPS
from .nb201.table import DATASETS as BENCHMARK_DATASETS
from ..methods.relaxations import RELAXATIONS
from ..methods.search import check as check_units
from .spaces import DARTS_OPS, DERIVATIONS, SPACES

TRAIN_CONFIG_DIR = CONFIG_DIR / "train"
LR_SCHEDULES = ("cosine", "step")
DATA_LOADERS = ("memory", "workers")


@dataclass
class ImageData:
    """Which images a run reads and how the training batches are augmented (dartsnas/data/)."""

    # fmt: off
    dataset: str = "cifar10"            # a name from data.images.DATASETS
    data_dir: str | None = None         # where the dataset lies (only there); None: $DARTSNAS_DATA/<dataset>, the cache, system folders (docs/search.md, Datasets)
    download: bool = False              # fetch the official files (md5-checked) when found nowhere, into data_dir, $DARTSNAS_DATA/<dataset> or the cache
    data_options: dict = field(default_factory=dict)  # dataset-specific options (e.g. imagefolder size)
    subset: int | None = None           # use only the first N training images (quick runs, tests); image
                                        # folders list theirs class by class: use data_options limit_per_class
    cutout: bool = False                # cutout (DeVries & Taylor 2017); the official search uses none
    cutout_length: int = 16
    crop_padding: int | None = None     # random-crop padding in pixels; None: 4 for 32x32 and larger, else 0
    flip: bool | None = None            # horizontal flips; None: on for colour images, off for grey ones
    # fmt: on

    # The interval of every numeric field (core.config.check_ranges; None always passes: it means off).
    RANGES = {"subset": "[1, inf)", "cutout_length": "[1, inf)", "crop_padding": "[0, inf)"}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check_data(self) -> None:
        """The dataset name and its options' values, so that a typo ends before a run folder is made."""
        from ..data.images import DATASETS, option_names

        if self.dataset not in DATASETS:
            raise ConfigError(f"dataset: unknown {self.dataset!r}; available: {', '.join(sorted(DATASETS))}")
        known = {name for loader in DATASETS.values() for name in option_names(loader)}
        for name, value in self.data_options.items():
            if name not in known:
                takes = ", ".join(option_names(DATASETS[self.dataset])) or "no options"
                raise ConfigError(f"data_options: unknown option {name!r}; the {self.dataset} dataset takes {takes}")
            ok, what = DATA_OPTIONS[name]
            if not ok(value):
                raise ConfigError(f"data_options: {name} must be {what}, got {value!r}")


def _whole(value, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= 2**31 - 1


# The value each dataset option takes (the loaders of dartsnas/data/): a test, and what it must be in words.
DATA_OPTIONS = {
    "size": (
        lambda v: v is None or _whole(v),
        "a whole number >= 1 (imagefolder: the side in pixels every "
        "image is resized to; fake: the image count) or null",
    ),
    "limit_per_class": (lambda v: v is None or _whole(v), "a whole number of images >= 1, or null"),
    "num_classes": (_whole, "a whole number >= 1"),
    "grayscale": (lambda v: isinstance(v, bool), "true or false"),
    "cache": (lambda v: isinstance(v, bool), "true or false"),
    "shape": (
        lambda v: isinstance(v, list) and len(v) == 3 and all(_whole(x) for x in v),
        "three whole numbers >= 1, [channels, height, width]",
    ),
}


@dataclass
class SearchConfig(ImageData, RunOptions):
    # fmt: off
    train_portion: float = 0.5          # share of the training set for the weights; the rest tunes alphas
    # search space
    space: str = "darts"                # darts | nas-bench-201 (spaces.py; docs/nas-bench-201.md)
    ops: list[str] = field(default_factory=lambda: list(DARTS_OPS))  # candidate op names (darts: ops.OPS)
    nodes: int = 4                      # darts: intermediate nodes per cell (nas-bench-201's cell has 3)
    init_channels: int = 16             # C of the first cell
    layers: int = 8                     # darts: cells
    stem_multiplier: int = 3            # darts: the stem has stem_multiplier * C channels
    stage_cells: int = 5                # nas-bench-201: cells per stage (N; three stages)
    benchmark_dataset: str = "cifar10"  # nas-bench-201: the table column found cells are looked up in
    mixed_op: str = "exact"             # exact | lean | partial | sample (docs/search.md, Mixed-op modes)
    partial_k: int = 4                  # partial: 1/K of the channels go through the candidate ops (PC-DARTS)
    sample_grad: str = "straight_through"  # sample: straight_through | gdas_nb201 (GDAS's NAS-Bench-201 cell; supernet.SAMPLE_GRADS)
    derive: str | None = None           # derivation rule (methods/derivations/); None: the space's own. darts space:
                                        # darts (Sec. 2.4) | gdas (top-2 (op, input) pairs); nas-bench-201: its own
    temperature: list[float] | None = None  # [start, end] of the relaxation's temperature over the search;
                                        # None: [1, 1] (the paper's softmax), or [10, 0.1] for sample (GDAS)
    temperature_schedule: str = "linear"  # linear | exponential, from start (first epoch) to end (last)
    anneal_entropy: list[float] | None = None  # [start, end]: instead of a temperature schedule, each epoch's
                                        # temperature is the one at which the mixture's mean normalised entropy
                                        # is on the line from start to end (e.g. [1, 0.05]: ends near one-hot);
                                        # dartsnas's own, not a published method (core/relax.py)
    # answers to collapse (docs/collapse.md); all off by default: the paper's search
    beta_decay: list[float] | None = None  # beta-DARTS: [start, end] of lambda (theirs: [0, 50]), times
                                        # mean_edges logsumexp(alpha) added to the architecture loss
    beta_decay_epochs: int | None = 100  # lambda moves (end - start) / this per epoch, on past end in a longer
                                        # run (theirs: 100 in both spaces, core/collapse.py); null: rescaled to
                                        # end at the run's last epoch (dartsnas's earlier form; not measured
                                        # against theirs: docs/collapse.md)
    aux_skip: float = 0.0               # DARTS-: start of beta in edge = mixture + beta * skip(x), decaying
                                        # linearly to 0 over the epochs (paper: 1); 0: off
    early_stop: bool = False            # DARTS+: stop when the derived cell has this many skip connections or
    early_stop_skips: int | None = 2    #   more: in the DARTS normal cell (the paper's 2),
    early_stop_skips_nb201: int | None = 3  # in NAS-Bench-201's 6-edge cell (ours: skip_threshold());
    early_stop_patience: int | None = 10  #   or when the learnable ops' ranking has been stable this many
                                        #   epochs (null switches a criterion off)
    skip_cap: int | None = None         # P-DARTS: at most this many skip connections in the derived normal cell
    progressive: bool = False           # SGAS: decide edges during the search (core/progressive.py)
    progressive_warmup: int = 9         #   first decision after the epoch numbered this from 0 (their
                                        #   warmup_dec_epoch: 9, after 10 epochs),
    progressive_interval: int = 5       #   then one per cell kind every this many epochs (decision_freq)
    progressive_history: int | None = None  #   criterion 2: selection stability over this many past epochs
    progressive_form: str = "sgas"      #   sgas: as their code | v1: dartsnas's earlier form, for its runs
    progressive_batch_increase: int = 0  #   the batch grows by this after each decision epoch (theirs: 8,
                                        #   64 to 128 in 8 decisions; needs the memory); 0: fixed
    # weight optimisation (SGD, cosine schedule per epoch)
    epochs: int = 50
    batch_size: int = 64
    lr: float = 0.025                   # learning_rate in the official code
    lr_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = False              # Nesterov momentum (NAS-Bench-201's search: true)
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    # architecture optimisation (Adam)
    unrolled: bool = False              # second order (Eq. 7) when true, first order otherwise
    arch_lr: float = 3e-4
    arch_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    arch_weight_decay: float = 1e-3
    arch_start_epoch: int = 0           # epochs of weight training only before the first alpha step (PC-DARTS: 15)
    # run
    seed: int = 2
    device: str = "auto"                # cpu, cuda, cuda:N, or auto (cuda when available)
    channels_last: bool = True          # NHWC memory format: faster depthwise convs on CPU and GPU
    compile: bool = False               # torch.compile the supernet: every pass of both steps (core/compiled.py)
    compile_mode: str = "auto"          #   auto: reduce-overhead (CUDA graphs) on CUDA, default elsewhere
    compile_backend: str = "inductor"   #   aot_eager: trace only (no code generated), to tell problems apart
    compile_scope: str = "cells"        #   cells: each cell (cells of one shape share a graph) | network
    progress: bool = True               # a progress bar on the terminal
    tensorboard: bool = False           # also log scalars to RUN/tb (needs the tensorboard extra)
    plot: bool = True                   # draw the pictures at the end (needs the plot extra)
    # fmt: on

    # The sections of its YAML form (core.config.SECTION_NAMES): each field in exactly one.
    # fmt: off
    SECTIONS = {
        "data": ("dataset", "data_dir", "download", "data_options", "subset", "cutout", "cutout_length", "crop_padding", "flip", "train_portion"),
        "network": (
            "space", "ops", "nodes", "init_channels", "layers", "stem_multiplier", "stage_cells", "benchmark_dataset",
            "channels_last",
        ),
        "relaxation": ("mixed_op", "partial_k", "sample_grad", "temperature", "temperature_schedule", "anneal_entropy"),
        "method": (
            "derive", "beta_decay", "beta_decay_epochs", "aux_skip", "early_stop", "early_stop_skips",
            "early_stop_skips_nb201", "early_stop_patience", "skip_cap", "progressive", "progressive_form",
            "progressive_warmup", "progressive_interval", "progressive_history", "progressive_batch_increase",
        ),
        "optimisation": (
            "epochs", "batch_size", "lr", "lr_min", "momentum", "nesterov", "weight_decay", "grad_clip", "unrolled",
            "arch_lr", "arch_betas", "arch_weight_decay", "arch_start_epoch",
        ),
        "run": ("seed", "device", "progress", "tensorboard", "plot", *RUN_OPTIONS),
        "compiler": ("compile", "compile_mode", "compile_backend", "compile_scope"),
    }
    # fmt: on

    RANGES = ImageData.RANGES | {
        "train_portion": "(0, 1)",
        "nodes": "[1, inf)",
        "init_channels": "[1, inf)",
        "layers": "[3, inf)",
        "stem_multiplier": "[1, inf)",
        "stage_cells": "[1, inf)",
        "partial_k": "[1, inf)",
        "temperature": "(0, inf)",
        "anneal_entropy": "(0, 1]",
        "beta_decay": "[0, inf)",
        "beta_decay_epochs": "[1, inf)",
        "aux_skip": "[0, inf)",
        "early_stop_skips": "[1, inf)",
        "early_stop_skips_nb201": "[1, inf)",
        "early_stop_patience": "[1, inf)",
        "skip_cap": "[0, inf)",
        "progressive_warmup": "[0, inf)",
        "progressive_interval": "[1, inf)",
        "progressive_history": "[1, inf)",
        "progressive_batch_increase": "[0, inf)",
        "epochs": "[1, inf)",
        "batch_size": "[1, inf)",
        "lr": "(0, inf)",
        "lr_min": "[0, inf)",
        "momentum": "[0, 1)",
        "weight_decay": "[0, inf)",
        "grad_clip": "(0, inf)",
        "arch_lr": "[0, inf)",  # 0: alphas frozen (tests freeze the ranking so)
        "arch_betas": "[0, 1)",
        "arch_weight_decay": "[0, inf)",
        "arch_start_epoch": "[0, inf)",
        "seed": "[0, inf)",
    }

    def validate(self) -> SearchConfig:
        # Imported here so that importing this module needs no torch.
        from ..core.relax import SCHEDULES
        from ..methods.relaxations import unit_class
        from .ops import OPS

        if self.space not in SPACES:
            raise ConfigError(f"space: unknown {self.space!r}; available: {', '.join(SPACES)}")
        known = OPS if self.space == "darts" else NB201_OPS
        unknown = [o for o in self.ops if o not in known]
        if unknown:
            raise ConfigError(
                f"ops: unknown op(s) {unknown} for the {self.space} space; known ops: "
                f"{', '.join(known)}" + (" (the shipped nb201-* configs set them)" if known is NB201_OPS else "")
            )
        if len(set(self.ops)) != len(self.ops):
            raise ConfigError(f"ops: {self.ops} lists an op twice")
        if not [o for o in self.ops if o != "none"]:
            raise ConfigError("ops: the candidate set needs at least one op besides 'none'")
        if self.mixed_op not in RELAXATIONS:
            raise ConfigError(f"mixed_op: unknown mode {self.mixed_op!r}; available: {', '.join(RELAXATIONS)}")
        relaxation = unit_class(self.mixed_op)
        unit_class("sample").check(self)  # sample_grad is sample's setting: a typo is refused in any mode
        if self.sample_grad != "straight_through" and not relaxation.draws:
            raise ConfigError(
                f"sample_grad: {self.sample_grad} shapes the gradient of drawn ops; it needs "
                f"mixed_op: sample (got {self.mixed_op!r})"
            )
        rules = DERIVATIONS[self.space]
        if self.derive is not None and self.derive not in rules:
            raise ConfigError(
                f"derive: unknown derivation rule {self.derive!r} for the {self.space} space; "
                f"available: {', '.join(rules)}"
            )
        if self.benchmark_dataset not in BENCHMARK_DATASETS:
            raise ConfigError(
                f"benchmark_dataset: unknown {self.benchmark_dataset!r}; the NAS-Bench-201 table has "
                f"{', '.join(BENCHMARK_DATASETS)}"
            )
        relaxation.check(self)
        if self.temperature is not None and (
            len(self.temperature) != 2
            or not all(isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in self.temperature)
        ):
            raise ConfigError(f"temperature must be two positive numbers [start, end], got {self.temperature}")
        if self.temperature_schedule not in SCHEDULES:
            raise ConfigError(
                f"temperature_schedule: unknown {self.temperature_schedule!r}; available: {', '.join(SCHEDULES)}"
            )
        if not 0.0 < self.train_portion < 1.0:
            raise ConfigError(f"train_portion must lie strictly between 0 and 1, got {self.train_portion}")
        _at_least_one(
            self, "epochs", "batch_size", "init_channels", "layers", "nodes", "stem_multiplier", "stage_cells"
        )
        if not 0 <= self.arch_start_epoch < self.epochs:
            raise ConfigError(
                f"arch_start_epoch must lie in [0, epochs) = [0, {self.epochs}), got {self.arch_start_epoch}"
            )
        _check_cells(self)
        if len(self.arch_betas) != 2:
            raise ConfigError(f"arch_betas must be two numbers, got {self.arch_betas}")
        check_units(self)  # each search unit's own settings (methods/search/)
        _check_skip_cap(self)
        if self.compile:
            from ..core.compiled import check

            if not relaxation.compiles:
                raise ConfigError(f"compile: {relaxation.compile_refusal}")
            check(self.compile_mode, self.compile_backend, self.compile_scope)
        check_ranges(self)  # after the checks above: their messages are the more specific
        self.check_data()
        return self

    @staticmethod
    def legacy(saved: dict) -> dict:
        """What a run folder saved before a field existed ran with, where that field's default changed a
        method (core.config.load_saved fills these in for the keys it lacks, so the run resumes as it began)."""
        old = {}
        if saved.get("beta_decay") is not None:
            old["beta_decay_epochs"] = None  # lambda rescaled to the run's epochs
        if saved.get("progressive"):
            old["progressive_form"] = "v1"  # SGAS as dartsnas first read it
        if saved.get("early_stop") and saved.get("space") == "nas-bench-201":
            old["early_stop_skips_nb201"] = saved.get("early_stop_skips", 2)  # one count then, for both spaces
        return old

    def skip_threshold(self) -> int | None:
        """DARTS+ criterion 1's count of skip connections in this space: `early_stop_skips` in the DARTS normal
        cell (8 edges; the paper's 2), `early_stop_skips_nb201` in NAS-Bench-201's 6-edge cell. Its default 3 is
        dartsnas's adaptation (DARTS+ has no NAS-Bench-201 search): 2 are no collapse there (the benchmark's
        ResNet cell has 2, 93.91 %), and 3 is the first count whose cells average below a random cell
        (docs/collapse.md)."""
        return self.early_stop_skips_nb201 if self.space == "nas-bench-201" else self.early_stop_skips

    def derivation(self) -> str:
        """The derivation rule: `derive`, or the space's own when unset."""
        return self.derive or DERIVATIONS[self.space][0]

    def temperatures(self) -> tuple[float, float]:
        """[start, end] of the relaxation temperature, with the relaxation's own default when unset."""
        from ..methods.relaxations import unit_class

        if self.temperature is not None:
            return float(self.temperature[0]), float(self.temperature[1])
        return unit_class(self.mixed_op).temperature


@dataclass
class TrainConfig(ImageData, RunOptions):
    """The paper's CIFAR-10 evaluation defaults (Sec. 3.3, A.2); ImageNet, NAS-Bench-201's training and the
    quick CPU runs are shipped YAML files (`imagenet`, `nb201`, `quick`, `nb201-quick`; `cifar10` restates
    the defaults)."""

    # fmt: off
    cutout: bool = True                 # as the paper's CIFAR evaluation
    valid_portion: float = 0.1          # share of the training set held out to pick the best epoch; 0: none
    data_loader: str = "memory"         # memory: whole split on the device; workers: image folders decoded by DataLoader workers
    workers: int = 8                    # DataLoader worker processes (data_loader: workers)
    image_size: int = 224               # crop side of the workers loader (ImageNet: 224)
    # network
    net: str = "cifar10"                # layout: cifar10 (stem keeps the resolution), imagenet (stem divides by 8),
                                        # or nas-bench-201 (the benchmark's network of a NAS-Bench-201 cell)
    init_channels: int = 36             # C of the first cell (paper: 36 CIFAR, 48 ImageNet; NAS-Bench-201: 16)
    layers: int = 20                    # cells (paper: 20 CIFAR, 14 ImageNet; NAS-Bench-201: 15, 3 stages of N=5)
    auxiliary: bool = True              # auxiliary head after the second reduction cell
    auxiliary_weight: float = 0.4       # its loss weight
    drop_path_prob: float = 0.2         # ramped linearly from 0 over the epochs (official train.py)
    # optimisation (SGD)
    epochs: int = 600
    batch_size: int = 96
    lr: float = 0.025                   # learning_rate in the official code
    lr_schedule: str = "cosine"         # cosine: to lr_min over the epochs; step: times lr_gamma every epoch
    lr_min: float = 0.0
    lr_gamma: float = 0.97              # step schedule's factor per epoch (ImageNet)
    momentum: float = 0.9
    nesterov: bool = False              # Nesterov momentum (NAS-Bench-201's training: true)
    weight_decay: float = 3e-4
    grad_clip: float | None = 5.0       # max gradient norm; None: no clipping (NAS-Bench-201's training)
    label_smoothing: float = 0.0        # 0.1 for ImageNet
    # run
    seed: int = 0
    device: str = "auto"                # cpu, cuda, cuda:N, or auto (cuda when available)
    channels_last: bool = True          # NHWC memory format: faster depthwise convs on CPU and GPU
    amp: bool = False                   # bfloat16 autocast (meant for CUDA; on CPU it runs, mostly slower)
    compile: bool = False               # torch.compile the network
    sync_bn: bool = False               # data-parallel on GPUs: batch statistics over all ranks' shards
    progress: bool = True               # a progress bar on the terminal
    plot: bool = True                   # draw the cells and the curves at the end (needs the plot extra)
    # fmt: on

    # fmt: off
    SECTIONS = {
        "data": ("dataset", "data_dir", "download", "data_options", "subset", "cutout", "cutout_length", "crop_padding", "flip", "valid_portion", "data_loader", "workers", "image_size"),
        "network": ("net", "init_channels", "layers", "auxiliary", "auxiliary_weight", "drop_path_prob", "channels_last"),
        "optimisation": (
            "epochs", "batch_size", "lr", "lr_schedule", "lr_min", "lr_gamma", "momentum", "nesterov", "weight_decay",
            "grad_clip", "label_smoothing",
        ),
        "run": ("seed", "device", "amp", "compile", "sync_bn", "progress", "plot", *RUN_OPTIONS),
    }
    # fmt: on

    RANGES = ImageData.RANGES | {
        "valid_portion": "[0, 1)",
        "workers": "[1, inf)",
        "image_size": "[1, inf)",
        "init_channels": "[1, inf)",
        "layers": "[3, inf)",
        "auxiliary_weight": "[0, inf)",
        "drop_path_prob": "[0, 1)",
        "epochs": "[1, inf)",
        "batch_size": "[1, inf)",
        "lr": "(0, inf)",
        "lr_min": "[0, inf)",
        "lr_gamma": "(0, 1]",
        "momentum": "[0, 1)",
        "weight_decay": "[0, inf)",
        "grad_clip": "(0, inf)",
        "label_smoothing": "[0, 1)",
        "seed": "[0, inf)",
    }

    def validate(self) -> TrainConfig:
        from .network import NETWORKS  # imported here so that importing this module needs no torch

        if self.net not in NETWORKS:
            raise ConfigError(f"net: unknown layout {self.net!r}; available: {', '.join(NETWORKS)}")
        for name, allowed in (("lr_schedule", LR_SCHEDULES), ("data_loader", DATA_LOADERS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}: unknown value {getattr(self, name)!r}; available: {', '.join(allowed)}")
        if not 0.0 <= self.valid_portion < 1.0:
            raise ConfigError(f"valid_portion must lie in [0, 1), got {self.valid_portion}")
        if not 0.0 <= self.drop_path_prob < 1.0:
            raise ConfigError(f"drop_path_prob must lie in [0, 1), got {self.drop_path_prob}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(
                f"grad_clip must be a positive gradient norm, or null for no clipping; got {self.grad_clip}"
            )
        if self.nesterov and not self.momentum > 0:
            raise ConfigError(
                f"nesterov needs momentum above 0 (got {self.momentum}); set nesterov: false or a momentum"
            )
        _at_least_one(self, "epochs", "batch_size", "init_channels", "workers", "image_size")
        if self.net == "nas-bench-201":
            _check_nb201_network(self)
        else:
            _check_cells(self)
        if self.data_loader == "workers" and self.dataset != "imagefolder":
            raise ConfigError(
                f"data_loader: workers reads image folders; set dataset: imagefolder (got {self.dataset!r}) "
                "or use data_loader: memory"
            )
        check_ranges(self)  # after the checks above: their messages are the more specific
        self.check_data()
        return self


def _check_skip_cap(config: SearchConfig) -> None:
    """P-DARTS's skip cap, a derivation setting (the search units check their own: methods/search/)."""
    value = config.skip_cap
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ConfigError(f"skip_cap must be a whole number of at least 0, or null; got {value}")


def _at_least_one(config, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be at least 1, got {getattr(config, name)}")


def _check_cells(config) -> None:
    """What the DARTS network layout needs of any config that builds one."""
    if config.layers < 3:
        raise ConfigError(f"layers must be at least 3 (two of them are reduction cells), got {config.layers}")
    if config.init_channels % 2:
        raise ConfigError(f"init_channels must be even (factorized reduction halves it), got {config.init_channels}")


def _check_nb201_network(config: TrainConfig) -> None:
    """What NAS-Bench-201's network needs: three stages of N cells, and no auxiliary head or drop path (its
    benchmark trains without them and nb201/model.py's Network201 has neither). Every conflict in one message."""
    fixes = []
    if config.layers < 3 or config.layers % 3:
        fixes.append(
            f"layers: a positive multiple of 3, three stages of N cells (the benchmark's 15), not {config.layers}"
        )
    if config.auxiliary:
        fixes.append("auxiliary: false (the network has no auxiliary head)")
    if config.drop_path_prob:
        fixes.append(f"drop_path_prob: 0 (the benchmark trains without drop path), not {config.drop_path_prob}")
    if fixes:
        raise ConfigError(
            "net: nas-bench-201 needs " + "; ".join(fixes) + ". Set them (--set key=value), or start "
            "from the benchmark's recipe: --config nb201"
        )


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> SearchConfig:
    """The search config: defaults, then the YAML file (a path or a shipped name), then overrides."""
    return load_dataclass(SearchConfig, path, overrides)


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """The training config: defaults, then the YAML file (a path or a shipped name), then overrides."""
    return load_dataclass(TrainConfig, path, overrides, TRAIN_CONFIG_DIR, "training config")
