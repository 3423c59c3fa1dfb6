"""The process group a run is one rank of, when `torchrun` started it (torch.distributed; nccl on GPUs,
gloo on CPU), and what the ranks must agree on.

Every rank runs the same search or training on its shard of each global batch: the batch order and every
random draw of the method (augmentation, a sampling relaxation's architecture, a recurrent model's dropout
masks) come from generators seeded alike on every rank, so each rank makes the whole global batch and keeps
its slice (`shard`). Weight gradients are averaged by DistributedDataParallel; architecture gradients, which
the architecture step computes with `torch.autograd.grad` at weights of its own (Eq. 7-8), by `average`.
Rank 0 alone writes the run folder, logs and draws the progress bar.

Without torchrun (no WORLD_SIZE in the environment) this is one process of a world of one, and every
function here is the identity or a no-op.
"""

from __future__ import annotations

import datetime
import importlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .config import ConfigError


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    wrapped: bool = False  # in a process group: the network runs under DistributedDataParallel (even alone)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


WORLD = World()


def world() -> World:
    return WORLD


def launched() -> bool:
    """Started by torchrun (or another launcher that sets WORLD_SIZE) with more than one process; or with one,
    when DARTSNAS_DDP=1 asks for the wrapper anyway (to measure what DistributedDataParallel itself costs)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return size > 1 or ("WORLD_SIZE" in os.environ and os.environ.get("DARTSNAS_DDP") == "1")


def start(device_name: str) -> tuple[World, torch.device]:
    """Join the process group torchrun set up (once per process) and pick this rank's device:
    cuda:LOCAL_RANK for `auto` or `cuda` when there are GPUs (nccl), else the CPU (gloo)."""
    from .device import resolve_device

    if not launched():
        return WORLD, resolve_device(device_name)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        if device_name in ("auto", "cuda"):
            device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # torch._dynamo (which the first optimizer imports) keeps references to a process group that exists
        # when it is imported; destroy_process_group then cannot free that group, and gloo's threads are torn
        # down while the interpreter exits, now and then aborting the process ("terminate called without an
        # active exception") after a finished run. Imported first, it holds none: stop() frees the group.
        # (importlib, not `import torch._dynamo`: that statement would make `torch` a local name of this
        # function, unbound on the CUDA path above.)
        importlib.import_module("torch._dynamo")
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=int(os.environ.get("DARTSNAS_DIST_TIMEOUT", 30))),
        )
    WORLD.rank, WORLD.size, WORLD.local_rank = dist.get_rank(), dist.get_world_size(), local
    WORLD.wrapped = True
    return WORLD, device


def describe() -> str:
    """How the run is spread, for its first log line ('' for one plain process)."""
    if not WORLD.wrapped:
        return ""
    return f", {WORLD.size} rank{'s' * (WORLD.size > 1)} (torch.distributed, {dist.get_backend()})"


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
    WORLD.rank, WORLD.size, WORLD.local_rank, WORLD.wrapped = 0, 1, 0, False


def check_batch(batch_size: int, what: str = "batch_size") -> int:
    """The per-rank batch: the global batch split evenly over the ranks."""
    if batch_size % WORLD.size:
        raise ConfigError(
            f"{what}={batch_size} is the global batch; it must split evenly over the {WORLD.size} "
            f"ranks: use a multiple of {WORLD.size}"
        )
    return batch_size // WORLD.size


def shard(t: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """This rank's slice of a global batch (the identity in a world of one)."""
    if not WORLD.distributed:
        return t
    chunks = t.chunk(WORLD.size, dim)
    return chunks[WORLD.rank] if WORLD.rank < len(chunks) else t.narrow(dim, 0, 0)  # fewer rows than ranks


def average(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The tensors averaged over the ranks, in one all-reduce of one flat buffer (identity alone)."""
    if not WORLD.distributed or not tensors:
        return tensors
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= WORLD.size
    return [chunk.view_as(t) for chunk, t in zip(flat.split([t.numel() for t in tensors]), tensors)]


def total(t: torch.Tensor) -> torch.Tensor:
    """A copy of `t` summed over the ranks (metrics' sums)."""
    if not WORLD.distributed:
        return t
    out = t.clone()
    dist.all_reduce(out)
    return out


def any_rank(flag: bool) -> bool:
    """Whether `flag` holds on any rank (a bad value seen): all ranks act together."""
    return agree(flag)[0]


def minimum(t: torch.Tensor) -> torch.Tensor:
    if not WORLD.distributed:
        return t
    out = t.clone()
    dist.all_reduce(out, op=dist.ReduceOp.MIN)
    return out


def broadcast_object(value):
    """Rank 0's `value` on every rank (the run folder's path)."""
    if not WORLD.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_(tensors) -> None:
    """Overwrite every rank's tensors with rank 0's (batch-norm statistics before an evaluation)."""
    if WORLD.distributed:
        for t in tensors:
            dist.broadcast(t, src=0)


def check_identical(named: dict[str, torch.Tensor]) -> None:
    """Raise if any tensor differs from rank 0's: the alphas must never drift apart."""
    if not WORLD.distributed:
        return
    for name, t in named.items():
        reference = t.detach().clone()
        dist.broadcast(reference, src=0)
        if not torch.equal(reference, t.detach()):
            gap = (reference - t.detach()).abs().max().item()
            raise RuntimeError(
                f"the alphas {name!r} of rank {WORLD.rank} differ from rank 0's (max |difference| "
                f"{gap:.3g}): the ranks no longer search the same architecture. This is a bug in "
                "dartsnas; please report it with the run folder"
            )


def agree(*flags: bool) -> tuple[bool, ...]:
    """Each flag true on any rank, in one all-reduce (the flags themselves alone)."""
    if not WORLD.distributed:
        return flags
    t = torch.tensor([float(f) for f in flags], device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in t.tolist())


def gather_object(value) -> list:
    """Every rank's `value`, in rank order, on every rank."""
    if not WORLD.distributed:
        return [value]
    out = [None] * WORLD.size
    dist.all_gather_object(out, value)
    return out


def _device() -> torch.device:
    """Where collectives of small tensors go: the GPU with nccl, the CPU with gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def average_grads(params) -> None:
    """Average the parameters' gradients over the ranks in place (where no DistributedDataParallel wraps the
    network: the recurrent models, whose passes are not their forward())."""
    if WORLD.distributed:
        grads = [p.grad for p in params if p.grad is not None]
        for g, mean in zip(grads, average(grads)):
            g.copy_(mean)


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """The global batch's tensor from every rank's rows (a checkpoint's hidden states), rank order."""
    if not WORLD.distributed:
        return t
    parts = [torch.empty_like(t) for _ in range(WORLD.size)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)
