"""One split of an image dataset held whole as tensors: `ImageSet`, the type every loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch

SPLITS = ("train", "test")


@dataclass
class ImageSet:
    """One split of a dataset, whole: uint8 images N x C x H x W and int64 labels N."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 N x C x H x W, got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be int64 of length {len(self.images)}, got {self.labels.dtype} {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.images)

    @property
    def in_channels(self) -> int:
        return self.images.shape[1]

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.images.shape[2:])

    @property
    def resolution(self) -> int:
        return self.images.shape[2]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device) -> ImageSet:
        return ImageSet(self.images.to(device), self.labels.to(device), list(self.classes))

    def subset(self, indices: torch.Tensor) -> ImageSet:
        indices = torch.as_tensor(indices, device=self.images.device)
        return ImageSet(self.images[indices].contiguous(), self.labels[indices], list(self.classes))
