"""Pictures of a search run, drawn from its run folder: the cells, the final probs, their trajectories, the curves.

Everything here reads files the search wrote (house habit 11), so a run can be drawn again later, elsewhere,
or while it is still searching. matplotlib and graphviz are optional extras (`pip install 'dartsnas[plot]'`)
and are imported only inside the functions that need them. Figures are drawn on matplotlib's Agg canvas
directly, not through pyplot, so nothing opens a window or changes the caller's backend.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import shutil
from pathlib import Path

from .genotype import CELL_KINDS, Genotype, parse

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'dartsnas[plot]'"

# The DARTS paper's palette (the official visualize.py), so our cells look like its Figures 4 and 5.
INPUT_COLOUR, NODE_COLOUR, OUTPUT_COLOUR = "darkseagreen2", "lightblue", "palegoldenrod"


class PlotError(Exception):
    """A run folder or input that cannot be drawn; the message says what was expected."""


# ----------------------------------------------------------------------------------------------
# Cells, as graphviz graphs


def draw_cell(genotype: Genotype, kind: str, path_stem: Path | str) -> list[Path]:
    """Draw one cell like the DARTS paper's figures; write path_stem.gv, and .png and .pdf when dot exists."""
    if kind not in CELL_KINDS:
        raise PlotError(f"cell kind {kind!r} is unknown; use one of {', '.join(CELL_KINDS)}")
    graph = cell_graph(f"{kind}_cell")
    _add_cell(graph, getattr(genotype, kind), getattr(genotype, f"{kind}_concat"))
    return render(graph, Path(path_stem))


def cell_graph(name: str):
    """An empty graphviz graph in the paper's figure style (left to right, Times, filled boxes)."""
    graphviz = require("graphviz")
    return graphviz.Digraph(
        name=name,
        engine="dot",
        graph_attr=dict(rankdir="LR", dpi="150"),
        node_attr=dict(
            style="filled",
            shape="rect",
            align="center",
            fontsize="20",
            height="0.5",
            width="0.5",
            penwidth="2",
            fontname="times",
        ),
        edge_attr=dict(fontsize="20", fontname="times"),
    )


def _add_cell(graph, edges: tuple[tuple[str, int], ...], concat: tuple[int, ...]) -> None:
    # Node names follow the paper: inputs c_{k-2}, c_{k-1}; intermediate nodes 0..N-1; output c_{k}.
    nodes = len(edges) // 2
    names = ["c_{k-2}", "c_{k-1}"] + [str(i) for i in range(nodes)]
    for name in names[:2]:
        graph.node(name, fillcolor=INPUT_COLOUR)
    for i in range(nodes):
        # A node left out of the concat (NASNet, AmoebaNet) only feeds other nodes: dash it to show that.
        style = "filled" if 2 + i in concat else "filled,dashed"
        graph.node(names[2 + i], fillcolor=NODE_COLOUR, style=style)
    for k, (op, j) in enumerate(edges):
        if op != "none":  # a derived cell has no 'none' edges; skip one rather than draw a zero
            graph.edge(names[j], names[2 + k // 2], label=op)
    graph.node("c_{k}", fillcolor=OUTPUT_COLOUR)
    for i in concat:
        graph.edge(names[i], "c_{k}")


# ----------------------------------------------------------------------------------------------
# Architecture probabilities and training curves, as matplotlib figures


def plot_probs(probs: dict, ops: list[str], edges: list[str], path: Path, title: str = "") -> Path:
    """Heat maps of softmax(alphas): one panel per cell kind, rows = edges, columns = ops, values written in."""
    import numpy as np

    kinds = list(probs)
    tables = {kind: np.asarray(probs[kind], dtype=float) for kind in kinds}
    for kind, table in tables.items():
        if table.shape != (len(edges), len(ops)):
            raise PlotError(
                f"{kind} probs have shape {table.shape} but there are {len(edges)} edges and "
                f"{len(ops)} ops; probs must be a list per edge of one value per op"
            )
    fig = figure((1.6 + 0.75 * len(ops)) * len(kinds), 1.6 + 0.36 * len(edges))
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    for ax, kind in zip(axes, kinds):
        table = tables[kind]
        image = ax.imshow(table, cmap="Blues", vmin=0.0, vmax=max(table.max(), 1e-9), aspect="auto")
        for (row, col), value in np.ndenumerate(table):
            # Bold the op each edge would keep, white text on dark cells so every value stays legible.
            best = col == table[row].argmax()
            colour = "white" if value > 0.6 * table.max() else "black"
            ax.text(
                col,
                row,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color=colour,
                fontweight="bold" if best else "normal",
            )
        ax.set_xticks(range(len(ops)), ops, rotation=40, ha="right", rotation_mode="anchor", fontsize=9)
        ax.set_yticks(range(len(edges)), edges, fontsize=9)
        ax.set_title(f"{kind} cell")
        ax.set_ylabel("edge (node<-input)")
        fig.colorbar(image, ax=ax, shrink=0.8, label="probability")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_trajectories(alpha_records: list[dict], path: Path) -> Path:
    """How each edge's op probabilities moved over the search: a small panel per edge, a line per op."""
    records = sorted(alpha_records, key=lambda r: r["epoch"])
    if not records:
        raise PlotError("no alpha records to plot; expected one per epoch, as the search writes to alphas.jsonl")
    last = records[-1]
    ops, edges, kinds = last["ops"], last["edges"], list(_probs(last))
    epochs = [r["epoch"] for r in records]
    series = {kind: [_probs(r)[kind] for r in records] for kind in kinds}  # epoch -> edge -> op

    layout, rows, cols = _edge_grid(edges)
    fig = figure(2.1 * cols, 1.5 * rows * len(kinds) + 0.9)
    grid = fig.subplots(rows * len(kinds), cols, squeeze=False, sharex=True, sharey=True)
    for ax in grid.flat:
        ax.set_visible(False)  # only the cells of real edges are shown below
    top = max(p for kind in kinds for epoch in series[kind] for edge in epoch for p in edge)
    marker = "o" if len(epochs) < 12 else None  # a run of one or two epochs is otherwise invisible
    for block, kind in enumerate(kinds):
        for e, (edge, (row, col)) in enumerate(zip(edges, layout)):
            ax = grid[block * rows + row, col]
            ax.set_visible(True)
            for o, op in enumerate(ops):
                ax.plot(
                    epochs,
                    [epoch[e][o] for epoch in series[kind]],
                    label=op,
                    marker=marker,
                    markersize=3,
                    color=f"C{o % 10}",
                    linestyle="-" if o < 10 else "--",
                )
            ax.set_title(f"{kind} {edge}", fontsize=9)
            ax.set_ylim(0, min(1.0, top * 1.05))
            ax.tick_params(labelsize=7, labelbottom=True, labelleft=True)
            ax.xaxis.set_major_locator(integer_ticks())
            ax.grid(alpha=0.3)
    handles, labels = grid[0, 0].get_legend_handles_labels()
    # Four ops a row: eight op names in one row are wider than the five panel columns of a 4-node cell.
    fig.legend(handles, labels, loc="outside upper center", ncols=min(len(ops), 4), fontsize=9)
    fig.supxlabel("epoch")
    fig.supylabel("probability (softmax of alphas)")
    return save_figure(fig, path)


def _edge_grid(edges: list[str]) -> tuple[list[tuple[int, int]], int, int]:
    """Panel positions: row = target node, column = input node for 'i<-j' names, else a plain grid."""
    try:
        pairs = [tuple(int(part) for part in edge.split("<-")) for edge in edges]
        first = min(i for i, _ in pairs)
        layout = [(i - first, j) for i, j in pairs]
    except ValueError:
        cols = min(len(edges), 5)
        return [(e // cols, e % cols) for e in range(len(edges))], math.ceil(len(edges) / cols), cols
    return layout, 1 + max(r for r, _ in layout), 1 + max(c for _, c in layout)


def plot_curves(metrics: list[dict], path: Path) -> Path:
    """Every *_loss in one panel and every *_acc in another, against the epoch."""
    panels = [(suffix, sorted({k for m in metrics for k in m if k.endswith(suffix)})) for suffix in ("_loss", "_acc")]
    panels = [(suffix, keys) for suffix, keys in panels if keys]
    if not panels:
        raise PlotError(
            "metrics have no *_loss or *_acc values to plot; expected lines like "
            '{"epoch": 1, "train_loss": 2.1, "valid_acc": 0.35}'
        )
    fig = figure(5.2 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (suffix, keys) in zip(axes, panels):
        for key in keys:
            points = [
                (m.get("epoch", n + 1), m[key]) for n, m in enumerate(metrics) if isinstance(m.get(key), (int, float))
            ]
            if not points:  # a key that is only ever null
                continue
            ax.plot(
                *zip(*points), marker="o" if len(points) < 12 else None, markersize=3, label=key.removesuffix(suffix)
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(integer_ticks())
        ax.set_ylabel("loss" if suffix == "_loss" else "accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


# ----------------------------------------------------------------------------------------------
# A whole run folder

RUN_FILES = ("genotype.json", "genotypes.jsonl", "metrics.jsonl", "alphas.jsonl")


def plot_run(run_dir: Path | str, parse_genotype=parse, draw_cells=None, curves=()) -> list[Path]:
    """Draw every picture a run folder has data for into RUN/plots/; return the files written.

    The final cell (or, while a search runs, the latest one) when graphviz is installed, the probabilities
    and their trajectories (search runs), the curves. Defaults draw a convolutional run; the recurrent side
    passes its own genotype parser, cell drawing and extra curves (recurrent/plot.py).
    """
    run = Path(run_dir)
    if not run.is_dir() or not any((run / name).exists() for name in RUN_FILES):
        raise PlotError(
            f"{run} is not a run folder: expected {', '.join(RUN_FILES)} in it; "
            "give the folder a search or a training wrote"
        )
    out = run / "plots"
    out.mkdir(exist_ok=True)
    written: list[Path] = []
    genotype = _final_genotype(run, parse_genotype)
    if genotype is not None:
        try:
            written += (draw_cells or _draw_cells)(genotype, out)
        except PlotError as err:  # no graphviz package: the other pictures still come
            log.warning("cell drawing skipped: %s", err)
    written += plot_alphas(run, out)
    metrics = read_jsonl(run / "metrics.jsonl")
    if metrics:
        written += [curve(metrics, out) for curve in curves]
        written.append(plot_curves(metrics, out / "curves.png"))
    log.info("wrote %d pictures to %s", len(written), out)
    return written


def _draw_cells(genotype: Genotype, out: Path) -> list[Path]:
    return [f for kind in CELL_KINDS for f in draw_cell(genotype, kind, out / f"cell_{kind}")]


def _final_genotype(run: Path, parse_genotype):
    # A finished search writes genotype.json; one still running has only its per-epoch genotypes so far.
    final = run / "genotype.json"
    if final.exists() and final.read_text().strip():
        return parse_genotype(final.read_text())  # a malformed file raises GenotypeError naming the problem
    history = read_jsonl(run / "genotypes.jsonl")
    return parse_genotype(json.dumps(history[-1]["genotype"])) if history else None


def read_jsonl(path: Path) -> list[dict]:
    """The records of a .jsonl file; [] if it is absent or empty. A torn last line (run still writing) is dropped."""
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for n, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if n == len(lines):
                break
            raise PlotError(f"{path} line {n} is not JSON ({err.msg}); each line must be one JSON object") from None
    return records


def _probs(record: dict) -> dict:
    """A record's probs; computed as softmax(alphas) if a writer saved only the alphas."""
    if "probs" in record:
        return record["probs"]
    if "alphas" not in record:
        raise PlotError(
            f"alpha record of epoch {record.get('epoch')} has neither 'probs' nor 'alphas'; "
            "expected the format the search writes to alphas.jsonl"
        )
    import numpy as np

    probs = {}
    for kind, alphas in record["alphas"].items():
        a = np.asarray(alphas, dtype=float)
        e = np.exp(a - a.max(axis=-1, keepdims=True))
        probs[kind] = (e / e.sum(axis=-1, keepdims=True)).tolist()
    return probs


def render(graph, stem: Path) -> list[Path]:
    """Save a graphviz graph as stem.gv, and render .png and .pdf when Graphviz's `dot` is on PATH."""
    graphviz = require("graphviz")
    stem.parent.mkdir(parents=True, exist_ok=True)
    gv = stem.with_suffix(".gv")
    graph.save(gv)
    written = [gv]
    if shutil.which("dot") is None:
        log.warning("Graphviz's `dot` is not on PATH: wrote only %s; install Graphviz to get PNG and PDF", gv)
        return written
    for fmt in ("png", "pdf"):
        out = stem.with_suffix(f".{fmt}")
        try:
            graphviz.render("dot", fmt, gv, outfile=out, quiet=True)
        except graphviz.CalledProcessError as err:
            raise PlotError(f"dot could not render {gv} as {fmt}: {err.stderr or err}") from None
        written.append(out)
    return written


def plot_alphas(run: Path, out: Path) -> list[Path]:
    """The final probabilities and their trajectories, from RUN/alphas.jsonl (any search run)."""
    alphas = read_jsonl(run / "alphas.jsonl")
    if not alphas:
        return []
    last = max(alphas, key=lambda r: r["epoch"])
    return [
        plot_probs(
            _probs(last),
            last["ops"],
            last["edges"],
            out / "probs.png",
            title=f"architecture probabilities after epoch {last['epoch']}",
        ),
        plot_trajectories(alphas, out / "trajectories.png"),
    ]


# ----------------------------------------------------------------------------------------------
# Optional dependencies


def require(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        raise PlotError(f"drawing needs the {name!r} package, an optional extra: {INSTALL_HINT}") from None


def figure(width: float, height: float):
    require("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # Agg: renders to files only, never a window
    return fig


def integer_ticks():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)  # epochs are whole numbers; '2.5' would suggest otherwise


def save_figure(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
