"""Search spaces as data: which candidate ops the edges choose from (no torch needed).

A cell's edges and nodes follow from `nodes` (see genotype.edge_names); what differs between spaces is
the candidate set, named here so that configs and benchmarks can refer to it.
"""

# The paper's candidate set (Sec. 3.1), in the official order: the order fixes the alphas' columns.
DARTS_OPS = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
             "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]

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

# How a mixed op is computed (supernet.MixedOp): named here so that configs can be checked without
# importing torch.
MIXED_OPS = ("exact", "lean", "partial", "sample")
