"""Batches from an in-memory uint8 tensor, without DataLoader workers.

The whole dataset lives in memory; a batch is one ``index_select``. Batches stay uint8 until the
trainer has moved them to the training device, where :func:`uint8_to_float` makes them float.

For exact resume, :func:`epoch_batches` makes each epoch's order a pure function of
``(seed, epoch)`` and can start at any batch of the epoch: a trainer only needs to save
(seed, epoch, next batch index). :func:`take_batch` gathers the rows of one batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from contrastkit.data.split import check_seed, seeded_permutation
from contrastkit.data.text import is_text


def uint8_to_float(batch: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 images in [0, 255] -> ``dtype`` in [0, 1] (``x / 255``), on the batch's own device."""
    if not isinstance(batch, Tensor) or batch.dtype != torch.uint8:
        got = batch.dtype if isinstance(batch, Tensor) else type(batch).__name__
        raise TypeError(f"uint8_to_float: `batch` must be a uint8 torch.Tensor, got {got}")
    if not dtype.is_floating_point:
        raise TypeError(f"uint8_to_float: `dtype` must be a floating dtype, got {dtype}")
    return batch.to(dtype).div_(255.0)


def _check_batching(n: int, batch_size: int, drop_last: bool, where: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"{where}: `n` must be a non-negative int, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"{where}: `batch_size` must be a positive int, got {batch_size!r}")
    if drop_last and 0 < n < batch_size:
        raise ValueError(f"{where}: {n} samples with `batch_size` {batch_size} and `drop_last`=True give no "
                         f"batch at all; lower the batch size or set drop_last=False")


def num_batches(n: int, batch_size: int, drop_last: bool = True) -> int:
    """How many batches one epoch over ``n`` samples has."""
    _check_batching(n, batch_size, drop_last, "num_batches")
    return n // batch_size if drop_last else -(-n // batch_size)


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The order of epoch ``epoch``: a permutation of range(n) (int64) fixed by (seed, epoch).

    Drawn from ``np.random.default_rng([seed, epoch])`` (a SeedSequence of both numbers), so it
    does not depend on torch's RNG, on the device, or on how many batches were already taken.
    """
    where = "epoch_permutation"
    seed = check_seed(seed, where)
    if isinstance(epoch, bool) or not isinstance(epoch, int | np.integer) or epoch < 0:
        raise ValueError(f"{where}: `epoch` must be a non-negative int, got {epoch!r}")
    return torch.from_numpy(seeded_permutation(int(n), np.random.default_rng([seed, int(epoch)])))


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, start_batch: int = 0,
                  drop_last: bool = True, shuffle: bool = True) -> Iterator[Tensor]:
    """Yield the int64 index tensors of epoch ``epoch``, from batch ``start_batch`` on.

    Batch ``b`` is ``order[b * batch_size : (b + 1) * batch_size]`` with ``order`` from
    :func:`epoch_permutation` (or ``arange(n)`` when ``shuffle`` is False); with ``drop_last``
    the incomplete tail is left out. Resuming at ``start_batch = k`` yields exactly the batches
    an uninterrupted epoch would have yielded after its first ``k``.
    """
    total = num_batches(n, batch_size, drop_last)
    if isinstance(start_batch, bool) or not isinstance(start_batch, int | np.integer) \
            or not 0 <= start_batch <= total:
        raise ValueError(f"epoch_batches: `start_batch` must be an int in [0, {total}], got {start_batch!r}")
    order = epoch_permutation(n, seed, epoch) if shuffle else torch.arange(n, dtype=torch.int64)
    for b in range(int(start_batch), total):
        yield order[b * batch_size:(b + 1) * batch_size]


def _pinning(pin_memory: bool) -> bool:
    return bool(pin_memory) and torch.cuda.is_available()


def take_batch(images: Tensor, index: Tensor, pin_memory: bool = False) -> Tensor:
    """``images[index]`` as a new tensor, in page-locked memory if ``pin_memory`` and CUDA is available.

    Pinned batches let the trainer copy with ``non_blocking=True``; without CUDA the flag is
    ignored so that one configuration runs everywhere. Nothing is moved to a device here.
    """
    if not _pinning(pin_memory):
        return images.index_select(0, index)
    out = torch.empty((index.shape[0], *images.shape[1:]), dtype=images.dtype, pin_memory=True)
    return torch.index_select(images, 0, index, out=out)


def model_input(x: Tensor) -> Tensor:
    """Stored inputs -> encoder inputs: uint8 images -> float in [0, 1]; vectors and sequences as float32; text
    (uint8 bytes or int32 token ids (N, L), :mod:`contrastkit.data.text`) unchanged: a text encoder reads integers."""
    if is_text(x):
        return x
    return uint8_to_float(x) if x.dtype == torch.uint8 else x.float()
