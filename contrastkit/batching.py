"""Between the sampled indices and the method: the batch maker, and the view augmentation of each modality.

:class:`BatchMaker` holds the training inputs on the training device and turns a batch of sample ids into the
:class:`~contrastkit.methods.base.Batch` a method's :class:`~contrastkit.methods.base.BatchSpec` asks for:

* ``views`` augmented views of each sample (per-sample random parameters, drawn from the trainer's generator on
  the device): images through :mod:`contrastkit.augment` (uint8 batches become float on the device, once, by
  :func:`~contrastkit.data.batches.uint8_to_float`), vectors through SCARF corruption
  (:class:`~contrastkit.augment.tabular.ScarfAugment`), sequences through random crops
  (:class:`~contrastkit.augment.sequence.RandomCrop1d`);
* ``views == 0``: the inputs themselves, as float (cropped for sequences when the spec has a crop);
* labels when the spec asks for them.

:func:`model_input` is the one conversion of stored inputs to what an encoder takes, used for training views
and for evaluation alike.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contrastkit.augment import AUGMENTS, get_augment
from contrastkit.augment.sequence import RandomCrop1d
from contrastkit.augment.tabular import ScarfAugment
from contrastkit.data.batches import uint8_to_float
from contrastkit.data.containers import ArrayDataset
from contrastkit.methods.base import Batch, BatchSpec

__all__ = ["AUGMENTS", "BatchMaker", "default_augment", "make_augment", "model_input"]


def model_input(x: Tensor) -> Tensor:
    """Stored inputs -> encoder inputs: uint8 images -> float in [0, 1]; vectors and sequences as float32."""
    return uint8_to_float(x) if x.dtype == torch.uint8 else x.float()


def default_augment(train: ArrayDataset) -> str:
    if train.modality == "images":
        return "mnist" if train.channels == 1 else "cifar"
    return AUGMENTS[train.modality][0]


def make_augment(name: str | None, train: ArrayDataset, spec: BatchSpec) -> nn.Module:
    """The view augmentation ``name`` (None: the modality's default) for the training inputs ``train``."""
    modality = train.modality
    name = name or default_augment(train)
    if name not in AUGMENTS[modality]:
        raise ValueError(f"augmentation {name!r} does not apply to {modality}; use one of {AUGMENTS[modality]}")
    if modality == "images":
        return get_augment(name, size=train.image_size[0])
    if modality == "vectors":
        return ScarfAugment(train.x)
    return RandomCrop1d(spec.crop, noise=0.0 if spec.views <= 1 else 0.05)


class BatchMaker:
    """``maker(index, generator) -> Batch`` for a method's :class:`BatchSpec` (see the module docstring)."""

    def __init__(self, train: ArrayDataset, spec: BatchSpec, augment: nn.Module | None, device: torch.device,
                 channels_last: bool = False) -> None:
        if spec.labels and not train.has_labels:
            raise ValueError("this method needs labelled data; the training data has no labels")
        self.spec, self.device, self.channels_last = spec, device, channels_last
        self.n = len(train)
        # stored form on the device: uint8 images, float vectors / sequences; None for files streamed from disk,
        # whose batches the caller brings (``inputs``)
        self.x = train.x.to(device) if isinstance(train, ArrayDataset) else None
        self.labels = train.labels.to(device) if spec.labels else None
        self.augment = augment.to(device) if augment is not None else None
        self.crop = RandomCrop1d(spec.crop) if train.modality == "sequences" and spec.crop else None

    def __len__(self) -> int:
        return self.n

    def views(self, inputs: Tensor, generator: torch.Generator | None) -> list[Tensor]:
        if self.spec.views == 0:
            view = model_input(inputs) if self.crop is None else self.crop(inputs, generator=generator)
            views = [view]
        else:
            if self.augment is None:
                raise ValueError("BatchMaker: the method asks for augmented views but no augmentation was given")
            with torch.no_grad():
                views = [self.augment(inputs, generator=generator) for _ in range(self.spec.views)]
        if self.channels_last and views[0].dim() == 4:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return views

    def __call__(self, index: Tensor, generator: torch.Generator | None = None, inputs: Tensor | None = None
                 ) -> Batch:
        """The batch of samples ``index``; ``inputs`` (B, ...) in stored form are those samples when the data is
        streamed (on the CPU, pinned or not), else they are taken from the data held on the device."""
        index = index.to(self.device, non_blocking=True)
        if inputs is not None:
            inputs = inputs.to(self.device, non_blocking=True)
        elif self.x is None:
            raise ValueError("BatchMaker: the training data is streamed from disk; pass each batch's `inputs`")
        else:
            inputs = self.x[index]  # (B, ...) stored form
        labels = self.labels[index] if self.labels is not None else None
        return Batch(self.views(inputs, generator), index, labels, generator)
