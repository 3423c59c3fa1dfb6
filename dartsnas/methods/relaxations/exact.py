"""exact: the paper's relaxation (Sec. 2.1, Eq. 2), every candidate computed and kept for backward. The
defaults of `Relaxation` are exactly it."""

from .base import Relaxation


class Exact(Relaxation):
    name = "exact"


UNIT = Exact
