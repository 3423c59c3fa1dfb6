"""Pictures drawn from a run folder: every file appears and is a real image; missing inputs are skipped."""

import json
import logging
import shutil
import sys

import numpy as np
import pytest

from dartsnas.core.genotype import PUBLISHED, Genotype, GenotypeError, edge_names
from dartsnas.core.plot import PlotError, draw_cell, plot_curves, plot_probs, plot_run

OPS = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HAVE_DOT = shutil.which("dot") is not None
EVERY_PICTURE = ["cell_normal.gv", "cell_reduce.gv", "probs.png", "trajectories.png", "curves.png"]
if HAVE_DOT:
    EVERY_PICTURE += ["cell_normal.png", "cell_normal.pdf", "cell_reduce.png", "cell_reduce.pdf"]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def alpha_records(epochs: int, seed: int = 0) -> list[dict]:
    """Epoch 0 (uniform-ish start) and one record per epoch, drifting like a search would, 4 nodes, 14 edges."""
    rng = np.random.default_rng(seed)
    drift = {kind: rng.normal(size=(14, len(OPS))) for kind in ("normal", "reduce")}
    records = []
    for epoch in range(epochs + 1):
        alphas = {kind: 1e-3 * rng.normal(size=d.shape) + 0.4 * epoch * d for kind, d in drift.items()}
        probs = {kind: (np.exp(a) / np.exp(a).sum(1, keepdims=True)).tolist() for kind, a in alphas.items()}
        records.append(
            {
                "epoch": epoch,
                "ops": OPS,
                "edges": edge_names(4),
                "probs": probs,
                "alphas": {kind: a.tolist() for kind, a in alphas.items()},
            }
        )
    return records


def metric_records(epochs: int) -> list[dict]:
    return [
        {
            "epoch": e,
            "train_loss": 2.3 - 0.2 * e,
            "train_acc": 0.1 * e,
            "arch_loss": 2.4 - 0.2 * e,
            "valid_loss": 2.4 - 0.2 * e,
            "valid_acc": 0.09 * e,
            "lr": 0.025,
            "seconds": 12.0,
        }
        for e in range(1, epochs + 1)
    ]


def make_run(run, genotype=PUBLISHED["DARTS_V2"], epochs=3):
    run.mkdir(parents=True, exist_ok=True)
    genotype.save(run / "genotype.json")
    write_jsonl(run / "metrics.jsonl", metric_records(epochs))
    write_jsonl(run / "alphas.jsonl", alpha_records(epochs))
    write_jsonl(run / "genotypes.jsonl", [{"epoch": e, "genotype": genotype.to_dict()} for e in range(1, epochs + 1)])
    return run


@pytest.fixture(scope="module")
def plotted(tmp_path_factory):
    """One full run folder, drawn once (drawing is the slow part), shared by the checks below."""
    run = make_run(tmp_path_factory.mktemp("run"))
    return run, plot_run(run)


# ---------------------------------------------------------------------------------------------
# A whole run folder


@pytest.mark.slow  # the `plotted` fixture draws a whole run folder
def test_plot_run_writes_every_picture(plotted):
    run, written = plotted
    assert sorted(p.name for p in written) == sorted(EVERY_PICTURE)
    for name in EVERY_PICTURE:
        path = run / "plots" / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        if name.endswith(".pdf"):
            assert path.read_bytes()[:5] == b"%PDF-", name


@pytest.mark.slow
def test_cell_source_names_every_op_and_node(plotted):
    run, _ = plotted
    g = PUBLISHED["DARTS_V2"]
    for kind in ("normal", "reduce"):
        source = (run / "plots" / f"cell_{kind}.gv").read_text()
        for op, _ in getattr(g, kind):
            assert op in source
        for node in ('"c_{k-2}"', '"c_{k-1}"', '"c_{k}"', "0", "1", "2", "3"):
            assert node in source
        assert "rankdir=LR" in source
        assert source.count('-> "c_{k}"') == 4  # every intermediate node feeds the output


def test_not_a_run_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(PlotError, match="not a run folder: expected genotype.json.*alphas.jsonl"):
        plot_run(tmp_path)
    with pytest.raises(PlotError, match="not a run folder"):
        plot_run(tmp_path / "missing")


def test_absent_or_empty_inputs_are_skipped(tmp_path):
    write_jsonl(tmp_path / "metrics.jsonl", metric_records(2))
    (tmp_path / "alphas.jsonl").write_text("")
    (tmp_path / "genotype.json").write_text("")
    assert [p.name for p in plot_run(tmp_path)] == ["curves.png"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["curves.png"]


def test_running_search_uses_latest_epoch_genotype(tmp_path):
    # No genotype.json yet: the cells come from the last line of genotypes.jsonl.
    latest = PUBLISHED["PC_DARTS"]
    write_jsonl(
        tmp_path / "genotypes.jsonl",
        [{"epoch": 1, "genotype": PUBLISHED["DARTS_V1"].to_dict()}, {"epoch": 2, "genotype": latest.to_dict()}],
    )
    plot_run(tmp_path)
    assert "sep_conv_5x5" in (tmp_path / "plots" / "cell_normal.gv").read_text()  # PC_DARTS has it, V1 has not


def test_torn_last_line_is_dropped_but_a_bad_middle_line_is_an_error(tmp_path):
    lines = [json.dumps(r) for r in metric_records(3)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"epoch": 4, "train_lo')
    assert [p.name for p in plot_run(tmp_path)] == ["curves.png"]
    (tmp_path / "metrics.jsonl").write_text("\n".join([lines[0], "oops", lines[1]]) + "\n")
    with pytest.raises(PlotError, match=r"metrics.jsonl line 2 is not JSON"):
        plot_run(tmp_path)


# ---------------------------------------------------------------------------------------------
# Cells


def test_five_node_published_cell_draws(tmp_path):
    g = PUBLISHED["NASNet"]  # reduce concat (4, 5, 6) leaves nodes 2 and 3 out of the output
    for kind in ("normal", "reduce"):
        written = draw_cell(g, kind, tmp_path / f"nasnet_{kind}")
        assert written[0] == tmp_path / f"nasnet_{kind}.gv"
        assert len(written) == (3 if HAVE_DOT else 1)
        source = written[0].read_text()
        assert all(op in source for op, _ in getattr(g, kind))
        assert "\n\t4 [" in source  # the fifth intermediate node
    reduce_source = (tmp_path / "nasnet_reduce.gv").read_text()
    assert reduce_source.count('-> "c_{k}"') == 3
    assert reduce_source.count("dashed") == 2


def test_without_dot_only_sources_are_written(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    # A search run earlier in this process stops the package logger propagating (runs.setup_logging);
    # caplog listens at the root.
    monkeypatch.setattr(logging.getLogger("dartsnas"), "propagate", True)
    PUBLISHED["GDAS"].save(tmp_path / "genotype.json")
    with caplog.at_level(logging.WARNING, logger="dartsnas.core.plot"):
        written = plot_run(tmp_path)
    assert sorted(p.name for p in written) == ["cell_normal.gv", "cell_reduce.gv"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["cell_normal.gv", "cell_reduce.gv"]
    assert "not on PATH" in caplog.text


def test_unknown_cell_kind(tmp_path):
    with pytest.raises(PlotError, match="cell kind 'normal_cell' is unknown; use one of normal, reduce"):
        draw_cell(PUBLISHED["DARTS_V2"], "normal_cell", tmp_path / "x")


def test_none_edges_are_not_drawn(tmp_path):
    g = Genotype.from_dict(
        PUBLISHED["DARTS_V2"].to_dict()
        | {"normal": [["none", 0]] + [list(e) for e in PUBLISHED["DARTS_V2"].normal[1:]]}
    )
    source = draw_cell(g, "normal", tmp_path / "cell")[0].read_text()
    assert "none" not in source


# ---------------------------------------------------------------------------------------------
# Single figures


def test_probs_shape_mismatch_is_named(tmp_path):
    probs = alpha_records(1)[-1]["probs"]
    with pytest.raises(PlotError, match=r"normal probs have shape \(14, 8\) but there are 14 edges and 7 ops"):
        plot_probs(probs, OPS[1:], edge_names(4), tmp_path / "p.png")


def test_curves_with_partial_keys(tmp_path):
    # Validation every other epoch, an extra key, no accuracy at all in the first lines.
    metrics = [
        {"epoch": 1, "train_loss": 2.0},
        {"epoch": 2, "train_loss": 1.8, "valid_loss": 1.9, "valid_acc": 0.4},
        {"epoch": 3, "train_loss": 1.7, "extra_loss": 0.1, "top5_acc": 0.8, "null_acc": None},
    ]
    path = plot_curves(metrics, tmp_path / "curves.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(PlotError, match=r"no \*_loss or \*_acc"):
        plot_curves([{"epoch": 1, "lr": 0.1}], tmp_path / "none.png")


def test_missing_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(PlotError, match=r"pip install 'dartsnas\[plot\]'"):
        plot_curves(metric_records(2), tmp_path / "curves.png")
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(PlotError, match=r"pip install 'dartsnas\[plot\]'"):
        draw_cell(PUBLISHED["DARTS_V2"], "normal", tmp_path / "cell")


def test_malformed_genotype_json_is_named(tmp_path):
    (tmp_path / "genotype.json").write_text('{"normal": [["sep_conv_3x3", 0]]')
    with pytest.raises(GenotypeError, match="genotype JSON is malformed"):
        plot_run(tmp_path)
