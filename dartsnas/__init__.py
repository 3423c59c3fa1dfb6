"""dartsnas: DARTS, Differentiable Architecture Search (Liu, Simonyan & Yang, ICLR 2019), in PyTorch.

Read in pipeline order: ops -> spaces -> supernet -> architect -> derive -> search. Importing the
package does no work; import the module you need (e.g. `from dartsnas.genotype import PUBLISHED`).
"""

__version__ = "0.1.0"
