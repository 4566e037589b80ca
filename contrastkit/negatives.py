"""The three ways to get negatives (survey F.2): end-to-end in-batch, a memory bank, a MoCo queue.

Every source answers one question for a training step -- given the step's queries, keys and sample
indices, what are the positive, the negatives and the labels that mark false negatives -- and has one
after-step update (:meth:`NegativeSource.update`). All state lives in registered buffers, so a
checkpoint of the method (its ``state_dict``) holds the queue or the bank and a resumed run continues
with exactly the same negatives. Updates take already-gathered tensors: under DDP the trainer
all-gathers keys and indices first, and every rank applies the same update.

* :class:`InBatchNegatives` -- end-to-end (SimCLR): the other samples of the batch are the negatives;
  nothing is stored. The pool is the batch: gradient accumulation does not enlarge it.
* :class:`MemoryBank` -- Wu et al. 2018 ("Unsupervised Feature Learning via Non-Parametric Instance
  Discrimination"): one stored, L2-normalised vector per training sample; after each step the rows of
  the batch move towards the new features with momentum, :math:`v_i \\leftarrow \\mathrm{normalise}(m v_i +
  (1 - m) f_i)`; the positive of sample i is its own row, the negatives are (sampled) other rows.
* :class:`MoCoQueue` -- He et al. 2020 (MoCo): a FIFO queue of the last K keys from the momentum
  encoder; any batch size (no K % B == 0 requirement; wrap-around writes); the keys' sample ids are kept
  so a sample's own older key can be masked as a false negative.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit._checks import checks_enabled

__all__ = ["BANK_MOMENTUM", "QUEUE_SIZE", "Candidates", "InBatchNegatives", "MemoryBank", "MoCoQueue", "NegativeSource",
           "build_negatives"]

#: the default queue length K of MoCo (He et al. 2020 use 65,536 on ImageNet; 4,096 suits small data sets)
QUEUE_SIZE = 4096
#: the default momentum of a memory bank's row update (Wu et al. 2018)
BANK_MOMENTUM = 0.5


@dataclass
class Candidates:
    """What an InfoNCE step contrasts: ``positive`` (N, D); ``negatives`` (M, D) or ``None`` (in-batch);
    ``labels`` (N,) / ``negative_labels`` (M,) mark false negatives (equal label = not a negative)."""

    positive: Tensor
    negatives: Tensor | None = None
    labels: Tensor | None = None
    negative_labels: Tensor | None = None


class NegativeSource(nn.Module, ABC):
    """Base class: :meth:`candidates` for the loss, :meth:`update` after the optimizer step."""

    #: whether the positive comes from a second view's key (False: from the source itself, a memory bank)
    needs_keys: bool = True

    @abstractmethod
    def candidates(self, keys: Tensor | None, indices: Tensor, generator: torch.Generator | None = None) -> Candidates:
        """``keys`` (N, D) the step's keys (None if not ``needs_keys``), ``indices`` (N,) sample ids;
        ``generator`` drives any sampling (saved by the trainer for exact resume)."""

    @abstractmethod
    def update(self, keys: Tensor, indices: Tensor) -> None:
        """After-step update with (gathered) ``keys`` (N, D) and their sample ``indices`` (N,)."""


class InBatchNegatives(NegativeSource):
    """End-to-end: negatives are the batch's other keys (SimCLR); stores nothing."""

    def candidates(self, keys: Tensor | None, indices: Tensor, generator: torch.Generator | None = None) -> Candidates:
        if keys is None:
            raise ValueError("InBatchNegatives: in-batch negatives need the step's keys")
        return Candidates(positive=keys)

    def update(self, keys: Tensor, indices: Tensor) -> None:
        """Nothing is stored: the next batch brings its own negatives."""


class MoCoQueue(NegativeSource):
    """FIFO queue of the last ``size`` keys (MoCo), with the sample id of each key.

    Buffers: ``keys`` (K, D), ``ids`` (K,) (-1 = empty slot), ``pointer`` (next write position) and
    ``filled`` (valid entries). Until the queue has filled once only the valid entries are negatives.
    """

    def __init__(self, dim: int, size: int = QUEUE_SIZE, mask_same_sample: bool = True) -> None:
        super().__init__()
        if dim < 1 or size < 1:
            raise ValueError(f"MoCoQueue: dim and size must be >= 1, got dim={dim}, size={size}")
        self.dim, self.size, self.mask_same_sample = dim, size, mask_same_sample
        self.register_buffer("keys", torch.zeros(size, dim))
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    def negatives(self) -> tuple[Tensor, Tensor]:
        """The valid keys (M, D) and their ids (M,); M = min(keys seen, size)."""
        filled = int(self.filled)
        return self.keys[:filled], self.ids[:filled]

    def candidates(self, keys: Tensor | None, indices: Tensor, generator: torch.Generator | None = None) -> Candidates:
        if keys is None:
            raise ValueError("MoCoQueue: the queue's positive is the step's key; got keys=None")
        negatives, ids = self.negatives()
        if negatives.shape[0] == 0:  # the very first step: no queue yet, contrast within the batch
            return Candidates(positive=keys)
        if not self.mask_same_sample:
            return Candidates(positive=keys, negatives=negatives)
        return Candidates(positive=keys, negatives=negatives, labels=indices, negative_labels=ids)

    @torch.no_grad()
    def update(self, keys: Tensor, indices: Tensor) -> None:
        """Enqueue ``keys`` (B, D) in FIFO order, overwriting the oldest; B may exceed the size."""
        if keys.dim() != 2 or keys.shape[1] != self.dim:
            raise ValueError(f"MoCoQueue: keys must be (B, {self.dim}), got {tuple(keys.shape)}")
        if indices.shape != keys.shape[:1]:
            raise ValueError(f"MoCoQueue: indices must be ({keys.shape[0]},), got {tuple(indices.shape)}")
        total = keys.shape[0]
        keys, indices = keys[-self.size:], indices[-self.size:]  # only the newest `size` keys survive
        kept = keys.shape[0]
        start = self.pointer + (total - kept)  # as if all `total` keys had been written in order
        slots = (start + torch.arange(kept, device=self.keys.device)) % self.size  # (kept,)
        self.keys[slots] = keys.detach().to(self.keys.dtype)
        self.ids[slots] = indices.to(self.ids.device)
        self.pointer.copy_((self.pointer + total) % self.size)
        self.filled.copy_(torch.clamp(self.filled + total, max=self.size))

    def ordered(self) -> Tensor:
        """The valid keys from oldest to newest (for inspection and tests)."""
        filled = int(self.filled)
        if filled < self.size:
            return self.keys[:filled]
        return torch.roll(self.keys, -int(self.pointer), dims=0)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, size={self.size}"


class MemoryBank(NegativeSource):
    """One L2-normalised vector per training sample (Wu et al. 2018), updated with momentum.

    ``num_negatives=None`` uses every other row as a negative (the exact non-parametric softmax; fine
    for tens of thousands of rows); an int draws that many rows uniformly per step (Wu et al. use 4,096
    with NCE). Sampling uses ``generator`` (saved by the trainer for exact resume).
    """

    needs_keys = False

    def __init__(self, num_samples: int, dim: int, momentum: float = BANK_MOMENTUM, num_negatives: int | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        if num_samples < 2 or dim < 1:
            raise ValueError(f"MemoryBank: need num_samples >= 2 and dim >= 1, got {num_samples}, {dim}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"MemoryBank: momentum must be in [0, 1), got {momentum}")
        if num_negatives is not None and num_negatives < 1:
            raise ValueError(f"MemoryBank: num_negatives must be >= 1 or None, got {num_negatives}")
        self.num_samples, self.dim, self.momentum, self.num_negatives = num_samples, dim, momentum, num_negatives
        init = torch.randn(num_samples, dim, generator=torch.Generator().manual_seed(seed))
        self.register_buffer("bank", F.normalize(init, dim=1))  # (num_samples, D)
        self.register_buffer("all_ids", torch.arange(num_samples))

    def _check_indices(self, indices: Tensor) -> None:
        if indices.dim() != 1:
            raise ValueError(f"MemoryBank: indices must be 1-D sample ids, got shape {tuple(indices.shape)}")
        if not (checks_enabled("index_range") and indices.numel()):
            return
        if int(indices.min()) < 0 or int(indices.max()) >= self.num_samples:
            raise ValueError(f"MemoryBank: sample ids must be in [0, {self.num_samples}), got "
                             f"[{int(indices.min())}, {int(indices.max())}] -- is the bank sized for this dataset?")

    def candidates(self, keys: Tensor | None, indices: Tensor, generator: torch.Generator | None = None) -> Candidates:
        self._check_indices(indices)
        positive = self.bank[indices]  # (N, D) the samples' own memories
        if self.num_negatives is None:
            return Candidates(positive, self.bank, labels=indices, negative_labels=self.all_ids)
        sampled = torch.randint(0, self.num_samples, (self.num_negatives,), generator=generator,
                                device=self.bank.device if generator is None else generator.device)
        sampled = sampled.to(self.bank.device)
        return Candidates(positive, self.bank[sampled], labels=indices, negative_labels=sampled)

    @torch.no_grad()
    def update(self, keys: Tensor, indices: Tensor) -> None:
        """v_i <- normalise(m v_i + (1 - m) f_i) for the batch's rows (``keys`` are the new features f)."""
        self._check_indices(indices)
        if keys.shape != (indices.shape[0], self.dim):
            raise ValueError(f"MemoryBank: features must be ({indices.shape[0]}, {self.dim}), got {tuple(keys.shape)}")
        features = F.normalize(keys.detach().to(self.bank.dtype), dim=1)
        mixed = self.momentum * self.bank[indices] + (1.0 - self.momentum) * features
        self.bank[indices] = F.normalize(mixed, dim=1)

    def extra_repr(self) -> str:
        return f"num_samples={self.num_samples}, dim={self.dim}, momentum={self.momentum}, " \
               f"num_negatives={self.num_negatives}"


def build_negatives(kind: str, dim: int, *, num_samples: int | None = None, queue_size: int = QUEUE_SIZE,
                    bank_momentum: float = BANK_MOMENTUM, num_negatives: int | None = None,
                    seed: int = 0) -> NegativeSource:
    """A negatives source by name: ``batch``, ``queue`` or ``bank``."""
    if kind == "batch":
        return InBatchNegatives()
    if kind == "queue":
        return MoCoQueue(dim, queue_size)
    if kind == "bank":
        if num_samples is None:
            raise ValueError("build_negatives: a memory bank needs num_samples (the training set size)")
        return MemoryBank(num_samples, dim, bank_momentum, num_negatives, seed)
    raise ValueError(f"unknown negatives source {kind!r}; expected 'batch', 'queue' or 'bank'")
