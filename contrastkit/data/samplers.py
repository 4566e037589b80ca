"""Which samples form each batch of an epoch, as a pure function of (seed, epoch, batch): resume at any batch.

* :class:`ShuffleSampler` -- a seeded permutation per epoch cut into full batches
  (:func:`~contrastkit.data.batches.epoch_batches`); the default.
* :class:`PKSampler` -- P classes x K samples per batch (Hermans, Beyer & Leibe 2017, "In Defense of the
  Triplet Loss for Person Re-Identification"), what online triplet mining needs: every anchor has
  positives and negatives in its batch. Batch ``b`` of epoch ``e`` draws its P distinct classes uniformly
  and K distinct samples of each (with replacement only for a class smaller than K) from
  ``np.random.default_rng([seed, e, b])``. An epoch has ``N // (P K)`` batches, so it sees about as many
  samples as a shuffled epoch.
* :class:`RankSlice` -- one process's share of another sampler's batches when several processes train together
  (``torchrun``): the global batch is still drawn from (seed, epoch, batch), and rank ``r`` of ``W`` takes rows
  ``r B/W .. (r+1) B/W`` of it, so the ranks' slices together are exactly the single-process batch and a resume
  at any batch stays exact.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from contrastkit.data.batches import epoch_batches, num_batches

__all__ = ["PKSampler", "RankSlice", "Sampler", "ShuffleSampler"]


class Sampler(ABC):
    """``batches(epoch, start_batch)`` yields int64 index tensors (B,); ``steps_per_epoch`` batches each."""

    steps_per_epoch: int

    @abstractmethod
    def batches(self, epoch: int, start_batch: int = 0) -> Iterator[Tensor]:
        """The batches of ``epoch`` from ``start_batch`` on, a pure function of (seed, epoch, batch)."""


class ShuffleSampler(Sampler):
    """A seeded permutation of ``n`` samples per epoch, cut into full batches of ``batch_size``."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.steps_per_epoch = num_batches(n, batch_size, drop_last=True)

    def batches(self, epoch: int, start_batch: int = 0) -> Iterator[Tensor]:
        return epoch_batches(self.n, self.batch_size, self.seed, epoch, start_batch=start_batch)


class PKSampler(Sampler):
    """P classes x K samples per batch (see the module docstring); ``batch_size`` must be a multiple of K."""

    def __init__(self, labels: Tensor | np.ndarray, batch_size: int, samples_per_class: int, seed: int) -> None:
        labels = np.asarray(labels.cpu() if isinstance(labels, Tensor) else labels).astype(np.int64)
        k = int(samples_per_class)
        if k < 2 or batch_size % k:
            raise ValueError(f"PKSampler: the batch size ({batch_size}) must be a multiple of the samples per class "
                             f"K = {k} (K >= 2)")
        if labels.size and labels.min() < 0:
            raise ValueError("PKSampler: the data has no labels; a P x K batch draws classes")
        self.classes, inverse = np.unique(labels, return_inverse=True)
        self.members = [np.flatnonzero(inverse == c) for c in range(len(self.classes))]
        self.p, self.k, self.seed = batch_size // k, k, seed
        if self.p < 2 or self.p > len(self.classes):
            raise ValueError(f"PKSampler: a batch of {batch_size} with K = {k} holds P = {self.p} classes; P must be "
                             f"between 2 and the {len(self.classes)} classes of the data")
        self.steps_per_epoch = max(1, len(labels) // batch_size)

    def batch(self, epoch: int, index: int) -> Tensor:
        """Batch ``index`` of ``epoch``: (P K,) sample ids, class by class."""
        rng = np.random.default_rng([self.seed, epoch, index])
        chosen = rng.choice(len(self.classes), size=self.p, replace=False)
        parts = [rng.choice(self.members[c], size=self.k, replace=len(self.members[c]) < self.k) for c in chosen]
        return torch.from_numpy(np.concatenate(parts).astype(np.int64))

    def batches(self, epoch: int, start_batch: int = 0) -> Iterator[Tensor]:
        if isinstance(start_batch, bool) or not isinstance(start_batch, int) or \
                not 0 <= start_batch <= self.steps_per_epoch:
            raise ValueError(f"PKSampler.batches: `start_batch` must be an int in [0, {self.steps_per_epoch}], got "
                             f"{start_batch!r}")
        for b in range(start_batch, self.steps_per_epoch):
            yield self.batch(epoch, b)


class RankSlice(Sampler):
    """Rank ``rank`` of ``world``'s contiguous slice of each batch of ``sampler`` (see the module docstring).

    The batch size of ``sampler`` (the global batch) must be a multiple of ``world``. A :class:`PKSampler`
    batch is laid out class by class (K samples each), so when P is a multiple of ``world`` every rank gets
    P / world whole classes; otherwise a class may be split between two ranks (each rank's in-batch mining then
    sees fewer positives for that class). The epoch length is the global sampler's: every rank takes the same
    number of steps.
    """

    def __init__(self, sampler: Sampler, rank: int, world: int, batch_size: int) -> None:
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"RankSlice: need 0 <= rank < world, got rank={rank}, world={world}")
        if batch_size % world:
            raise ValueError(f"RankSlice: the global batch size {batch_size} is not a multiple of the {world} "
                             f"processes")
        self.sampler, self.rank, self.world = sampler, rank, world
        self.local = batch_size // world
        self.steps_per_epoch = sampler.steps_per_epoch

    def batches(self, epoch: int, start_batch: int = 0) -> Iterator[Tensor]:
        start = self.rank * self.local
        for index in self.sampler.batches(epoch, start_batch=start_batch):
            yield index[start:start + self.local]
