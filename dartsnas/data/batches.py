"""Batched augmentation on the tensors' device, and the epochs of batches a search or training reads.

Small image datasets (CIFAR, MNIST) fit in GPU memory many times over, so, as airbench does, each split is
loaded once as one uint8 tensor and every epoch is cut and augmented with batched tensor ops on the device:
no DataLoader, no worker processes, no per-image Python in the training loop.

    train = load_images("cifar10", "train", download=True).to("cuda")
    mean, std = channel_stats(train.images)
    augment = Augment(mean, std, crop_padding=4, flip=True, cutout=16)
    for x, y in batches(train, 64, generator, augment): ...

Every random number (shuffle order, crop offsets, flips, cutout centres) comes from one CPU
`torch.Generator`, so its state can be saved in a checkpoint and a run repeats bit for bit on any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .imageset import ImageSet


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 N x C x H x W images, in [0, 1] units.

    Sums run in float64 over chunks of ~4M values, so 50,000 CIFAR images never need a float copy at once.
    """
    n, c, h, w = images.shape
    total = torch.zeros(c, dtype=torch.float64, device=images.device)
    total_sq = torch.zeros_like(total)
    step = max(1, (1 << 22) // (c * h * w))
    for start in range(0, n, step):
        x = images[start : start + step].to(torch.float64) / 255
        total += x.sum(dim=(0, 2, 3))
        total_sq += x.square().sum(dim=(0, 2, 3))
    count = n * h * w
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


def _check_cpu_generator(generator) -> None:
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(
            f"pass a CPU torch.Generator (got one on {generator.device}): random numbers are drawn "
            f"on the CPU so runs repeat bit for bit on any device"
        )


class Augment:
    """uint8 batch -> normalised float32 batch, with the DARTS CIFAR training augmentation.

    In the order of the official code: random crop from the image zero-padded by crop_padding, horizontal flip
    with probability 1/2, convert and normalise with (mean, std) in [0, 1] units, then cutout (DeVries & Taylor
    2017) zeroing a cutout x cutout square of the normalised tensor. Random numbers are drawn from the CPU
    `generator` in that order (crop offsets, flip mask, cutout centres) and moved to the batch's device.
    generator=None means evaluation: convert and normalise only.
    """

    def __init__(self, mean, std, crop_padding: int = 0, flip: bool = False, cutout: int = 0):
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ValueError(f"need one mean and one positive std per channel, got mean={mean}, std={std}")
        if crop_padding < 0 or cutout < 0:
            raise ValueError(f"crop_padding and cutout must be >= 0, got {crop_padding} and {cutout}")
        self.crop_padding, self.flip, self.cutout = int(crop_padding), bool(flip), int(cutout)

    def __repr__(self) -> str:
        return (
            f"Augment(mean={self.mean}, std={self.std}, crop_padding={self.crop_padding}, "
            f"flip={self.flip}, cutout={self.cutout})"
        )

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_cpu_generator(generator)
        if generator is not None and self.crop_padding:
            images = self._crop(images, generator)
        if generator is not None and self.flip:
            images = self._flip(images, generator)
        x = self.normalise(images)
        if generator is not None and self.cutout:
            x = self._cutout(x, generator)
        return x

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[1] != len(self.mean):
            raise ValueError(
                f"Augment has {len(self.mean)} channel means but the images have {images.shape[1]} channels"
            )
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return images.float().div_(255).sub_(mean).div_(std)

    def _crop(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, c, h, w = images.shape
        p, device = self.crop_padding, images.device
        padded = F.pad(images, (p, p, p, p))  # zero = black before normalising, as RandomCrop(padding=p)
        top, left = torch.randint(0, 2 * p + 1, (2, n), generator=generator).to(device)
        # One gather: output pixel (i, k, y, x) reads padded pixel (i, k, top_i + y, left_i + x).
        rows = (top[:, None] + torch.arange(h, device=device)).view(n, 1, h, 1)
        cols = (left[:, None] + torch.arange(w, device=device)).view(n, 1, 1, w)
        sample = torch.arange(n, device=device).view(n, 1, 1, 1)
        channel = torch.arange(c, device=device).view(1, c, 1, 1)
        return padded[sample, channel, rows, cols]

    def _flip(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        flipped = (torch.rand(len(images), generator=generator) < 0.5).to(images.device)
        return torch.where(flipped.view(-1, 1, 1, 1), images.flip(3), images)

    def _cutout(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        centre_y = torch.randint(0, h, (n, 1), generator=generator).to(x.device)
        centre_x = torch.randint(0, w, (n, 1), generator=generator).to(x.device)
        # As the official Cutout: rows [cy - L//2, cy + L//2) clipped to the image (so an odd L cuts L-1).
        half = self.cutout // 2
        ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
        in_rows = (ys >= centre_y - half) & (ys < centre_y + half)
        in_cols = (xs >= centre_x - half) & (xs < centre_x + half)
        hole = in_rows[:, None, :, None] & in_cols[:, None, None, :]
        return x.masked_fill(hole, 0.0)


def training_augment(config, data: ImageSet, mean, std) -> Augment:
    """The training augmentation a config (conv.config.ImageData) asks for, its defaults resolved for `data`:
    random-crop padding 4 for images of 32 pixels and more, else 0; flips for colour images only."""
    padding = config.crop_padding if config.crop_padding is not None else (4 if min(data.size) >= 32 else 0)
    flip = config.flip if config.flip is not None else data.in_channels == 3
    return Augment(mean, std, crop_padding=padding, flip=flip, cutout=config.cutout_length if config.cutout else 0)


def batches(
    data: ImageSet,
    batch_size: int,
    generator: torch.Generator | None,
    augment: Augment | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    skip: int = 0,
):
    """Iterate one epoch of (x float32, y int64) batches on data's device.

    The shuffle order is drawn from the CPU generator (torch's global RNG when it is None) when this is
    called, before any batch is augmented; augment gets the same generator. So a run resumed inside an
    epoch gets that epoch's order back by restoring the generator, calling this with `skip` (the batches
    already done, passed over without drawing), and restoring the generator's later state. Without
    augment, x is the images scaled to [0, 1].
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    _check_cpu_generator(generator)
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    return _epoch(data, order.to(data.images.device), batch_size, generator, augment, drop_last, skip)


def _epoch(data, order, batch_size, generator, augment, drop_last, skip):
    n = len(order)
    end = n - n % batch_size if drop_last else n
    for start in range(skip * batch_size, end, batch_size):
        index = order[start : start + batch_size]
        images = data.images[index]
        x = augment(images, generator) if augment is not None else images.float().div_(255)
        yield x, data.labels[index]
