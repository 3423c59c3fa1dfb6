"""Search spaces as data: which candidate ops the edges choose from (no torch needed).

A cell's edges and nodes follow from `nodes` (see genotype.edge_names); what differs between spaces is
the candidate set, named here so that configs and benchmarks can refer to it.
"""

# The paper's candidate set (Sec. 3.1), in the official order: the order fixes the alphas' columns.
DARTS_OPS = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
             "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
