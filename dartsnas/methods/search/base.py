"""The hooks a search unit answers, each a no-op by default. The search loop (conv/search.py,
recurrent/search.py) calls them in this order:

| hook | when | what it may do | who answers |
|---|---|---|---|
| `check(config)` | validating the config | its fields' values, as one-line ConfigErrors | every unit with fields |
| `enabled(config)` | building the search | whether the config switches the unit on | every unit |
| `attach(search)` | once, the search built | hook into its optimisers, check the world | sgas |
| `start_epoch(search)` | before each epoch (and on resume) | set a per-epoch schedule on the network | temperature, anneal_entropy, aux_skip |
| `batch_size(search, size)` | sizing the epoch's batches | the epoch's batch size | sgas |
| `penalty(search)` | every architecture step | a scalar of the alphas added to its loss | beta_decay |
| `decide(search, run_dir)` | after an epoch, before its record | change the network (decide edges) | sgas |
| `stop(search, run_dir)` | after the epoch's record | a reason to stop the search, or None | early_stop |

`leaves_ops_out`: a step may leave some ops unused (data-parallel runs look for unused parameters).
What a search offers its units: `config`, `model` (its `temperature`, `alphas`), `epoch` (0-based, the one
about to train or just counted), `architect`, `op_alphas()` (the op logit tables, edges x ops each),
`last_genotype` (after the epoch's record). A unit's state lives in the network or the run folder, so the
checkpoint needs nothing of it.
"""

from __future__ import annotations

from pathlib import Path

from ...core.config import ConfigError


class SearchUnit:
    leaves_ops_out = False

    def __init__(self, config):
        self.config = config

    @classmethod
    def check(cls, config) -> None:
        """What the unit needs of its config fields, as one-line ConfigErrors (`config` may lack them: the
        recurrent search has only some units' fields)."""

    @classmethod
    def enabled(cls, config) -> bool:
        return False

    def attach(self, search) -> None:
        pass

    def start_epoch(self, search) -> None:
        pass

    def batch_size(self, search, size: int) -> int:
        return size

    def penalty(self, search):
        """A scalar tensor of the alphas alone, or None: its gradient is added to the architecture step's in
        either order (it does not depend on the weights, so Eq. 7 leaves it unchanged)."""
        return None

    def decide(self, search, run_dir: Path) -> None:
        pass

    def stop(self, search, run_dir: Path) -> str | None:
        return None


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_whole(config, name: str, least: int = 1) -> None:
    """`name` is a whole number of at least `least`, or null."""
    value = getattr(config, name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
        raise ConfigError(f"{name} must be a whole number of at least {least}, or null; got {value}")
