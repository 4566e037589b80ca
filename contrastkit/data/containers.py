"""In-memory dataset containers: an input tensor with its labels, and a train/test pair.

Inputs come in three modalities (:mod:`contrastkit.data.modality`): images as ``uint8`` (N, C, H, W) that
become float only on the training device (:func:`contrastkit.data.batches.uint8_to_float`), vectors as
float32 (N, D) and sequences as float32 (N, C, T). Labels are ``int64`` of shape (N,), with ``-1`` for every
sample of an unlabelled dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

UNLABELLED = -1
MODALITIES = ("images", "vectors", "sequences")


def modality_of(x: Tensor) -> str | None:
    """The modality a tensor's dtype and shape say, or None if it fits none."""
    if x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] in (1, 3):
        return "images"
    if x.is_floating_point() and x.dim() == 2:
        return "vectors"
    if x.is_floating_point() and x.dim() == 3:
        return "sequences"
    return None


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """Inputs ``x`` and labels (N,) int64 (``-1`` = no label), held in memory.

    ``x`` is uint8 (N, C, H, W) images with C in {1, 3}, float (N, D) vectors or float (N, C, T) sequences;
    the modality follows from dtype and shape (:func:`modality_of`). Sequences may carry ``frame_labels``
    (N, F): a class for each of F frames (e.g. the phone of each 10 ms of speech; -1 where there is none),
    frame ``f`` covering samples ``[f * hop, (f + 1) * hop)`` with ``hop = T // F``.
    """

    x: Tensor  # (N, C, H, W) uint8 | (N, D) float | (N, C, T) float
    labels: Tensor  # (N,) int64
    frame_labels: Tensor | None = None  # sequences only: (N, F) int64, a class per frame (-1 = none)

    def __post_init__(self) -> None:
        where = "ArrayDataset"
        if not isinstance(self.x, Tensor) or not isinstance(self.labels, Tensor):
            raise TypeError(f"{where}: `x` and `labels` must be torch.Tensors, got "
                            f"{type(self.x).__name__} and {type(self.labels).__name__}")
        if modality_of(self.x) is None:
            raise ValueError(f"{where}: `x` must be uint8 images (N, C, H, W) with 1 or 3 channels, float vectors "
                             f"(N, D) or float sequences (N, C, T); got dtype {self.x.dtype} and shape "
                             f"{tuple(self.x.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.x.shape[0],):
            raise ValueError(f"{where}: `labels` must be an int64 tensor of shape ({self.x.shape[0]},), "
                             f"got dtype {self.labels.dtype} and shape {tuple(self.labels.shape)}")
        if self.frame_labels is not None:
            f = self.frame_labels
            if modality_of(self.x) != "sequences" or not isinstance(f, Tensor) or f.dtype != torch.int64 \
                    or f.dim() != 2 or f.shape[0] != self.x.shape[0] or f.shape[1] < 1 \
                    or self.x.shape[2] % f.shape[1] or (f.numel() and int(f.min()) < UNLABELLED):
                raise ValueError(f"{where}: `frame_labels` must be an int64 (N, F) tensor for sequences (N, C, T) "
                                 f"with T a multiple of F and values >= -1; got "
                                 f"{tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__} for x "
                                 f"{tuple(self.x.shape)}")
        if len(self):
            unlabelled = self.labels == UNLABELLED
            if bool((self.labels < UNLABELLED).any()) or (bool(unlabelled.any()) and not bool(unlabelled.all())):
                raise ValueError(f"{where}: `labels` must be all >= 0 (labelled) or all {UNLABELLED} "
                                 f"(unlabelled), got values in [{int(self.labels.min())}, "
                                 f"{int(self.labels.max())}]")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        kind = "labelled" if self.has_labels else "unlabelled"
        return f"ArrayDataset(n={len(self)}, {self.modality} {tuple(self.x.shape[1:])}, {kind})"

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.x[index], int(self.labels[index])

    @property
    def modality(self) -> str:
        return modality_of(self.x) or "unknown"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample: (C, H, W), (D,) or (C, T)."""
        return tuple(int(s) for s in self.x.shape[1:])

    @property
    def inputs(self) -> Tensor:
        """What evaluation embeds: ``x`` (an :class:`~contrastkit.data.stream.ImageFiles` gives itself)."""
        return self.x

    @property
    def frame_hop(self) -> int | None:
        """Samples per frame of ``frame_labels`` (None without them)."""
        return None if self.frame_labels is None else int(self.x.shape[2] // self.frame_labels.shape[1])

    @property
    def images(self) -> Tensor:
        """``x`` of image data (uint8 (N, C, H, W)); an error for other modalities."""
        self._need_images("images")
        return self.x

    def _need_images(self, what: str) -> None:
        if self.modality != "images":
            raise ValueError(f"ArrayDataset.{what}: this dataset holds {self.modality}, not images")

    @property
    def channels(self) -> int:
        """Image or sequence channels C."""
        if self.modality == "vectors":
            raise ValueError("ArrayDataset.channels: vectors have no channels")
        return int(self.x.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of images."""
        self._need_images("image_size")
        return int(self.x.shape[2]), int(self.x.shape[3])

    @property
    def has_labels(self) -> bool:
        return len(self) > 0 and int(self.labels[0]) != UNLABELLED


class SampleSet(Protocol):
    """What a train or test part answers, held in memory (:class:`ArrayDataset`) or read from disk on demand
    (:class:`~contrastkit.data.stream.ImageFiles`): its size, labels (N,) int64 (-1 = none), modality and the
    shape of one sample; ``inputs`` is what evaluation embeds (a tensor, or the files themselves)."""

    labels: Tensor  # (N,) int64

    def __len__(self) -> int: ...

    @property
    def modality(self) -> str: ...

    @property
    def sample_shape(self) -> tuple[int, ...]: ...

    @property
    def channels(self) -> int: ...

    @property
    def image_size(self) -> tuple[int, int]: ...

    @property
    def has_labels(self) -> bool: ...

    @property
    def inputs(self) -> object: ...


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """A train and a test :class:`ArrayDataset` with what a trainer or an evaluator needs to know.

    Both parts may instead be :class:`~contrastkit.data.stream.ImageFiles` (images decoded from disk on demand,
    ``streamed`` is then True); they answer the same questions but have no in-memory ``x``.

    ``num_classes`` is 0 and ``has_labels`` is False for unlabelled data (all labels ``-1``);
    evaluation that needs labels must check ``has_labels``. ``train_indices`` / ``test_indices``
    are positions in the source's own order (the array, or the sorted file list) when this
    library made the split, and ``None`` when the source came already split.
    """

    name: str
    train: SampleSet  # an ArrayDataset, or ImageFiles when streamed
    test: SampleSet
    num_classes: int
    class_names: tuple[str, ...] = ()
    frame_class_names: tuple[str, ...] = ()  # names of the frame classes (e.g. phones), when frames are labelled
    train_indices: np.ndarray | None = field(default=None, repr=False)
    test_indices: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        where = "DatasetSplits"
        if self.train.sample_shape != self.test.sample_shape and len(self.test):
            raise ValueError(f"{where}: train and test inputs differ in shape: "
                             f"{self.train.sample_shape} vs {self.test.sample_shape}")
        if self.train.modality != self.test.modality and len(self.test):
            raise ValueError(f"{where}: train holds {self.train.modality}, test {self.test.modality}")
        if self.num_classes < 0:
            raise ValueError(f"{where}: `num_classes` must be >= 0, got {self.num_classes}")

    def __repr__(self) -> str:
        return (f"DatasetSplits(name={self.name!r}, train={len(self.train)}, test={len(self.test)}, "
                f"{self.modality} {self.input_shape}, num_classes={self.num_classes})")

    @property
    def modality(self) -> str:
        return self.train.modality

    @property
    def streamed(self) -> bool:
        """True when the images stay on disk (:class:`~contrastkit.data.stream.ImageFiles`)."""
        return not isinstance(self.train, ArrayDataset)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample: (C, H, W), (D,) or (C, T)."""
        return self.train.sample_shape

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
