"""The recurrent side: cells searched on word-level language modelling (DARTS Sec. 2.1, 3.1.2) and trained
from scratch (3.2). Shares the architecture step, derivation rule and run folders of core/.

genotype.py (recurrent cells as data, their derivation) - model.py (search and genotype cells, the
language model) - search.py - train.py - config.py - text.py (corpora) - plot.py.
"""
