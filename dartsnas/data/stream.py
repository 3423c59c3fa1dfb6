"""Image folders too big for memory (ImageNet), decoded batch by batch in DataLoader worker processes.

The folder is laid out as for the `imagefolder` dataset: `<root>/train/<class>/<image>` and
`<root>/test/<class>/<image>` (ImageNet's validation images, sorted into class folders, as test/).
Augmentation follows the official train_imagenet.py: random resized crop, horizontal flip, colour
jitter (0.4, 0.4, 0.4, 0.2) for training; resize to 256/224 of the crop and a centre crop for evaluation;
normalised with the usual ImageNet channel statistics. Needs torchvision (`pip install 'dartsnas[imagenet]'`).

Shuffling and the augmentations' seeds come from the trainer's CPU generator, whose state the checkpoint
keeps; each image's augmentation is seeded by its place in the epoch (`Shuffled`), so a run resumed inside an
epoch gets exactly the images and augmentations it would have got, whichever worker decodes them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.config import ConfigError
from ..core.distributed import shard, world
from .download import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _torchvision():
    try:
        import torchvision
        from torchvision import datasets, transforms  # noqa: F401  (fails where the wheel does not match torch)
    except (ImportError, RuntimeError) as err:
        raise ConfigError(
            f"data_loader: workers needs torchvision ({type(err).__name__}: {err}); install it with "
            "pip install 'dartsnas[imagenet]' (a torchvision built for your torch), or use "
            "data_loader: memory"
        ) from None
    return torchvision


class OnDevice:
    """A DataLoader's batches moved to the device (pinned and asynchronous on CUDA)."""

    def __init__(self, loader, device: torch.device):
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for x, y in self.loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


class Seeded(torch.utils.data.Dataset):
    """`dataset` in the order `order`; item i is made with torch's generator seeded by `seed + places[i]` (its
    place in the epoch), in a worker or (no workers) in the main process, whose own random state is left as
    it was."""

    def __init__(self, dataset, order: torch.Tensor, seed: int, places: torch.Tensor):
        self.dataset, self.order, self.seed, self.places = dataset, order.tolist(), seed, places.tolist()

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed + self.places[i])
            return self.dataset[self.order[i]]


class Shuffled:
    """The training split, streamed by DataLoader workers in full batches, shuffled every epoch."""

    def __init__(self, dataset, batch_size: int, generator: torch.Generator, workers: int, device: torch.device):
        self.dataset, self.batch_size, self.generator, self.workers = dataset, batch_size, generator, workers
        self.device = device

    def __len__(self) -> int:
        return len(self.dataset) // self.batch_size  # full batches only, as the official loader (drop_last)

    def __iter__(self):
        return iter(self.epoch())

    def epoch(self, skip: int = 0) -> OnDevice:
        """This epoch's batches after the first `skip`: the order and the seed are drawn now, then the
        batches done are cut off (their images are never decoded). Data-parallel: this rank's shard of each
        global batch only, with the augmentation its images would have had in one process."""
        order = torch.randperm(len(self.dataset), generator=self.generator)
        seed = int(torch.randint(2**62, (), generator=self.generator))
        places = torch.arange(skip * self.batch_size, len(self) * self.batch_size)
        places = shard(places.view(-1, self.batch_size), dim=1).reshape(-1)  # [global batch, this rank's rows]
        # The loader's own generator: it draws its workers' base seed from it, not from torch's global one, which
        # drop path draws from (a resumed epoch would otherwise see other masks).
        loader = torch.utils.data.DataLoader(
            Seeded(self.dataset, order[places], seed, places),
            self.batch_size // world().size,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(seed),
        )
        return OnDevice(loader, self.device)


def prepare_stream(config, device: torch.device, generator: torch.Generator):
    """(train, valid or None, test, in_channels, num_classes, (size, size), classes, mean, std): train.TrainData."""
    tv = _torchvision()
    if config.data_dir is None:
        raise ConfigError(
            "data_loader: workers reads an image folder: set data_dir to a folder laid out as "
            "<data_dir>/train/<class>/<image> and <data_dir>/test/<class>/<image>"
        )
    root, size = Path(config.data_dir).expanduser(), config.image_size
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(
                f"no '{split}' folder in {root}; lay images out as {root}/train/<class>/<image> and "
                f"{root}/test/<class>/<image>"
            )
    t = tv.transforms
    normalise = [t.ToTensor(), t.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    train_tf = t.Compose(
        [t.RandomResizedCrop(size), t.RandomHorizontalFlip(), t.ColorJitter(0.4, 0.4, 0.4, 0.2), *normalise]
    )
    eval_tf = t.Compose([t.Resize(round(size * 256 / 224)), t.CenterCrop(size), *normalise])
    train = tv.datasets.ImageFolder(str(root / "train"), train_tf)
    held = tv.datasets.ImageFolder(str(root / "train"), eval_tf)  # the same files, without augmentation
    test = tv.datasets.ImageFolder(str(root / "test"), eval_tf)
    if test.classes != train.classes:
        raise DataError(
            f"the test folder's classes differ from the train folder's in {root}; both need the same class folders"
        )
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed))
    if config.subset is not None:
        order = order[: config.subset]
    held_out = int(len(order) * config.valid_portion)
    if config.valid_portion and (held_out < 1 or len(order) - held_out < 2):
        raise ConfigError(
            f"valid_portion={config.valid_portion} of {len(order)} training images leaves no validation "
            "image or too few training images; use more data or another valid_portion (0 for none)"
        )
    train_set = torch.utils.data.Subset(train, order[held_out:].tolist())
    valid_set = torch.utils.data.Subset(held, order[:held_out].tolist()) if held_out else None

    def loader(dataset, batch_size: int):  # evaluation: in order; its seed drawn from its own generator (above)
        if world().distributed:  # each rank its share of the images; the trainer adds up the sums
            dataset = torch.utils.data.Subset(dataset, range(world().rank, len(dataset), world().size))
        return OnDevice(
            torch.utils.data.DataLoader(
                dataset,
                batch_size,
                num_workers=config.workers,
                pin_memory=device.type == "cuda",
                generator=torch.Generator().manual_seed(0),
            ),
            device,
        )

    return (
        Shuffled(train_set, config.batch_size, generator, config.workers, device),
        loader(valid_set, 2 * config.batch_size) if valid_set is not None else None,
        loader(test, 2 * config.batch_size),
        3,
        len(train.classes),
        (size, size),
        list(train.classes),
        IMAGENET_MEAN,
        IMAGENET_STD,
    )
