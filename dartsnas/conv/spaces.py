"""Search spaces: their names, candidate sets and derivation rules (importing this module needs no torch).

- `darts`: the paper's space (Sec. 2.1, 3.1.1): cells of two input nodes and `nodes` intermediate ones,
  each taking every earlier node through a mixed op over a candidate set (DARTS_OPS by default, any of
  ops.OPS), normal and reduction cells with their own alphas; the network in supernet.py.
- `nas-bench-201`: NAS-Bench-201's (Dong & Yang, ICLR 2020): one input node and three intermediate ones,
  every edge kept and `none` a choice, one cell for the whole network, and every one of its 15,625 cells
  trained to its test accuracy (nb201/).

A new space is a search network class (with `from_config`, `edge_names`, `derive`) in a module of its own,
one line in supernets.SEARCH_NETWORKS and one in DERIVATIONS below (a test checks the two agree).
"""

# The paper's candidate set (Sec. 3.1), in the official order: the order fixes the alphas' columns.
DARTS_OPS = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]

# A larger set from the same registry (12 ops): more kernel shapes per edge, for memory and speed studies.
LARGE_OPS = DARTS_OPS + ["sep_conv_7x7", "conv_1x1", "conv_3x3", "conv_7x1_1x7"]

# Candidate sets by size for `dartsnas bench search-step --ops`: the convolutions first, then the
# parameter-free ops, then the paper's full set and the larger one.
OP_SETS = {
    2: ["sep_conv_3x3", "sep_conv_5x5"],
    4: ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"],
    6: ["max_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"],
    8: DARTS_OPS,
    12: LARGE_OPS,
}


# space -> the derivation rule it takes by default, and the rules it accepts (names of methods/derivations/).
DERIVATIONS = {"darts": ("darts", "gdas"), "nas-bench-201": ("nas-bench-201",)}
SPACES = tuple(DERIVATIONS)
