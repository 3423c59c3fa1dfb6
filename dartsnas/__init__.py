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
    choices/        choice modules for a model of your own, and fix: its plain network of one architecture
    cli.py          the command line

Importing the package does no work; import the module you need
(e.g. `from dartsnas.core.genotype import PUBLISHED`). The names for searching a model of your own
(docs/own-model.md) are here, imported on first use: `dartsnas.Choice`, `dartsnas.InputChoice`,
`dartsnas.fix`, `dartsnas.Zero`, `dartsnas.ChoiceError`.
"""

__version__ = "0.1.0"

# name -> its module below the package; imported when first asked for, so `import dartsnas` stays cheap.
_LAZY = {
    "Choice": "choices.modules",
    "InputChoice": "choices.modules",
    "Zero": "choices.modules",
    "ChoiceError": "choices.modules",
    "fix": "choices.fix",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
