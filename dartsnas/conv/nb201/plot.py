"""Pictures of a NAS-Bench-201 run (search or training), drawn from its run folder: the cell in the style of
the DARTS cells (core/plot.py), then the pictures every run has (probabilities and trajectories of a
search, the curves; a search's curves include the benchmark accuracy of the cell derived each epoch)."""

from __future__ import annotations

from pathlib import Path

from ...core.plot import INPUT_COLOUR, NODE_COLOUR, OUTPUT_COLOUR, cell_graph, plot_run, render
from .genotype import EDGES, NODES, CellGenotype


def draw_nb201_cell(genotype: CellGenotype, path_stem: Path | str) -> list[Path]:
    """Draw a cell: node 0 the cell's input, node 3 its output, an edge j -> i labelled with the op of each
    edge i<-j that is kept (`none` cuts its edge: not drawn). An intermediate node from which no kept edge
    leads to the output is dashed, as the DARTS drawings dash a node that is not part of the output.
    Writes path_stem.gv, and .png and .pdf when dot exists."""
    kept = [
        (int(i), int(j), op) for name, op in zip(EDGES, genotype.edges) if op != "none" for i, j in [name.split("<-")]
    ]
    reach = {NODES}  # nodes with a path of kept edges to the output, found from the last node back
    for i, j, _ in sorted(kept, reverse=True):
        if i in reach:
            reach.add(j)
    graph = cell_graph("nas_bench_201_cell")
    graph.node("0", fillcolor=INPUT_COLOUR)
    for i in range(1, NODES):
        graph.node(str(i), fillcolor=NODE_COLOUR, style="filled" if i in reach else "filled,dashed")
    graph.node(str(NODES), fillcolor=OUTPUT_COLOUR)
    for i, j, op in kept:
        graph.edge(str(j), str(i), label=op)
    return render(graph, Path(path_stem))


def plot_nb201_run(run_dir: Path | str) -> list[Path]:
    """Draw every picture a NAS-Bench-201 run folder has data for into RUN/plots/: cell.gv (and .png, .pdf
    when Graphviz is installed), the probabilities and their trajectories (search runs), the curves."""
    return plot_run(run_dir, CellGenotype.parse, lambda genotype, out: draw_nb201_cell(genotype, out / "cell"))


def is_nb201_run(run_dir: Path | str) -> bool:
    """Was this run folder written by a NAS-Bench-201 search or training? (its config.yaml says so)"""
    from ...core.config import ConfigError, read_saved

    try:
        config = read_saved(Path(run_dir) / "config.yaml")  # capped: a huge or binary file is not a run's config
    except ConfigError:
        return False
    return "nas-bench-201" in (config.get("space"), config.get("net"))
