"""In-memory dataset containers: named input fields with their labels, and a train/test pair.

A sample is a set of named fields of equal length: ``x`` alone for single-input data (the default field), or
e.g. ``image`` and ``caption``, ``audio`` and ``text``. Each field has a modality (:mod:`contrastkit.data.modality`):
images as ``uint8`` (N, C, H, W) that become float only on the training device
(:func:`contrastkit.data.batches.uint8_to_float`), vectors as float32 (N, D), sequences as float32 (N, C, T), and
text as uint8 (N, L) UTF-8 bytes or int32 (N, L) token ids (:mod:`contrastkit.data.text`). Labels are ``int64`` of
shape (N,), with ``-1`` for every sample of an unlabelled dataset.

The default field (``ArrayDataset.x``, named ``x_field``: ``"x"`` unless the data names it otherwise) is what every
single-input part reads (a method's ``batch_spec.views``, evaluation's ``inputs``, ``modality``, ``input_shape``);
the other fields (``extra_fields``) are asked for by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

UNLABELLED = -1
MODALITIES = ("images", "vectors", "sequences")  # of the inputs a method augments
FIELD_MODALITIES = (*MODALITIES, "text")  # of any field: text is never augmented
#: names a field may not take: the label keys of an ``.npz`` (:mod:`contrastkit.data.npfiles`)
RESERVED_FIELD_NAMES = ("y", "labels")


def modality_of(x: Tensor) -> str | None:
    """The modality a tensor's dtype and shape say, or None if it fits none."""
    if x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] in (1, 3):
        return "images"
    if x.is_floating_point() and x.dim() == 2:
        return "vectors"
    if x.is_floating_point() and x.dim() == 3:
        return "sequences"
    if x.dtype in (torch.uint8, torch.int32) and x.dim() == 2:  # UTF-8 bytes / token ids (data.text)
        return "text"
    return None


def check_field_name(name: object, where: str) -> str:
    """A field name: a Python identifier (so ``<name>_train`` keys and ``batch.fields[name]`` read plainly), not a
    label key and not ending in ``_train`` / ``_test``."""
    if not isinstance(name, str) or not name.isidentifier() or name in RESERVED_FIELD_NAMES \
            or name.endswith(("_train", "_test")):
        raise ValueError(f"{where}: field names must be identifiers other than {RESERVED_FIELD_NAMES} that do not "
                         f"end in '_train' / '_test', got {name!r}")
    return name


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """Inputs ``x`` (the default field), further named fields and labels (N,) int64 (``-1`` = no label), in memory.

    ``x`` is uint8 (N, C, H, W) images with C in {1, 3}, float (N, D) vectors, float (N, C, T) sequences or text
    (uint8 / int32 (N, L), :mod:`contrastkit.data.text`); the modality follows from dtype and shape
    (:func:`modality_of`). Sequences may carry ``frame_labels``
    (N, F): a class for each of F frames (e.g. the phone of each 10 ms of speech; -1 where there is none),
    frame ``f`` covering samples ``[f * hop, (f + 1) * hop)`` with ``hop = T // F``.

    ``extra_fields`` maps further field names to tensors of any modality with the same N (e.g.
    ``ArrayDataset(images, labels, extra_fields={"caption": encode_texts(captions)})``); ``x_field`` names the
    default field (``"x"``; a file's first field otherwise). :meth:`from_fields` builds one from all fields by name.
    """

    x: Tensor  # (N, C, H, W) uint8 | (N, D) float | (N, C, T) float | (N, L) uint8 / int32 text
    labels: Tensor  # (N,) int64
    frame_labels: Tensor | None = None  # sequences only: (N, F) int64, a class per frame (-1 = none)
    extra_fields: Mapping[str, Tensor] = field(default_factory=dict)  # name -> (N, ...) further fields
    x_field: str = "x"  # the default field's name

    def __post_init__(self) -> None:
        where = "ArrayDataset"
        if not isinstance(self.x, Tensor) or not isinstance(self.labels, Tensor):
            raise TypeError(f"{where}: `x` and `labels` must be torch.Tensors, got "
                            f"{type(self.x).__name__} and {type(self.labels).__name__}")
        if modality_of(self.x) is None:
            raise ValueError(f"{where}: `x` must be uint8 images (N, C, H, W) with 1 or 3 channels, float vectors "
                             f"(N, D), float sequences (N, C, T) or text (uint8 bytes / int32 token ids (N, L)); "
                             f"got dtype {self.x.dtype} and shape {tuple(self.x.shape)}")
        self._check_fields(where)
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

    def _check_fields(self, where: str) -> None:
        check_field_name(self.x_field, f"{where}: `x_field`")
        if not isinstance(self.extra_fields, Mapping):
            raise TypeError(f"{where}: `extra_fields` must be a mapping of field names to tensors, got "
                            f"{type(self.extra_fields).__name__}")
        for name, tensor in self.extra_fields.items():
            check_field_name(name, f"{where}: `extra_fields`")
            if name == self.x_field:
                raise ValueError(f"{where}: field {name!r} is both `x` and in `extra_fields`; give it once")
            if not isinstance(tensor, Tensor) or modality_of(tensor) is None:
                shown = f"dtype {tensor.dtype} and shape {tuple(tensor.shape)}" if isinstance(tensor, Tensor) \
                    else type(tensor).__name__
                raise ValueError(f"{where}: field {name!r} must be a tensor of images, vectors, sequences or text "
                                 f"(see ArrayDataset), got {shown}")
            if tensor.shape[0] != self.x.shape[0]:
                raise ValueError(f"{where}: field {name!r} has {tensor.shape[0]} samples but {self.x_field!r} has "
                                 f"{self.x.shape[0]}; every field needs one row per sample")
        object.__setattr__(self, "extra_fields", dict(self.extra_fields))  # a copy: the caller's dict may change

    @classmethod
    def from_fields(cls, fields: Mapping[str, Tensor], labels: Tensor | None = None,
                    frame_labels: Tensor | None = None) -> ArrayDataset:
        """A dataset from all its fields by name; the first is the default field (``x``). ``labels`` None: -1."""
        if not isinstance(fields, Mapping) or not fields:
            raise ValueError("ArrayDataset.from_fields: `fields` must be a non-empty mapping of names to tensors")
        (first, x), *rest = fields.items()
        if labels is None and isinstance(x, Tensor):
            labels = torch.full((x.shape[0],), UNLABELLED, dtype=torch.int64)
        return cls(x, labels, frame_labels, dict(rest), first)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __repr__(self) -> str:
        kind = "labelled" if self.has_labels else "unlabelled"
        named = "".join(f", {name}: {modality_of(t)} {tuple(t.shape[1:])}" for name, t in self.fields.items()
                        if name != self.x_field)
        default = "" if self.x_field == "x" else f"{self.x_field}: "
        return f"ArrayDataset(n={len(self)}, {default}{self.modality} {tuple(self.x.shape[1:])}{named}, {kind})"

    @property
    def fields(self) -> dict[str, Tensor]:
        """Every field by name, the default field first."""
        return {self.x_field: self.x, **self.extra_fields}

    @property
    def field_names(self) -> tuple[str, ...]:
        return (self.x_field, *self.extra_fields)

    def field(self, name: str) -> Tensor:
        """The field ``name`` (N, ...) in stored form; ``"x"`` always names the default field."""
        if name == self.x_field or name == "x":
            return self.x
        if name not in self.extra_fields:
            raise ValueError(f"this dataset has no field {name!r}; its fields: {', '.join(self.field_names)}")
        return self.extra_fields[name]

    def field_inputs(self, name: str) -> Tensor:
        """What evaluation embeds for field ``name`` (see :class:`SampleSet`)."""
        return self.field(name)

    def field_modality(self, name: str) -> str:
        return modality_of(self.field(name)) or "unknown"

    def take(self, index: Tensor | np.ndarray) -> ArrayDataset:
        """The samples at ``index`` (int positions or a bool mask) of every field, labels and frame labels."""
        index = torch.as_tensor(index)
        frames = None if self.frame_labels is None else self.frame_labels[index]
        return ArrayDataset(self.x[index], self.labels[index], frames,
                            {name: t[index] for name, t in self.extra_fields.items()}, self.x_field)

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
        if self.modality in ("vectors", "text"):
            raise ValueError(f"ArrayDataset.channels: {self.modality} have no channels")
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
    shape of one sample; ``inputs`` is what evaluation embeds (a tensor, or the files themselves), of the default
    field; ``field_inputs(name)`` the same for any of its ``field_names`` (the default first)."""

    labels: Tensor  # (N,) int64
    x_field: str

    @property
    def field_names(self) -> tuple[str, ...]: ...

    def field_inputs(self, name: str) -> object: ...

    def field_modality(self, name: str) -> str: ...

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
    #: the view augmentation preset chosen for this data (e.g. ``objects`` for fashion-mnist), the default of a run
    #: that names none; None: the modality's default (:func:`contrastkit.batching.default_augment`)
    augment: str | None = None

    def __post_init__(self) -> None:
        where = "DatasetSplits"
        if self.train.sample_shape != self.test.sample_shape and len(self.test):
            raise ValueError(f"{where}: train and test inputs differ in shape: "
                             f"{self.train.sample_shape} vs {self.test.sample_shape}")
        if self.train.modality != self.test.modality and len(self.test):
            raise ValueError(f"{where}: train holds {self.train.modality}, test {self.test.modality}")
        if len(self.test) and (self.train.field_names != self.test.field_names):
            raise ValueError(f"{where}: train and test hold different fields: {', '.join(self.train.field_names)} vs "
                             f"{', '.join(self.test.field_names)}")
        for name in self.train.field_names[1:] if len(self.test) else ():
            a, b = self.train.field_inputs(name), self.test.field_inputs(name)
            text = self.train.field_modality(name) == "text"  # texts may be padded to another length per split
            if self.train.field_modality(name) != self.test.field_modality(name) or a.dtype != b.dtype \
                    or (a.shape[1:] != b.shape[1:] and not text):
                raise ValueError(f"{where}: field {name!r} differs between train ({a.dtype} {tuple(a.shape[1:])}) "
                                 f"and test ({b.dtype} {tuple(b.shape[1:])})")
        if self.num_classes < 0:
            raise ValueError(f"{where}: `num_classes` must be >= 0, got {self.num_classes}")

    def __repr__(self) -> str:
        return (f"DatasetSplits(name={self.name!r}, train={len(self.train)}, test={len(self.test)}, "
                f"{self.modality} {self.input_shape}, num_classes={self.num_classes})")

    @property
    def modality(self) -> str:
        """The default field's modality."""
        return self.train.modality

    @property
    def field_names(self) -> tuple[str, ...]:
        """The names of the fields of every sample, the default field (``x``) first."""
        return self.train.field_names

    def field_modality(self, name: str) -> str:
        return self.train.field_modality(name)

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
