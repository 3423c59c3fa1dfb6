"""The method units: each variant of DARTS that changes how the search computes, one small file behind one
seam, registered by name. Nothing outside a unit's file learns its name; the search loop calls its hooks.

- `relaxations/`: how an edge's choice among candidates becomes differentiable (the config's `mixed_op`):
  exact (the paper's weighted sum, Eq. 2), lean (the same, recomputed in backward), partial (PC-DARTS),
  sample (GDAS). Hooks: the coefficients and probabilities of the alphas, what one edge computes, what the
  cell and network around it must do (channel parts, edge weights, shared parameter-free candidates), and
  what the unit needs of the config.
- `derivations/`: from a finished search to a discrete cell (Sec. 2.4), one rule per file (the paper's, GDAS's,
  NAS-Bench-201's argmax, P-DARTS's skip cap). Hooks: a rule over probabilities maps a cell's probability
  table to its kept (op, input) edges.
- `search/`: the search's regularisers, schedules and progressive schemes (`SEARCH_UNITS`): the temperature
  schedule, entropy annealing, beta-DARTS, DARTS-, SGAS, DARTS+. Hooks: a per-epoch schedule, a penalty on the
  alphas, the epoch's batch size, a decision after an epoch, a reason to stop (`search/base.py`).

Imports: `core` and torch only; `conv`, `recurrent`, `bench` and `experiments` import units, never the other way round.
"""
