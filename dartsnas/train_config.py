"""Training settings: one typed dataclass with the paper's CIFAR-10 evaluation defaults (Sec. 3.3, A.2).

The ImageNet protocol and the quick CPU run are shipped YAML files in `dartsnas/configs/train/`
(`imagenet`, `quick`; `cifar10` restates the defaults). YAML files and `--set key=value` override
fields, unknown keys are errors that suggest the closest field, as for the search (config.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError, check_keys, coerce, load_dataclass, resolve_config_path, save_config

TRAIN_CONFIG_DIR = Path(__file__).parent / "configs" / "train"
LR_SCHEDULES = ("cosine", "step")
DATA_LOADERS = ("memory", "workers")


@dataclass
class TrainConfig:
    # data
    dataset: str = "cifar10"            # a name from data.DATASETS
    data_dir: str | None = None         # where the dataset lies; None: the default places (see README)
    download: bool = False              # fetch the official files (checksummed) when missing
    data_options: dict = field(default_factory=dict)  # dataset-specific options (e.g. imagefolder size)
    subset: int | None = None           # use only the first N training images (quick runs, tests)
    valid_portion: float = 0.1          # share of the training set held out to pick the best epoch; 0: none
    cutout: bool = True                 # cutout (DeVries & Taylor 2017), as the paper's CIFAR evaluation
    cutout_length: int = 16
    crop_padding: int | None = None     # random-crop padding in pixels; None: 4 for 32x32 and larger, else 0
    flip: bool | None = None            # horizontal flips; None: on for colour images, off for grey ones
    data_loader: str = "memory"         # memory: whole split on the device; workers: image folders decoded by DataLoader workers
    workers: int = 8                    # DataLoader worker processes (data_loader: workers)
    image_size: int = 224               # crop side of the workers loader (ImageNet: 224)
    # network
    net: str = "cifar10"                # layout: cifar10 (stem keeps the resolution) or imagenet (stem divides by 8)
    init_channels: int = 36             # C of the first cell (paper: 36 CIFAR, 48 ImageNet)
    layers: int = 20                    # cells (paper: 20 CIFAR, 14 ImageNet)
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
    weight_decay: float = 3e-4
    grad_clip: float = 5.0              # max gradient norm
    label_smoothing: float = 0.0        # 0.1 for ImageNet
    # run
    seed: int = 0
    device: str = "auto"                # cpu, cuda, cuda:N, or auto (cuda when available)
    deterministic: bool = False         # deterministic kernels on CUDA (slower); CPU runs are anyway
    channels_last: bool = True          # NHWC memory format: faster depthwise convs on CPU and GPU
    amp: bool = False                   # bfloat16 autocast (meant for CUDA; on CPU it runs, mostly slower)
    compile: bool = False               # torch.compile the network
    progress: bool = True               # a progress bar on the terminal
    plot: bool = True                   # draw the cells and the curves at the end (needs the plot extra)

    def validate(self) -> "TrainConfig":
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
        for name in ("epochs", "batch_size", "init_channels", "workers", "image_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.layers < 3:
            raise ConfigError(f"layers must be at least 3 (two of them are reduction cells), got {self.layers}")
        if self.init_channels % 2:
            raise ConfigError(f"init_channels must be even (factorized reduction halves it), got {self.init_channels}")
        if self.data_loader == "workers" and self.dataset != "imagefolder":
            raise ConfigError(f"data_loader: workers reads image folders; set dataset: imagefolder (got {self.dataset!r}) "
                              "or use data_loader: memory")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# Loading: the rules of config.py (`load_dataclass`), with the shipped training configs.

# (rnn_config imports these two names.)
_check_keys, _coerce = check_keys, coerce


def resolve_train_config_path(name: str | Path) -> Path:
    return resolve_config_path(name, TRAIN_CONFIG_DIR, "training config")


def load_train_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file, then `key=value` overrides (values read as YAML: 3, 0.1, true, [a, b])."""
    return load_dataclass(TrainConfig, path, overrides, TRAIN_CONFIG_DIR, "training config")


def save_train_config(config: TrainConfig, path: Path) -> None:
    save_config(config, path)
