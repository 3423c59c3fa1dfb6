"""The search-step benchmark runs each setting in a fresh process and reports time, memory and ratios."""

import json

import pytest

from dartsnas.bench.search_step import add_ratios, table
from dartsnas.cli import main


@pytest.mark.slow
def test_bench_search_step_reports_time_memory_and_ratios(capsys):
    args = [
        "bench",
        "search-step",
        "--mode",
        "exact",
        "lean",
        "--ops",
        "2",
        "8",
        "--batch",
        "4",
        "--order",
        "first",
        "--init-channels",
        "4",
        "--layers",
        "3",
        "--resolution",
        "8",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--threads",
        "1",
        "--json",
    ]
    assert main(args) == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["mode"], r["ops"]) for r in results] == [("exact", 2), ("lean", 2), ("exact", 8), ("lean", 8)]
    for r in results:
        assert "error" not in r, r
        assert len(r["steps_s"]) == 2 and r["step_s"] > 0
        assert 0.05 < r["peak_gb"] < 8  # a fresh process: torch plus a tiny supernet
        assert 0.05 < r["estimate_gb"] < 8
        exact = results[0 if r["ops"] == 2 else 2]
        assert r["time_vs_exact"] == r["step_s"] / exact["step_s"]
    # The baseline is found by setting, not by position: the measured rows in another order (each lean row
    # now before its exact row, the 8-op group first) get the same ratios.
    measured = [{k: v for k, v in r.items() if "_vs_" not in k} for r in results]
    assert add_ratios([measured[i] for i in (3, 2, 1, 0)]) == [results[i] for i in (3, 2, 1, 0)]
    assert results[3]["memory_vs_2_ops"] == results[3]["peak_gb"] / results[1]["peak_gb"]


@pytest.mark.slow
def test_bench_second_order_and_failures_are_reported(capsys):
    args = [
        "bench",
        "search-step",
        "--mode",
        "lean",
        "partial",
        "--batch",
        "4",
        "--order",
        "second",
        "--init-channels",
        "4",
        "--layers",
        "3",
        "--resolution",
        "8",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| lean | second | 4 | 8 |" in out
    # partial needs init_channels divisible into 4 even parts: the row says why it failed
    assert "| partial | second | 4 | 8 | failed: " in out and "partial_k" in out


@pytest.mark.slow
def test_bench_measures_the_reference_formulation_as_baseline(capsys):
    args = [
        "bench",
        "search-step",
        "--mode",
        "reference",
        "exact",
        "--batch",
        "4",
        "--order",
        "first",
        "second",
        "--init-channels",
        "4",
        "--layers",
        "3",
        "--resolution",
        "8",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--json",
    ]
    assert main(args) == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["mode"], r["order"]) for r in results] == [
        ("reference", "first"),
        ("exact", "first"),
        ("reference", "second"),
        ("exact", "second"),
    ]
    for r in results:
        assert "error" not in r, r
        assert r["step_s"] > 0 and 0.05 < r["peak_gb"] < 8
    reference, exact = results[2], results[3]
    assert exact["time_vs_reference"] == exact["step_s"] / reference["step_s"]
    assert exact["memory_vs_reference"] == exact["peak_gb"] / reference["peak_gb"]
    assert "time_vs_exact" in reference and "estimate_gb" not in reference


def test_ratio_table_is_markdown():
    rows = add_ratios(
        [
            {
                "mode": "exact",
                "order": "first",
                "batch_size": 64,
                "ops": 2,
                "step_s": 2.0,
                "peak_gb": 2.0,
                "steps_s": [2.0],
            },
            {
                "mode": "exact",
                "order": "first",
                "batch_size": 64,
                "ops": 8,
                "step_s": 4.0,
                "peak_gb": 8.0,
                "steps_s": [4.0],
            },
            {
                "mode": "lean",
                "order": "first",
                "batch_size": 64,
                "ops": 8,
                "step_s": 5.0,
                "peak_gb": 1.0,
                "steps_s": [5.0],
            },
        ]
    )
    text = table(rows)
    assert "| lean | first | 64 | 8 | 5.000 | 1.00 | 1.25x | 0.12x |  |  |" in text
    assert "| exact | first | 64 | 8 | 4.000 | 8.00 | 1.00x | 1.00x | 4.00x |  |" in text
    rows.append(
        {
            "mode": "reference",
            "order": "first",
            "batch_size": 64,
            "ops": 8,
            "step_s": 10.0,
            "peak_gb": 9.0,
            "steps_s": [10.0],
        }
    )
    text = table(add_ratios(rows))
    assert (
        "| mode | order | batch | ops | step (s) | peak (GB) | time / exact | memory / exact | time / reference "
        "| memory / reference | memory / fewest ops | estimated (GB) |" in text
    )
    assert "| lean | first | 64 | 8 | 5.000 | 1.00 | 1.25x | 0.12x | 0.50x | 0.11x |  |  |" in text


def test_compiled_rows_are_set_against_the_same_mode_eager_and_baselines_stay_eager():
    row = {"order": "first", "batch_size": 64, "ops": 8, "steps_s": [1.0]}
    rows = add_ratios(
        [
            {**row, "mode": "exact", "step_s": 1.0, "peak_gb": 4.0},
            {**row, "mode": "exact", "compile": True, "step_s": 0.25, "peak_gb": 3.0, "compile_s": 120.0},
            {**row, "mode": "partial", "step_s": 0.8, "peak_gb": 1.0},
            {**row, "mode": "partial", "compile": True, "step_s": 0.1, "peak_gb": 1.0, "compile_s": 90.0},
        ]
    )
    assert rows[1]["time_vs_eager"] == 0.25 and rows[1]["time_vs_exact"] == 0.25  # against eager exact
    assert rows[3]["time_vs_eager"] == 0.125 and rows[3]["time_vs_exact"] == 0.1
    assert "time_vs_eager" not in rows[0] and "memory_vs_8_ops" not in rows[1]
    text = table(rows)
    assert "| time / eager | memory / fewest ops | estimated (GB) | compiling (s) |" in text
    assert "| partial compiled | first | 64 | 8 | 0.100 | 1.00 | 0.10x | 0.25x | 0.12x |  |  | 90.0 |" in text


def test_bench_search_step_skips_what_cannot_compile(capsys):
    args = [
        "bench",
        "search-step",
        "--mode",
        "reference",
        "sample",
        "--compile",
        "off",
        "on",
        "--batch",
        "2",
        "--init-channels",
        "4",
        "--layers",
        "3",
        "--resolution",
        "8",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--json",
    ]
    assert main(args) == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["mode"], r["compile"]) for r in results] == [("reference", False), ("sample", False)]


@pytest.mark.slow
def test_bench_search_step_times_a_compiled_step_against_eager(capsys):
    # aot_eager: the compiled path of the benchmark without minutes of code generation on CPU.
    args = [
        "bench",
        "search-step",
        "--mode",
        "exact",
        "--ops",
        "2",
        "--compile",
        "off",
        "on",
        "--compile-backend",
        "aot_eager",
        "--batch",
        "2",
        "--init-channels",
        "4",
        "--layers",
        "3",
        "--resolution",
        "8",
        "--steps",
        "1",
        "--json",
    ]
    assert main(args) == 0
    eager, compiled = json.loads(capsys.readouterr().out)
    assert "error" not in compiled, compiled
    assert compiled["compile"] and compiled["warmup"] == 3 and compiled["compile_s"] > 0
    assert compiled["time_vs_eager"] == compiled["step_s"] / eager["step_s"]


def test_bench_conv_times_every_formulation_of_every_depthwise_conv(capsys):
    from dartsnas.bench.convs import SHAPES

    assert main(["bench", "conv", "--batch", "2", "--steps", "1", "--warmup", "0", "--threads", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["kernel"], r["dilation"], r["stride"], r["channels"], r["resolution"]) for r in rows] == SHAPES
    for r in rows:
        expected = (
            {"nchw", "channels-last"}
            | ({"subsample"} if r["stride"] == r["dilation"] > 1 else set())
            | ({"phase split", "transposed"} if (r["stride"], r["dilation"]) == (1, 2) else set())
        )
        assert set(r["seconds"]) == expected and all(t > 0 for t in r["seconds"].values())
        assert r["fastest"] == min(r["seconds"], key=r["seconds"].get)


def test_every_conv_formulation_computes_the_same_conv():
    import torch

    from dartsnas.bench.convs import SHAPES, _formulations

    for kernel, dilation, stride, channels, _ in SHAPES:
        x = torch.randn(2, channels, 8, 8, dtype=torch.float64)
        w = torch.randn(channels, 1, kernel, kernel, dtype=torch.float64, requires_grad=True)
        results = []
        for fn, fmt in _formulations(kernel, dilation, stride, channels).values():
            xf = x.contiguous(memory_format=fmt).requires_grad_()
            out = fn(xf, w)
            results.append([out, *torch.autograd.grad(out, [xf, w], torch.ones_like(out))])  # value, d/dx, d/dw
        for result in results[1:]:
            for a, b in zip(result, results[0]):
                torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
