"""The streamed training split (DataLoader workers, data/stream.py): an epoch resumed after k batches gets
exactly the images and augmentations the uninterrupted epoch had from batch k on, whichever worker decodes
them; the main process's random state is left alone. Needs no torchvision: any dataset streams."""

import pytest
import torch

from dartsnas.data.stream import Shuffled


class Augmented(torch.utils.data.Dataset):
    """Item i: its index and a random 'augmentation' drawn from torch's global generator, as transforms do."""

    def __len__(self):
        return 50

    def __getitem__(self, i):
        return torch.rand(3), i


def _epoch(workers, skip, seed=0):
    generator = torch.Generator().manual_seed(seed)
    loader = Shuffled(Augmented(), 8, generator, workers, torch.device("cpu"))
    return [(x, y) for x, y in loader.epoch(skip)], generator.get_state(), len(loader)


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_a_resumed_epoch_is_the_tail_of_the_whole_one(workers):
    whole, after_whole, n = _epoch(workers, 0)
    assert n == 6 and len(whole) == 6  # full batches only: 50 // 8
    for skip in (1, 4):
        tail, after, _ = _epoch(workers, skip)
        assert torch.equal(after, after_whole)  # the generator moves on the same, wherever the epoch starts
        assert len(tail) == len(whole) - skip
        for (x, y), (x0, y0) in zip(tail, whole[skip:]):
            assert torch.equal(y, y0) and torch.equal(x, x0)


def test_workers_do_not_change_the_draws_and_the_main_state_is_left_alone():
    state = torch.get_rng_state()
    in_process, _, _ = _epoch(0, 0)
    assert torch.equal(torch.get_rng_state(), state)
    other_seed, _, _ = _epoch(0, 0, seed=1)
    assert not torch.equal(in_process[0][1], other_seed[0][1])  # the order follows the generator


@pytest.mark.slow
def test_two_workers_draw_what_the_main_process_draws():
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(_epoch(0, 0)[0], _epoch(2, 0)[0]))


def test_each_rank_streams_its_shard_of_every_global_batch_with_one_process_augmentation(monkeypatch):
    """Data-parallel (data/stream.py under torchrun): rank r decodes only rows r*b..(r+1)*b of each global
    batch, each with the augmentation one process gives it; the ranks together make the global batches."""
    from dartsnas.core import distributed

    whole, _, _ = _epoch(0, 1)  # one process, after the first batch
    shards = []
    for rank in range(2):
        monkeypatch.setattr(distributed, "WORLD", distributed.World(rank=rank, size=2))
        monkeypatch.setattr("dartsnas.data.stream.world", lambda: distributed.WORLD)
        monkeypatch.setattr("dartsnas.data.stream.shard", distributed.shard)
        shards.append(_epoch(0, 1)[0])
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *shards):
        assert len(y0) == len(y1) == 4
        assert torch.equal(torch.cat([y0, y1]), y) and torch.equal(torch.cat([x0, x1]), x)
