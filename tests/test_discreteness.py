"""How far a mixture is from a discrete cell: the two numbers every search logs per epoch, against hand values."""

import math

import pytest
import torch

from dartsnas.core.relax import discreteness


def test_uniform_and_one_hot_mixtures_are_the_two_ends():
    uniform = torch.full((6, 5), 0.2)
    one_hot = torch.eye(5)[[0, 3, 1, 4, 2, 0]]
    assert discreteness([uniform]) == pytest.approx({"alpha_entropy": 1.0, "onehot_gap": 0.8})
    assert discreteness([one_hot]) == pytest.approx({"alpha_entropy": 0.0, "onehot_gap": 0.0})


def test_the_mean_runs_over_every_edge_of_every_table():
    a = torch.tensor([[0.5, 0.5, 0.0, 0.0]])  # entropy log 2 of log 4: 0.5; gap 0.5
    b = torch.tensor([[1.0, 0.0, 0.0, 0.0]] * 3)  # three one-hot edges
    got = discreteness([a, b])
    assert got["alpha_entropy"] == pytest.approx(0.5 / 4)
    assert got["onehot_gap"] == pytest.approx(0.5 / 4)
    p = torch.tensor([[0.7, 0.2, 0.1]])
    h = -sum(x * math.log(x) for x in (0.7, 0.2, 0.1)) / math.log(3)
    assert discreteness([p]) == pytest.approx({"alpha_entropy": h, "onehot_gap": 0.3})
