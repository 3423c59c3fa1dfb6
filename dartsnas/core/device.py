"""Where a run computes (`--device`), in which memory layout, and how much memory it took there."""

from __future__ import annotations

import resource

import torch

from .config import ConfigError


def resolve_device(name: str) -> torch.device:
    """cpu, cuda, cuda:N, or auto (cuda when available); an unusable name is a ConfigError that says why."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} asked for, but this PyTorch sees no CUDA GPU "
            f"(torch {torch.__version__}); use --device cpu or install a CUDA build of torch"
        )
    return device


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """The layout `x` is dense in: channels-last for an NHWC image batch, else the default."""
    return (
        torch.channels_last
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format
    )


class OutOfMemory(RuntimeError):
    """A run that ran out of memory; the message gives the peak seen and the settings that should fit."""


def peak_memory_gb(device: torch.device) -> float:
    """Peak memory so far: allocated GPU memory on CUDA, resident memory of the process on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB
