"""Memory of a search before it runs, and advice when it does not fit.

The dominant term of a search step's memory is what autograd keeps for the backward pass. It is
measured, not guessed: one training forward at a small probe batch runs under
`torch.autograd.graph.saved_tensors_hooks`, which sees every tensor saved for backward (the lean mode's
own saved inputs included); their distinct storages, minus the parameters, scaled linearly to the
batch, give the activations. Weights, gradients, optimiser state and (second order) the copies of the
weights the virtual step makes are added, with the allocator's transient headroom as a factor measured
against `dartsnas bench search-step` (docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses

import os

import torch

from ..methods.relaxations import RELAXATIONS, unit_class

PROBE_BATCH = 4
# Peak over (kept activations + weight state), calibrated against `dartsnas bench search-step` at the
# paper setting on CPU (docs/benchmarks.md): the backward's transient buffers and the allocator's slack.
# Each relaxation says its own (Relaxation.memory_headroom): lean's transient buffers dominate what it keeps.


def saved_activation_bytes(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes that autograd keeps for backward in one training forward of `model` on `x` (params excluded)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen.setdefault(storage.data_ptr(), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for ptr, n in seen.items() if ptr not in params)


def estimate_bytes(
    config, in_channels: int, num_classes: int, size: tuple[int, int], device: torch.device, mode: str | None = None
) -> int:
    """Expected peak bytes of one search step for `config` (or `mode` instead of its mixed_op) at its batch size.

    Builds a probe supernet on the device without touching the global random state, and excludes the
    memory the process holds already (runtime, data).
    """
    from .supernets import search_network

    mode = mode or config.mixed_op
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        probe = dataclasses.replace(config, mixed_op=mode, sample_grad="straight_through")
        model = search_network(probe, in_channels, num_classes).to(device)
        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        model.to(memory_format=memory_format)
        x = torch.randn(PROBE_BATCH, in_channels, *size, device=device).contiguous(memory_format=memory_format)
        activations = saved_activation_bytes(model, x) / PROBE_BATCH * config.batch_size
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
    # weights + gradients + momentum; second order adds w', the HVP direction and w +- eps v.
    weight_state = weights * (3 + (3 if config.unrolled else 0))
    return int(unit_class(mode).memory_headroom * (activations + weight_state))


def available_bytes(device: torch.device) -> int:
    """Memory this process could still take: free GPU memory, or available RAM on CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def held_bytes(device: torch.device) -> int:
    """Memory the process holds now: allocated GPU memory, or resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def fitting_settings(
    config, in_channels: int, num_classes: int, size: tuple[int, int], device: torch.device, budget: int
) -> list[tuple[str, int, float]]:
    """(mode, batch size, GB) that should fit in `budget` bytes: each mode at this batch size if it
    fits, else at the largest batch size that does."""
    out = []
    for mode in RELAXATIONS:
        if mode == "partial" and config.init_channels % (2 * config.partial_k):
            continue
        need = estimate_bytes(config, in_channels, num_classes, size, device, mode)
        batch = min(config.batch_size, int(budget * config.batch_size / need))
        if batch >= 1:
            out.append((mode, batch, need * batch / config.batch_size / 2**30))
    return out


def advice(config, in_channels: int, num_classes: int, size: tuple[int, int], device: torch.device, budget: int) -> str:
    """One sentence naming the settings that should fit in `budget` bytes."""
    options = [
        (m, b, gb)
        for m, b, gb in fitting_settings(config, in_channels, num_classes, size, device, budget)
        if (m, b) != (config.mixed_op, config.batch_size)
    ]
    if not options:
        return "no mode fits even at batch size 1: use fewer cells (layers) or channels (init_channels)"
    parts = [
        f"--set mixed_op={m}" + (f" --set batch_size={b}" if b != config.batch_size else "") + f" (about {gb:.2f} GB)"
        for m, b, gb in options
    ]
    return f"settings that should fit in {budget / 2**30:.2f} GB: " + "; ".join(parts)
