"""The search-step benchmark runs each setting in a fresh process and reports time and memory."""

import json

from dartsnas.cli import main


def test_bench_search_step_reports_time_and_memory(capsys):
    args = ["bench", "search-step", "--mode", "lean", "--batch", "4", "--order", "first", "second", "--init-channels", "4",
            "--layers", "3", "--resolution", "8", "--steps", "2", "--warmup", "1", "--threads", "1", "--json"]
    assert main(args) == 0
    results = json.loads(capsys.readouterr().out)
    assert [(r["mode"], r["order"]) for r in results] == [("lean", "first"), ("lean", "second")]
    for r in results:
        assert "error" not in r, r
        assert len(r["steps_s"]) == 2 and r["step_s"] > 0
        assert 0.05 < r["peak_gb"] < 8  # a fresh process: torch plus a tiny supernet
