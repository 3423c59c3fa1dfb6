"""Answers to DARTS's collapse towards parameter-free ops, as small pure pieces the search loops call.

- `beta_decay`: beta-DARTS (Ye et al., "beta-DARTS: Beta-Decay Regularization for Differentiable Architecture
  Search", CVPR 2022, Eq. 9-11): the architecture loss gains lambda * mean over edges of logsumexp(alpha_edge).
  Its gradient on an edge is softmax(alpha_edge), so every logit decays in proportion to its probability:
  the alphas' spread (their "beta") is kept small and no op runs away early; lambda grows linearly with the
  epoch (`beta_weight`).
- `aux_skip_coefficient`: DARTS- (Chu et al., "DARTS-: Robustly Stepping out of Performance Collapse Without
  Indicators", ICLR 2021, Sec. 3.2): every edge gains an auxiliary skip connection beta * x outside the
  mixture, beta decaying to 0 over the search, so the mixture's own skip op no longer has to carry the
  gradient flow that makes it win unfairly.
- `darts_plus_stop`: DARTS+ (Liang et al., "DARTS+: Improved Differentiable Architecture Search with Early
  Stopping", arXiv:1909.06035, Sec. 3.2): stop the search when the derived normal cell has 2 or more skip
  connections (criterion 1), or when the ranking of the learnable ops' alphas has not changed for a number
  of epochs (criterion 2).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def beta_decay(alphas: Sequence[torch.Tensor]) -> torch.Tensor:
    """beta-DARTS's regulariser: the mean over every edge of every given (edges x ops) logit table of
    logsumexp(alpha_edge), the smooth maximum of the edge's logits (their `mlc_loss`). Their DARTS-space search
    hands it the list of both cells' tables, which torch.logsumexp refuses; we read that as the mean over both
    cells' edges. Their code adds it in the first-order step only; dartsnas adds it in both orders (it does not
    depend on the weights, so Eq. 7 leaves it unchanged)."""
    return torch.cat([torch.logsumexp(a.reshape(-1, a.shape[-1]), dim=-1) for a in alphas]).mean()


def linear(epoch: int, epochs: int, start: float, end: float) -> float:
    """`start` at the first epoch (0-based) moving linearly to `end` at the last."""
    if epochs <= 1:
        return float(end)
    return start + (end - start) * min(max(epoch, 0), epochs - 1) / (epochs - 1)


def beta_weight(epoch: int, epochs: int, start: float, end: float, horizon: int | None = 100) -> float:
    """beta-DARTS's lambda for `epoch` (0-based): `start + (end - start) * epoch / horizon`, whatever the run's
    length, as their code (Sunshine-Ye/Beta-DARTS, optimizers/darts/architect.py, `Architect._backward_step`:
    `weights = 0 + 50*epoch/100`) in both spaces: their NAS-Bench-201 search runs 100 epochs (lambda 0 to 49.5),
    their DARTS-space search 50 (0 to 24.5). `horizon` None: dartsnas's earlier form, rescaled to reach `end`
    at the run's last epoch (`linear`), steeper in a short run (5x at 20 epochs)."""
    if horizon is None:
        return linear(epoch, epochs, start, end)
    return start + (end - start) * max(epoch, 0) / horizon


def aux_skip_coefficient(epoch: int, epochs: int, start: float = 1.0) -> float:
    """DARTS-'s beta for `epoch` (0-based): `start` (the paper's 1) decaying linearly to 0 at the end of the
    search (the last epoch trains with start / epochs, and the cell is derived with beta = 0)."""
    return float(start) * (1.0 - min(max(epoch, 0), epochs) / epochs)


def skip_count(edges: Sequence[tuple[str, int]] | Sequence[str]) -> int:
    """Skip connections among a cell's edges ((op, input) pairs, or op names)."""
    return sum(1 for e in edges if (e[0] if isinstance(e, tuple) else e) == "skip_connect")


def ranking(probs: Sequence[Sequence[float]], learnable: Sequence[int]) -> list[tuple[int, ...]]:
    """Per edge, the learnable ops (indices into the op list) from the most to the least probable."""
    return [tuple(sorted(learnable, key=lambda o: (-float(row[o]), o))) for row in probs]


def darts_plus_stop(
    cell_edges,
    history: Sequence[Sequence[Sequence[float]]],
    learnable: Sequence[int],
    max_skips: int | None = 2,
    patience: int | None = 10,
) -> str | None:
    """Why DARTS+ stops now, or None to go on.

    `cell_edges`: the normal cell derived now; `history`: its probabilities (edges x ops) after every epoch
    so far, oldest first; `learnable`: indices of the ops with weights. Criterion 1 with `max_skips`,
    criterion 2 with `patience` (None switches a criterion off): the ranking has been the same for the last
    `patience` epochs, i.e. at `patience` + 1 consecutive records.
    """
    if max_skips is not None and skip_count(cell_edges) >= max_skips:
        return (
            f"the normal cell has {skip_count(cell_edges)} skip connections (DARTS+ criterion 1: {max_skips} or more)"
        )
    if patience is not None and len(history) > patience:
        last = [ranking(p, learnable) for p in history[-(patience + 1) :]]
        if all(r == last[-1] for r in last):
            return f"the learnable ops' ranking has not changed for {patience} epochs (DARTS+ criterion 2)"
    return None
