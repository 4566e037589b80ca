"""Batch iterators: coverage, determinism per (seed, epoch), exact resume, and the uint8 -> float step."""

from __future__ import annotations

import pytest
import torch

from contrastkit.data import (
    epoch_batches,
    epoch_permutation,
    num_batches,
    take_batch,
    uint8_to_float,
)


def test_uint8_to_float_values_and_dtypes() -> None:
    batch = torch.tensor([0, 1, 128, 255], dtype=torch.uint8)
    out = uint8_to_float(batch)
    assert out.dtype == torch.float32
    assert torch.allclose(out, torch.tensor([0.0, 1 / 255, 128 / 255, 1.0]))
    assert uint8_to_float(batch, torch.float64).dtype == torch.float64
    assert uint8_to_float(batch, torch.bfloat16)[-1].item() == 1.0
    assert batch.tolist() == [0, 1, 128, 255]  # the input is left alone


@pytest.mark.parametrize("bad", [torch.zeros(3), torch.zeros(3, dtype=torch.int64), [1, 2]])
def test_uint8_to_float_refuses_other_input(bad) -> None:
    with pytest.raises(TypeError, match="uint8_to_float"):
        uint8_to_float(bad)


def test_epoch_permutation_is_pinned_and_depends_on_seed_and_epoch() -> None:
    # computed once; pins the (seed, epoch) -> order map that resumed runs rely on
    assert epoch_permutation(10, seed=0, epoch=0).tolist() == [3, 2, 1, 8, 6, 0, 7, 4, 5, 9]
    assert epoch_permutation(10, seed=0, epoch=1).tolist() == [7, 4, 5, 1, 9, 8, 6, 2, 0, 3]
    assert torch.equal(epoch_permutation(100, 5, 3), epoch_permutation(100, 5, 3))
    assert not torch.equal(epoch_permutation(100, 5, 3), epoch_permutation(100, 6, 3))
    assert epoch_permutation(100, 5, 3).dtype == torch.int64


@pytest.mark.parametrize(("n", "batch_size", "drop_last"), [(103, 10, False), (103, 10, True), (100, 10, True),
                                                            (7, 7, True), (5, 8, False)])
def test_epoch_batches_cover_each_index_once(n, batch_size, drop_last) -> None:
    batches = list(epoch_batches(n, batch_size, seed=1, epoch=2, drop_last=drop_last))
    assert len(batches) == num_batches(n, batch_size, drop_last)
    seen = torch.cat(batches)
    assert len(torch.unique(seen)) == len(seen)  # no index twice
    if drop_last:
        assert all(len(b) == batch_size for b in batches) and len(seen) == (n // batch_size) * batch_size
    else:
        assert torch.equal(torch.sort(seen).values, torch.arange(n))


def test_epochs_differ_and_repeat_exactly() -> None:
    first = torch.cat(list(epoch_batches(64, 8, seed=0, epoch=0)))
    assert torch.equal(first, torch.cat(list(epoch_batches(64, 8, seed=0, epoch=0))))
    assert not torch.equal(first, torch.cat(list(epoch_batches(64, 8, seed=0, epoch=1))))


@pytest.mark.parametrize("start", [0, 1, 6, 12])
def test_start_batch_resumes_the_remaining_batches(start) -> None:
    full = list(epoch_batches(100, 8, seed=3, epoch=4))  # 12 batches with drop_last
    resumed = list(epoch_batches(100, 8, seed=3, epoch=4, start_batch=start))
    assert len(resumed) == len(full) - start
    assert all(torch.equal(a, b) for a, b in zip(resumed, full[start:], strict=True))


def test_no_shuffle_is_in_order() -> None:
    batches = list(epoch_batches(10, 4, seed=0, epoch=9, drop_last=False, shuffle=False))
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"start_batch": 13}, "start_batch"),
    ({"start_batch": -1}, "start_batch"),
    ({"batch_size": 0}, "batch_size"),
    ({"seed": -2}, "seed"),
    ({"epoch": -1}, "epoch"),
    ({"n": 5}, "no batch"),
])
def test_epoch_batches_bad_arguments(kwargs, match) -> None:
    args = {"n": 100, "batch_size": 8, "seed": 0, "epoch": 0, **kwargs}
    with pytest.raises(ValueError, match=match):
        list(epoch_batches(**args))


def test_take_batch_rows_and_pinning_flag() -> None:
    images = torch.arange(12, dtype=torch.uint8).reshape(6, 1, 1, 2)
    pinned = take_batch(images, torch.tensor([5, 0]), pin_memory=True)  # the flag is ignored without CUDA
    assert torch.equal(pinned, images[[5, 0]])
    assert pinned.is_pinned() == torch.cuda.is_available()
