"""What a method's training batch holds: :class:`BatchSpec` (what the method asks for) and :class:`Batch` (what the
batch maker, :mod:`contrastkit.batching`, delivers on the training device)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = ["SAMPLERS", "Batch", "BatchSpec"]

SAMPLERS = ("shuffle", "pk")


@dataclass(frozen=True)
class BatchSpec:
    """What a method's training batch must hold.

    ``views``: augmented views per sample (0: the inputs themselves, as float, unaugmented);
    ``labels``: the method needs class labels (supervised: refused on unlabelled data);
    ``sampler``: ``"shuffle"`` (a seeded permutation per epoch) or ``"pk"`` (P classes x K samples per batch,
    for triplet mining; ``samples_per_class`` = K);
    ``crop``: for sequences, the length of the random crop of each view (``None``: whole sequences);
    ``fields``: further named fields of the data and the views of each, e.g. ``{"caption": 0}`` (``views`` stays
    the default field's: ``x``, or the data's first field). A text field takes 0 or 1 views (it is never augmented:
    both give the stored text); other fields get their modality's augmentation preset for views >= 1. The default
    ``{}`` asks for nothing more: single-input methods are unchanged.
    """

    views: int = 2
    labels: bool = False
    sampler: str = "shuffle"
    samples_per_class: int | None = None
    crop: int | None = None
    fields: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.views, bool) or not isinstance(self.views, int) or self.views < 0:
            raise ValueError(f"BatchSpec: `views` must be an integer >= 0, got {self.views!r}")
        if not isinstance(self.fields, Mapping):
            raise ValueError(f"BatchSpec: `fields` must be a mapping of field names to view counts, e.g. "
                             f"{{'caption': 0}}, got {self.fields!r}")
        for name, views in self.fields.items():
            if not isinstance(name, str) or not name.isidentifier() or name in ("x", "y", "labels"):
                raise ValueError(f"BatchSpec: `fields` names must be identifiers other than 'x' (the default field: "
                                 f"its views are `views`), 'y' and 'labels'; got {name!r}")
            if isinstance(views, bool) or not isinstance(views, int) or views < 0:
                raise ValueError(f"BatchSpec: `fields`[{name!r}] must be a view count >= 0, got {views!r}")
        object.__setattr__(self, "fields", dict(self.fields))  # a copy: the caller's dict may change later

        if self.sampler not in SAMPLERS:
            raise ValueError(f"BatchSpec: `sampler` must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.sampler == "pk" and (not isinstance(self.samples_per_class, int) or self.samples_per_class < 2):
            raise ValueError("BatchSpec: sampler='pk' needs samples_per_class (K) >= 2")
        if self.sampler == "pk" and not self.labels:
            raise ValueError("BatchSpec: sampler='pk' draws classes, so it needs labels=True")
        if self.crop is not None and (isinstance(self.crop, bool) or not isinstance(self.crop, int) or self.crop < 1):
            raise ValueError(f"BatchSpec: `crop` must be None or an integer >= 1, got {self.crop!r}")

    def __hash__(self) -> int:
        return hash((self.views, self.labels, self.sampler, self.samples_per_class, self.crop,
                     tuple(self.fields.items())))


@dataclass
class Batch:
    """One training batch, on the training device.

    ``views``: ``batch_spec.views`` float tensors (B, ...) (the inputs themselves when ``views`` is 0);
    ``indices``: (B,) int64 sample ids (positions in the training set: the memory bank's rows);
    ``labels``: (B,) int64 class ids when the spec asks for them; ``generator``: the trainer's generator,
    for any randomness inside the step (it is checkpointed, so a resumed run draws the same numbers);
    ``fields``: each further field the spec names, as the list of its views (B, ...) (one tensor for 0 views: the
    inputs themselves, float for images / vectors / sequences, the stored uint8 bytes or int32 token ids for text).
    """

    views: list[Tensor]
    indices: Tensor
    labels: Tensor | None = None
    generator: torch.Generator | None = None
    fields: dict[str, list[Tensor]] = field(default_factory=dict)

    def field(self, name: str) -> Tensor:
        """The one tensor (B, ...) of field ``name`` (asked for with 0 or 1 views)."""
        if name not in self.fields:
            raise KeyError(f"this batch has no field {name!r}; its fields: {', '.join(self.fields) or 'none'} (name "
                           f"it in the method's batch_spec.fields)")
        views = self.fields[name]
        if len(views) != 1:
            raise ValueError(f"field {name!r} has {len(views)} views in this batch; take batch.fields[{name!r}][i]")
        return views[0]
