"""dartsnas: DARTS, Differentiable Architecture Search (Liu, Simonyan & Yang, ICLR 2019), in PyTorch.

The rooms, in reading order:

    conv/plain.py   the method written plainly (cell, mixed op, search network, search step): read first
    core/           what every kind of cell shares: genotypes, the architecture step, derivation rules,
                    relaxations, config loading, run folders, pictures
    data/           datasets: where they are found, downloads, image loaders, augmentation and batches
    conv/           the convolutional side: ops and search spaces, the fast supernet, the search loop,
                    networks for training, training, export, memory estimates
    recurrent/      the recurrent side: cells, search, training, text data
    bench/          what times and measures the code (dartsnas bench search-step, conv, distributed)
    experiments/    protocols over many runs: dartsnas seeds, bench quality, random, skips; their runner
    cli.py          the command line

Importing the package does no work; import the module you need
(e.g. `from dartsnas.core.genotype import PUBLISHED`).
"""

__version__ = "0.1.0"
