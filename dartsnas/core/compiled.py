"""torch.compile for the search network: fewer, larger kernels and, on CUDA, CUDA graphs.

A search step is thousands of small kernels (cells x edges x candidates, forward and backward, in both
steps), so on a GPU it waits on kernel launches and Python, not on arithmetic. Compiling the supernet's
forward (`module.compile`, in place) fuses it, and torch.compile's `reduce-overhead` mode replays the fused
kernels as CUDA graphs (cudagraph trees, which also capture the backward). Every pass of the search goes
through the compiled forward: the weight step, the architecture step's evaluations at other weights
(`torch.func.functional_call`, so the virtual step of second order too) and the evaluation. Each distinct
pass compiles once (a few graphs: the architecture step sees weights as plain tensors, the weight step as
parameters); the time it takes is reported, and a resumed run pays it again.

`lean` compiles too: its hand-written backward (conv/lean.py) cannot be traced, so under the compiler each
mixed op's candidates form a checkpointed region (torch.utils.checkpoint) and the compiler recomputes them
in backward instead of saving them (conv/supernet.py, MixedOp.forward). Graphs are static: every cell
shape and kind of pass compiles its own, which CUDA graphs need anyway.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ConfigError

MODES = ("auto", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
# cells: each cell's forward, smaller graphs, the cells of one shape sharing theirs; network: the whole forward,
# one graph per kind of pass (the fewest launches). Which compiles and runs faster on a GPU is to be measured
# (benchmarks/gpu.sh check); on the CPU host both took about 8 minutes for a 3-cell network (docs/benchmarks.md).
SCOPES = ("cells", "network")
# Graphs one compiled module may need: 3 kinds of pass, 2 more for second order, and room for a last,
# smaller evaluation batch of each.
PASSES = 8


def check(mode: str, backend: str, scope: str = "cells") -> None:
    """Refuse a mode, scope or backend torch.compile does not know before anything runs (whether the relaxation
    compiles at all is the relaxation's to say: Relaxation.compiles)."""
    if scope not in SCOPES:
        raise ConfigError(f"compile_scope: unknown {scope!r}; available: {', '.join(SCOPES)}")
    if mode not in MODES:
        raise ConfigError(
            f"compile_mode: unknown {mode!r}; available: {', '.join(MODES)} (auto: reduce-overhead, "
            "which replays CUDA graphs, on CUDA; default elsewhere)"
        )
    import torch._dynamo

    known = torch._dynamo.list_backends(exclude_tags=())
    if backend not in known:
        main = [b for b in ("inductor", "cudagraphs", "aot_eager", "eager") if b in known]
        raise ConfigError(
            f"compile_backend: unknown {backend!r}; use {', '.join(main)} (inductor generates kernels; "
            "aot_eager only traces, to tell a tracing problem from a code-generation one), or another "
            "of torch._dynamo.list_backends(exclude_tags=())"
        )


def resolved_mode(mode: str, device: torch.device) -> str:
    """`auto`: CUDA graphs on CUDA (what removes the launch overhead); the plain mode elsewhere, where
    torch.compile has no graphs to replay."""
    if mode == "auto":
        return "reduce-overhead" if device.type == "cuda" else "default"
    return mode


def compile_network(network: nn.Module, device: torch.device, mode: str, backend: str, scope: str = "cells") -> str:
    """Compile the search network's cells or its whole forward in place (parameters, state dict and
    checkpoints stay the plain module's); returns the mode used. Modes only apply to inductor."""
    import torch._dynamo

    mode = resolved_mode(mode, device)
    options = {"mode": mode, "backend": backend} if backend == "inductor" else {"backend": backend}
    modules = network.cells if scope == "cells" else [network]
    # The cells share one forward (one code object), and nearly every cell has its own shapes; each shape
    # compiles a graph per kind of pass (architecture step, weight step, evaluation; second order two more).
    # Past the recompile limit (8 by default) TorchDynamo would silently leave the remaining cells eager.
    limit = PASSES * len(modules)
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, limit)
    torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit, limit)
    for module in modules:
        module.compile(dynamic=False, **options)
    return mode


def compile_seconds() -> float:
    """Wall seconds this process has spent compiling so far (forward and backward graphs)."""
    from torch._dynamo.utils import calculate_time_spent

    return float(calculate_time_spent().get("total_wall_time", 0.0))
