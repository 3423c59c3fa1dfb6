"""Pictures of a recurrent run, drawn from its run folder: the cell like the paper's Figure 6, the
probabilities and their trajectories (search runs), the perplexity and loss curves."""

from __future__ import annotations

from pathlib import Path

from ..core.plot import (
    INPUT_COLOUR,
    NODE_COLOUR,
    OUTPUT_COLOUR,
    PlotError,
    cell_graph,
    figure,
    integer_ticks,
    plot_run,
    render,
    save_figure,
)
from .genotype import RecurrentGenotype, parse_recurrent


def draw_recurrent_cell(genotype: RecurrentGenotype, path_stem: Path | str) -> list[Path]:
    """Draw a recurrent cell like the DARTS paper's Figure 6: x_t and h_{t-1} into node 0, an op on every
    edge, the averaged nodes into h_t. Writes path_stem.gv, and .png and .pdf when dot exists."""
    graph = cell_graph("recurrent_cell")
    for name in ("x_{t}", "h_{t-1}"):
        graph.node(name, fillcolor=INPUT_COLOUR)
        graph.edge(name, "0", fillcolor="gray")
    graph.node("0", fillcolor=NODE_COLOUR)
    for i in range(1, genotype.nodes + 1):
        graph.node(str(i), fillcolor=NODE_COLOUR, style="filled" if i in genotype.concat else "filled,dashed")
    for i, (op, j) in enumerate(genotype.recurrent, start=1):
        graph.edge(str(j), str(i), label=op)
    graph.node("h_{t}", fillcolor=OUTPUT_COLOUR)
    for i in genotype.concat:
        graph.edge(str(i), "h_{t}", fillcolor="gray")
    return render(graph, Path(path_stem))


def plot_perplexity(metrics: list[dict], path: Path) -> Path:
    """Every *_ppl against the epoch, on a log scale (perplexity is exp(loss)); ASGD's start marked if any."""
    keys = sorted({k for m in metrics for k in m if k.endswith("_ppl")})
    if not keys:
        raise PlotError('metrics have no *_ppl values to plot; expected lines like {"epoch": 1, "valid_ppl": 150.2}')
    fig = figure(5.6, 3.8)
    ax = fig.subplots()
    for key in keys:
        points = [
            (m.get("epoch", n + 1), m[key]) for n, m in enumerate(metrics) if isinstance(m.get(key), (int, float))
        ]
        if points:
            ax.plot(
                *zip(*points), marker="o" if len(points) < 12 else None, markersize=3, label=key.removesuffix("_ppl")
            )
    switched = [m["epoch"] for m in metrics if m.get("optimizer") == "asgd"]
    if switched:
        ax.axvline(min(switched) - 0.5, color="grey", linestyle=":", label="averaged SGD from here")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("perplexity")
    ax.xaxis.set_major_locator(integer_ticks())
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return save_figure(fig, path)


def plot_recurrent_run(run_dir: Path | str) -> list[Path]:
    """Draw every picture a recurrent run folder has data for into RUN/plots/: the cell (when graphviz is
    installed), the probabilities and their trajectories (search runs), the perplexity and loss curves."""
    return plot_run(
        run_dir,
        parse_recurrent,
        lambda g, out: draw_recurrent_cell(g, out / "cell_recurrent"),
        curves=[lambda metrics, out: plot_perplexity(metrics, out / "perplexity.png")],
    )
