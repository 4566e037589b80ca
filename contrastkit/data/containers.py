"""In-memory dataset containers: a uint8 image tensor with its labels, and a train/test pair.

Images are stored as ``uint8`` tensors of shape (N, C, H, W) and become float only on the
training device (:func:`contrastkit.data.batches.uint8_to_float`); labels are ``int64`` of
shape (N,), with ``-1`` for every sample of an unlabelled dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

UNLABELLED = -1


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """Images (N, C, H, W) uint8 and labels (N,) int64 (``-1`` = no label), held in memory."""

    images: Tensor  # (N, C, H, W) uint8
    labels: Tensor  # (N,) int64

    def __post_init__(self) -> None:
        where = "ArrayDataset"
        if not isinstance(self.images, Tensor) or not isinstance(self.labels, Tensor):
            raise TypeError(f"{where}: `images` and `labels` must be torch.Tensors, got "
                            f"{type(self.images).__name__} and {type(self.labels).__name__}")
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"{where}: `images` must be a uint8 tensor of shape (N, C, H, W), got "
                             f"dtype {self.images.dtype} and shape {tuple(self.images.shape)}")
        if self.images.shape[1] not in (1, 3):
            raise ValueError(f"{where}: `images` must have 1 or 3 channels, got shape "
                             f"{tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"{where}: `labels` must be an int64 tensor of shape ({self.images.shape[0]},), "
                             f"got dtype {self.labels.dtype} and shape {tuple(self.labels.shape)}")
        if len(self):
            unlabelled = self.labels == UNLABELLED
            if bool((self.labels < UNLABELLED).any()) or (bool(unlabelled.any()) and not bool(unlabelled.all())):
                raise ValueError(f"{where}: `labels` must be all >= 0 (labelled) or all {UNLABELLED} "
                                 f"(unlabelled), got values in [{int(self.labels.min())}, "
                                 f"{int(self.labels.max())}]")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        kind = "labelled" if self.has_labels else "unlabelled"
        return (f"ArrayDataset(n={len(self)}, channels={self.channels}, image_size={self.image_size}, "
                f"{kind})")

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index], int(self.labels[index])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W)."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    @property
    def has_labels(self) -> bool:
        return len(self) > 0 and int(self.labels[0]) != UNLABELLED


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """A train and a test :class:`ArrayDataset` with what a trainer or an evaluator needs to know.

    ``num_classes`` is 0 and ``has_labels`` is False for unlabelled data (all labels ``-1``);
    evaluation that needs labels must check ``has_labels``. ``train_indices`` / ``test_indices``
    are positions in the source's own order (the array, or the sorted file list) when this
    library made the split, and ``None`` when the source came already split.
    """

    name: str
    train: ArrayDataset
    test: ArrayDataset
    num_classes: int
    class_names: tuple[str, ...] = ()
    train_indices: np.ndarray | None = field(default=None, repr=False)
    test_indices: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        where = "DatasetSplits"
        if self.train.images.shape[1:] != self.test.images.shape[1:] and len(self.test):
            raise ValueError(f"{where}: train and test images differ in (C, H, W): "
                             f"{tuple(self.train.images.shape[1:])} vs {tuple(self.test.images.shape[1:])}")
        if self.num_classes < 0:
            raise ValueError(f"{where}: `num_classes` must be >= 0, got {self.num_classes}")

    def __repr__(self) -> str:
        return (f"DatasetSplits(name={self.name!r}, train={len(self.train)}, test={len(self.test)}, "
                f"channels={self.channels}, image_size={self.image_size}, num_classes={self.num_classes})")

    @property
    def channels(self) -> int:
        return self.train.channels

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W)."""
        return self.train.image_size

    @property
    def has_labels(self) -> bool:
        return self.num_classes > 0
