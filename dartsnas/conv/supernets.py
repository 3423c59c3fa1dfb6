"""Each search space's search network, by the space's name (spaces.py names the spaces without torch; the
networks import spaces.py, so the registry lives here, above both)."""

from __future__ import annotations

from .nb201.model import Supernet201
from .supernet import Supernet

# space -> its search network class.
SEARCH_NETWORKS = {"darts": Supernet, "nas-bench-201": Supernet201}


def search_network(config, in_channels: int, num_classes: int):
    """The search network of `config.space`, built from the config."""
    return SEARCH_NETWORKS[config.space].from_config(config, in_channels, num_classes)
