"""Between the sampled indices and the method: the batch maker, and the view augmentation of each modality.

:class:`BatchMaker` holds the training inputs on the training device and turns a batch of sample ids into the
:class:`~contrastkit.methods.base.Batch` a method's :class:`~contrastkit.methods.base.BatchSpec` asks for:

* ``views`` augmented views of each sample (per-sample random parameters, drawn from the trainer's generator on
  the device): images through :mod:`contrastkit.augment` (uint8 batches become float on the device, once, by
  :func:`~contrastkit.data.batches.uint8_to_float`), vectors through SCARF corruption
  (:class:`~contrastkit.augment.tabular.ScarfAugment`), sequences through random crops
  (:class:`~contrastkit.augment.sequence.RandomCrop1d`);
* ``views == 0``: the inputs themselves, as float (cropped for sequences when the spec has a crop);
* labels when the spec asks for them;
* the further named fields the spec asks for (``spec.fields``, e.g. ``{"caption": 0}``), each with its own views
  in :attr:`Batch.fields <contrastkit.methods.base.Batch.fields>`: images, vectors and sequences through their
  modality's default preset, text (:mod:`contrastkit.data.text`) never augmented (0 or 1 views: the stored bytes
  or token ids; more is refused).

The trainer's ``augment`` (the ``augment`` setting) makes the default field's views; a mapping of field names to
modules may give any field's augmentation instead (``"x"`` names the default field).

:func:`model_input` is the one conversion of stored inputs to what an encoder takes, used for training views
and for evaluation alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from contrastkit.augment import AUGMENTS, get_augment
from contrastkit.augment.sequence import RandomCrop1d
from contrastkit.augment.tabular import ScarfAugment
from contrastkit.data.batches import model_input
from contrastkit.data.containers import ArrayDataset, SampleSet
from contrastkit.methods.base import Batch, BatchSpec

__all__ = ["AUGMENTS", "BatchMaker", "KeepText", "default_augment", "make_augment", "model_input"]


class KeepText(nn.Module):
    """The "augmentation" of a text field: the text itself (text is never augmented; one view at most)."""

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return x


def default_augment(train: ArrayDataset, field: str | None = None) -> str:
    """The default augmentation preset of the default field of ``train`` (or of ``field``)."""
    if field is None:  # (image files streamed from disk answer these questions without an in-memory x)
        modality, channels = train.modality, (train.channels if train.modality == "images" else 0)
    else:
        modality, channels = train.field_modality(field), int(train.field(field).shape[1])
    if modality == "images":
        return "mnist" if channels == 1 else "cifar"
    if modality == "text":
        return "none"
    return AUGMENTS[modality][0]


def _text_views(views: int, field: str) -> None:
    if views > 1:
        raise ValueError(f"field {field!r} holds text, which is never augmented: a method may ask for 0 or 1 views "
                         f"of it (both give the stored text), not {views}")


def make_augment(name: str | None, train: ArrayDataset, spec: BatchSpec, field: str | None = None) -> nn.Module:
    """The view augmentation ``name`` (None: the modality's default) for the training inputs ``train``: of its
    default field, or of the named ``field`` (whose views are ``spec.fields[field]``)."""
    views = spec.views if field is None else spec.fields.get(field, 0)
    modality = train.modality if field is None else train.field_modality(field)
    if modality == "text":
        _text_views(views, train.x_field if field is None else field)
        if name not in (None, "none"):
            raise ValueError(f"augmentation {name!r} does not apply to text: text is never augmented")
        return KeepText()
    name = name or default_augment(train, field)
    if name not in AUGMENTS[modality]:
        raise ValueError(f"augmentation {name!r} does not apply to {modality}; use one of {AUGMENTS[modality]}")
    if modality == "images":
        return get_augment(name, size=train.image_size[0] if field is None else int(train.field(field).shape[2]))
    if modality == "vectors":
        return ScarfAugment(train.x if field is None else train.field(field))
    return RandomCrop1d(spec.crop, noise=0.0 if views <= 1 else 0.05)


@dataclass
class _Field:
    """One field of the batch: its stored samples on the device (None: streamed, the caller brings them), the
    views asked for, their augmentation and the crop of 0 views of sequences."""

    name: str
    stored: Tensor | None
    views: int
    augment: nn.Module | None
    crop: RandomCrop1d | None


class BatchMaker:
    """``maker(index, generator) -> Batch`` for a method's :class:`BatchSpec` (see the module docstring)."""

    def __init__(self, train: SampleSet, spec: BatchSpec, augment: nn.Module | Mapping[str, nn.Module] | None,
                 device: torch.device, channels_last: bool = False) -> None:
        if spec.labels and not train.has_labels:
            raise ValueError("this method needs labelled data; the training data has no labels")
        missing = [name for name in spec.fields if name not in train.field_names]
        if missing:
            raise ValueError(f"this method needs the field(s) {', '.join(map(repr, missing))}; the training data has "
                             f"{', '.join(map(repr, train.field_names))} (load them with fields=..., --fields)")
        augments = dict(augment) if isinstance(augment, Mapping) else {"x": augment}
        unknown = [name for name in augments if name != "x" and name not in spec.fields]
        if unknown:
            raise ValueError(f"BatchMaker: augmentation given for {unknown}, which the batch spec does not ask for "
                             f"(its fields: x, {', '.join(spec.fields) or 'no other'})")
        self.spec, self.device, self.channels_last = spec, device, channels_last
        self.n = len(train)
        if train.modality == "text":
            _text_views(spec.views, train.x_field)
        # stored form on the device: uint8 images, float vectors / sequences, uint8 / int32 text; None for files
        # streamed from disk, whose batches the caller brings (``inputs``)
        self.x = train.x.to(device) if isinstance(train, ArrayDataset) else None
        self.labels = train.labels.to(device) if spec.labels else None
        self.augment = augments["x"].to(device) if augments.get("x") is not None else None
        self.crop = RandomCrop1d(spec.crop) if train.modality == "sequences" and spec.crop else None
        self.default = _Field(train.x_field, self.x, spec.views, self.augment, self.crop)
        self.fields = {name: self._field(train, name, views, augments.get(name)) for name, views in spec.fields.items()}

    def _field(self, train: SampleSet, name: str, views: int, augment: nn.Module | None) -> _Field:
        assert isinstance(train, ArrayDataset)  # streamed image files have the field x alone (checked above)
        if views > 0 and augment is None:
            augment = make_augment(None, train, self.spec, name)
        elif train.field_modality(name) == "text":
            _text_views(views, name)
        crop = RandomCrop1d(self.spec.crop) if train.field_modality(name) == "sequences" and self.spec.crop else None
        return _Field(name, train.field(name).to(self.device), views,
                      augment.to(self.device) if augment is not None else None, crop)

    def __len__(self) -> int:
        return self.n

    def _views(self, field: _Field, inputs: Tensor, generator: torch.Generator | None) -> list[Tensor]:
        if field.views == 0:
            views = [model_input(inputs) if field.crop is None else field.crop(inputs, generator=generator)]
        else:
            if field.augment is None:
                raise ValueError("BatchMaker: the method asks for augmented views but no augmentation was given")
            with torch.no_grad():
                views = [field.augment(inputs, generator=generator) for _ in range(field.views)]
        if self.channels_last and views[0].dim() == 4:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return views

    def views(self, inputs: Tensor, generator: torch.Generator | None) -> list[Tensor]:
        """The default field's views of ``inputs`` (B, ...) in stored form."""
        return self._views(self.default, inputs, generator)

    def __call__(self, index: Tensor, generator: torch.Generator | None = None, inputs: Tensor | None = None
                 ) -> Batch:
        """The batch of samples ``index``; ``inputs`` (B, ...) in stored form are those samples when the data is
        streamed (on the CPU, pinned or not), else they are taken from the data held on the device. The default
        field's views are drawn first, then each further field's in the spec's order (so single-input batches
        draw exactly what they always drew)."""
        index = index.to(self.device, non_blocking=True)
        if inputs is not None:
            inputs = inputs.to(self.device, non_blocking=True)
        elif self.x is None:
            raise ValueError("BatchMaker: the training data is streamed from disk; pass each batch's `inputs`")
        else:
            inputs = self.x[index]  # (B, ...) stored form
        labels = self.labels[index] if self.labels is not None else None
        views = self.views(inputs, generator)
        fields = {name: self._views(field, field.stored[index], generator)  # type: ignore[index]
                  for name, field in self.fields.items()}
        return Batch(views, index, labels, generator, fields)
