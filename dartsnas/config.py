"""Search settings: one typed dataclass holds every default (the paper's, Sec. 3.1.1 and A.1.1).

YAML files and `--set key=value` override fields; an unknown key is an error that suggests the
closest field. Shipped configs live in `dartsnas/configs/` and can be named without a path.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
import types
import typing
from typing import Any, Union

import yaml

from .spaces import DARTS_OPS, MIXED_OPS, TEMPERATURE_SCHEDULES

CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A config the user wrote that cannot be used; the message names the key and the fix."""


@dataclass
class SearchConfig:
    # data
    dataset: str = "cifar10"            # a name from data.DATASETS
    data_dir: str | None = None         # where the dataset lies; None: the default places (see README)
    download: bool = False              # fetch the official files (checksummed) when missing
    data_options: dict = field(default_factory=dict)  # dataset-specific options (e.g. imagefolder size)
    subset: int | None = None           # use only the first N training images (quick runs, tests)
    train_portion: float = 0.5          # share of the training set for the weights; the rest tunes alphas
    cutout: bool = False                # the official search uses no cutout
    cutout_length: int = 16
    crop_padding: int | None = None     # random-crop padding in pixels; None: 4 for 32x32 and larger, else 0
    flip: bool | None = None            # horizontal flips; None: on for colour images, off for grey ones
    # search space
    ops: list[str] = field(default_factory=lambda: list(DARTS_OPS))  # candidate op names from ops.OPS
    nodes: int = 4                      # intermediate nodes per cell
    init_channels: int = 16             # C of the first cell
    layers: int = 8                     # cells
    stem_multiplier: int = 3
    mixed_op: str = "exact"             # exact | lean | partial | sample (see README, "Mixed-op modes")
    partial_k: int = 4                  # partial: 1/K of the channels go through the candidate ops (PC-DARTS)
    temperature: list[float] | None = None  # [start, end] of the relaxation's temperature over the search;
                                        # None: [1, 1] (the paper's softmax), or [10, 0.1] for sample (GDAS)
    temperature_schedule: str = "linear"  # linear | exponential, from start (first epoch) to end (last)
    # weight optimisation (SGD, cosine schedule per epoch)
    epochs: int = 50
    batch_size: int = 64
    lr: float = 0.025                   # learning_rate in the official code
    lr_min: float = 0.001
    momentum: float = 0.9
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
    deterministic: bool = False         # deterministic kernels on CUDA (slower); CPU runs are anyway
    channels_last: bool = True          # NHWC memory format: faster depthwise convs on CPU and GPU
    progress: bool = True               # a progress bar on the terminal
    tensorboard: bool = False           # also log scalars to RUN/tb (needs the tensorboard extra)
    plot: bool = True                   # draw the pictures at the end (needs the plot extra)

    def validate(self) -> "SearchConfig":
        from .ops import OPS  # imported here so that importing this module needs no torch

        unknown = [o for o in self.ops if o not in OPS]
        if unknown:
            raise ConfigError(f"ops: unknown op(s) {unknown}; known ops: {', '.join(OPS)}")
        if len(set(self.ops)) != len(self.ops):
            raise ConfigError(f"ops: {self.ops} lists an op twice")
        if not [o for o in self.ops if o != "none"]:
            raise ConfigError("ops: the candidate set needs at least one op besides 'none'")
        if self.mixed_op not in MIXED_OPS:
            raise ConfigError(f"mixed_op: unknown mode {self.mixed_op!r}; available: {', '.join(MIXED_OPS)}")
        if self.mixed_op == "partial" and (self.partial_k < 1 or self.init_channels % (2 * self.partial_k)):
            raise ConfigError(f"partial_k={self.partial_k} must be at least 1 and divide init_channels="
                              f"{self.init_channels} into parts of an even number of channels; "
                              f"use e.g. partial_k=4 with init_channels a multiple of 8")
        if self.temperature is not None and (len(self.temperature) != 2 or not all(
                isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in self.temperature)):
            raise ConfigError(f"temperature must be two positive numbers [start, end], got {self.temperature}")
        if self.temperature_schedule not in TEMPERATURE_SCHEDULES:
            raise ConfigError(f"temperature_schedule: unknown {self.temperature_schedule!r}; "
                              f"available: {', '.join(TEMPERATURE_SCHEDULES)}")
        if not 0.0 < self.train_portion < 1.0:
            raise ConfigError(f"train_portion must lie strictly between 0 and 1, got {self.train_portion}")
        for name in ("epochs", "batch_size", "init_channels", "layers", "nodes", "stem_multiplier"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.arch_start_epoch < self.epochs:
            raise ConfigError(f"arch_start_epoch must lie in [0, epochs) = [0, {self.epochs}), got {self.arch_start_epoch}")
        if self.layers < 3:
            raise ConfigError(f"layers must be at least 3 (two of them are reduction cells), got {self.layers}")
        if self.init_channels % 2:
            raise ConfigError(f"init_channels must be even (factorized reduction halves it), got {self.init_channels}")
        if len(self.arch_betas) != 2:
            raise ConfigError(f"arch_betas must be two numbers, got {self.arch_betas}")
        return self

    def temperatures(self) -> tuple[float, float]:
        """[start, end] of the relaxation temperature, with the mode's default when unset."""
        if self.temperature is not None:
            return float(self.temperature[0]), float(self.temperature[1])
        return (10.0, 0.1) if self.mixed_op == "sample" else (1.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_keys(cls, keys, where: str) -> None:
    """Every key must be a field of the config dataclass `cls`; else an error naming the closest one."""
    names = [f.name for f in dataclasses.fields(cls)]
    for key in keys:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(names)}"
            raise ConfigError(f"unknown config key {key!r} in {where}{hint}")


def coerce(cls, key: str, value: Any) -> Any:
    """Check a value against the field's declared type (ints become floats where floats are due)."""
    hint = typing.get_type_hints(cls)[key]
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        base = typing.get_origin(kind) or kind
        if isinstance(value, bool) != (base is bool):
            continue
        if base is float and isinstance(value, (int, float)):
            return float(value)
        if base is float and isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if base in (int, bool, str, list, dict) and isinstance(value, base):
            return value
    names = " or ".join(getattr(k, "__name__", str(k)) for k in allowed)
    raise ConfigError(f"{key} must be {names}, got {value!r}")


def resolve_config_path(name: str | Path, folder: Path = CONFIG_DIR, what: str = "config") -> Path:
    """A YAML file, or the name of a shipped one in `folder`."""
    path = Path(name)
    if path.exists():
        return path
    shipped = folder / f"{name}.yaml"
    if shipped.exists():
        return shipped
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    raise ConfigError(f"{what} {str(name)!r} is neither a file nor a shipped one; shipped: {', '.join(names)}")


def load_dataclass(cls, path: str | Path | None = None, overrides: list[str] | None = None,
                   folder: Path = CONFIG_DIR, what: str = "config"):
    """Defaults of `cls`, then the YAML file, then `key=value` overrides (values read as YAML: 3, 0.1, true, [a, b])."""
    values: dict[str, Any] = {}
    if path is not None:
        source = resolve_config_path(path, folder, what)
        try:
            loaded = yaml.safe_load(source.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{source} is not valid YAML: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source} must hold a mapping of config keys, got {type(loaded).__name__}")
        check_keys(cls, loaded, str(source))
        values.update(loaded)
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: write it as key=value, e.g. --set epochs=10")
        key = key.strip()
        check_keys(cls, [key], "--set")
        try:
            values[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            values[key] = raw
    return cls(**{k: coerce(cls, k, v) for k, v in values.items()}).validate()


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> SearchConfig:
    """The search config: defaults, then the YAML file (a path or a shipped name), then overrides."""
    return load_dataclass(SearchConfig, path, overrides)


def save_config(config, path: Path) -> None:
    """Any config dataclass as YAML (what `load_dataclass` reads back)."""
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
