"""What a method's training batch holds: :class:`BatchSpec` (what the method asks for) and :class:`Batch` (what the
batch maker, :mod:`contrastkit.batching`, delivers on the training device)."""

from __future__ import annotations

from dataclasses import dataclass

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
    ``crop``: for sequences, the length of the random crop of each view (``None``: whole sequences).
    """

    views: int = 2
    labels: bool = False
    sampler: str = "shuffle"
    samples_per_class: int | None = None
    crop: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.views, bool) or not isinstance(self.views, int) or self.views < 0:
            raise ValueError(f"BatchSpec: `views` must be an integer >= 0, got {self.views!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"BatchSpec: `sampler` must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.sampler == "pk" and (not isinstance(self.samples_per_class, int) or self.samples_per_class < 2):
            raise ValueError("BatchSpec: sampler='pk' needs samples_per_class (K) >= 2")
        if self.sampler == "pk" and not self.labels:
            raise ValueError("BatchSpec: sampler='pk' draws classes, so it needs labels=True")
        if self.crop is not None and (isinstance(self.crop, bool) or not isinstance(self.crop, int) or self.crop < 1):
            raise ValueError(f"BatchSpec: `crop` must be None or an integer >= 1, got {self.crop!r}")


@dataclass
class Batch:
    """One training batch, on the training device.

    ``views``: ``batch_spec.views`` float tensors (B, ...) (the inputs themselves when ``views`` is 0);
    ``indices``: (B,) int64 sample ids (positions in the training set: the memory bank's rows);
    ``labels``: (B,) int64 class ids when the spec asks for them; ``generator``: the trainer's generator,
    for any randomness inside the step (it is checkpointed, so a resumed run draws the same numbers).
    """

    views: list[Tensor]
    indices: Tensor
    labels: Tensor | None = None
    generator: torch.Generator | None = None
