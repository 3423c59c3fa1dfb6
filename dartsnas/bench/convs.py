"""`dartsnas bench conv`: forward + backward time of the search's depthwise convolutions, per formulation.

The depthwise convs of sep_conv and dil_conv dominate a search step's backward on CPU. This times
each one the supernet runs (3x3 and 5x5, dilation 1 and 2, stride 1 and 2, at the shape it has in the
paper's search network) in the formulations one could choose, with gradients of input and weight:

- `nchw`: nn.functional.conv2d in the default memory format;
- `channels-last`: the same in channels-last (the search's format);
- `subsample`: stride = dilation = d as an undilated conv on every d-th pixel (kernels.Conv2d);
- `phase split`: dilation 2 at stride 1 as an undilated conv on the four pixel phases folded into
  channels (pixel_unshuffle), then unfolded;
- `transposed`: dilation 2 at stride 1 in channels-last, the input gradient computed as a forward conv
  with the transposed kernel (kernels._SameConv, what kernels.Conv2d does on CPU).

What kernels.py uses is what this measured fastest (docs/benchmarks.md).
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.nn import functional as F

from ..conv.kernels import Conv2d, _SameConv

# (kernel, dilation, stride, channels, input resolution) of the depthwise convs in the paper's search
# network (C=16, 32x32 inputs): normal cells at 32, 16 and 8 pixels, reduction edges halving 32 and 16.
SHAPES = [(k, d, 1, c, r) for c, r in ((16, 32), (32, 16), (64, 8)) for k in (3, 5) for d in (1, 2)] + [
    (k, d, 2, c, r) for c, r in ((32, 32), (64, 16)) for k in (3, 5) for d in (1, 2)
]


def _formulations(kernel, dilation, stride, channels):
    padding = dilation * (kernel - 1) // 2
    native = lambda x, w: F.conv2d(x, w, None, stride, padding, dilation, channels)  # noqa: E731
    out = {"nchw": (native, torch.contiguous_format), "channels-last": (native, torch.channels_last)}
    if stride == dilation > 1:
        conv = Conv2d(channels, channels, kernel, stride, padding, dilation, channels, bias=False)
        out["subsample"] = (lambda x, w: conv.forward_subsampled(x, w), torch.channels_last)
    if stride == 1 and dilation == 2:

        def phases(x, w):
            y = F.conv2d(
                F.pixel_unshuffle(x, 2), w.repeat_interleave(4, dim=0), None, 1, (kernel - 1) // 2, 1, 4 * channels
            )
            return F.pixel_shuffle(y, 2)

        out["phase split"] = (phases, torch.channels_last)
        out["transposed"] = (
            lambda x, w: _SameConv.apply(x, w, (padding, padding), (dilation, dilation), channels),
            torch.channels_last,
        )
    return out


def time_conv(fn, fmt, batch, channels, resolution, kernel, device, steps, warmup) -> float:
    """Median seconds of forward + backward (input and weight gradients) of `fn` in memory format `fmt`."""
    g = torch.Generator(device).manual_seed(0)
    # A few distinct inputs, so that the timing is not of data left hot in the cache by the last call.
    xs = [
        torch.randn(batch, channels, resolution, resolution, generator=g, device=device)
        .contiguous(memory_format=fmt)
        .requires_grad_()
        for _ in range(4)
    ]
    w = torch.randn(channels, 1, kernel, kernel, generator=g, device=device).contiguous(memory_format=fmt)
    w.requires_grad_()
    times = []
    for i in range(warmup + steps):
        x = xs[i % len(xs)]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        y = fn(x, w)
        torch.autograd.grad(y, [x, w], torch.ones_like(y))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:])


def conv(args) -> list[dict]:
    import json

    from ..core.device import resolve_device

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    names = ["nchw", "channels-last", "subsample", "phase split", "transposed"]
    if not args.json:
        print(f"forward + backward (input and weight gradients), median of {args.steps} after {args.warmup}, {device}")
        print("| conv | stride | batch x C x H x W | " + " | ".join(f"{n} (ms)" for n in names) + " | fastest |")
        print("|---|---:|---|" + "---:|" * len(names) + "---|")
    for batch in args.batch:
        for kernel, dilation, stride, channels, resolution in SHAPES:
            times = {
                name: time_conv(fn, fmt, batch, channels, resolution, kernel, device, args.steps, args.warmup)
                for name, (fn, fmt) in _formulations(kernel, dilation, stride, channels).items()
            }
            best = min(times, key=times.get)
            rows.append(
                {
                    "kernel": kernel,
                    "dilation": dilation,
                    "stride": stride,
                    "batch_size": batch,
                    "channels": channels,
                    "resolution": resolution,
                    "seconds": times,
                    "fastest": best,
                }
            )
            if not args.json:
                label = f"{kernel}x{kernel}" + (f" dilation {dilation}" if dilation > 1 else "")
                cells = [f"{1e3 * times[n]:.2f}" if n in times else "" for n in names]
                print(
                    f"| {label} | {stride} | {batch} x {channels} x {resolution} x {resolution} | "
                    + " | ".join(cells)
                    + f" | {best} |",
                    flush=True,
                )
    if args.json:
        print(json.dumps(rows, indent=1))
    return rows


def add_parser(what) -> None:
    """`dartsnas bench conv`, under `what`: the subcommands of `dartsnas bench`."""
    from .search_step import timing_arguments

    c = what.add_parser("conv", help="the search's depthwise convs, timed per formulation")
    c.add_argument("--batch", type=int, nargs="+", default=[64])
    timing_arguments(c, "measured runs per conv (median reported)")
    c.set_defaults(func=conv)
