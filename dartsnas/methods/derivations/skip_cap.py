"""P-DARTS's cap (Chen et al., "Progressive Differentiable Architecture Search", ICCV 2019, Sec. 3.3): at most M
skip connections (theirs: 2) in the derived normal cell. While the cell has more, the kept skip edge with the
smallest skip probability loses its skip (its probability set below every other) and the cell is derived
again, so the M strongest skips stay and the others take their edge's next op. It wraps any rule over
probabilities (the config's `skip_cap`, `dartsnas derive --rule argmax --skip-cap M`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .base import as_rows


def cap_skips(probs, ops: Sequence[str], cap: int, kept: Callable) -> list[list[float]]:
    """Probabilities (a copy) in which the derived cell keeps at most `cap` skip connections.
    `kept(rows)` derives the cell and returns (row, op) per kept edge. While more than `cap` skips are kept,
    the one with the smallest skip probability gets a skip probability below every other op's (-1), so it
    takes its next op (or, in a space that keeps `k` edges per node, may give its place to another input)."""
    if cap < 0:
        raise ValueError(f"the skip cap must be 0 or more, got {cap}")
    rows = [list(map(float, row)) for row in as_rows(probs)]
    if "skip_connect" not in ops:
        return rows
    s = list(ops).index("skip_connect")
    while True:
        skips = [r for r, op in kept(rows) if op == "skip_connect"]
        if len(skips) <= cap:
            return rows
        weakest = min(skips, key=lambda r: (rows[r][s], -r))
        if rows[weakest][s] < 0:
            raise ValueError(f"cannot cap the skip connections at {cap}: an edge has no op besides skip_connect")
        rows[weakest][s] = -1.0
