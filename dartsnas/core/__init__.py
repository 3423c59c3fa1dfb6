"""What every kind of cell shares. Imports nothing of data/, conv/, recurrent/, bench/ or experiments/.

genotype.py (cells as data, no torch) - architect.py (the architecture step, first and second order) -
derive.py (derivation rules: probabilities to edges) - relax.py (alphas to mixing coefficients, temperature
schedules) - config.py (loading typed configs) - runs.py (run folders, checkpoints, the epoch loop every
driver shares) - device.py - plot.py (pictures drawn from run folders).
"""
