"""Samplers (contrastkit.data.samplers): which samples form each batch, as a pure function of (seed, epoch, batch).

Rules checked: ShuffleSampler is exactly :func:`epoch_batches` with drop_last; a PKSampler batch holds P distinct
classes x K samples of each, K distinct samples when the class has >= K members (with repetition only for a
smaller class), the same ids for the same (seed, epoch, batch) whatever was drawn before, ``N // (P K)`` batches
per epoch, and a resume at ``start_batch`` gives the remaining batches of an uninterrupted epoch. RankSlice: rank r
of W takes rows r B/W .. (r+1) B/W of the global batch (together exactly the one-process batch), resumes at a
batch, and refuses a rank outside [0, W) or a batch that W does not divide.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contrastkit.data import epoch_batches, num_batches
from contrastkit.data.samplers import PKSampler, RankSlice, ShuffleSampler


def _labels(sizes: dict[int, int], seed: int = 0) -> np.ndarray:
    """Class c repeated sizes[c] times, shuffled (class ids need not be 0..C-1)."""
    labels = np.concatenate([np.full(n, c, dtype=np.int64) for c, n in sizes.items()])
    return np.random.default_rng(seed).permutation(labels)


# ---------------------------------------------------------------------------------------------------------
# ShuffleSampler
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "batch_size"), [(100, 10), (103, 10), (7, 7), (50, 16)])
def test_shuffle_sampler_is_epoch_batches(n, batch_size) -> None:
    sampler = ShuffleSampler(n, batch_size, seed=5)
    assert sampler.steps_per_epoch == n // batch_size == num_batches(n, batch_size, drop_last=True)
    for epoch in (0, 3):
        got = list(sampler.batches(epoch))
        expected = list(epoch_batches(n, batch_size, 5, epoch))
        assert len(got) == len(expected) == sampler.steps_per_epoch
        assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
        assert all(b.dtype == torch.int64 and b.shape == (batch_size,) for b in got)
        seen = torch.cat(got)
        assert len(set(seen.tolist())) == len(seen)  # no sample twice in an epoch
        resumed = list(sampler.batches(epoch, start_batch=1))
        assert all(torch.equal(a, b) for a, b in zip(resumed, got[1:], strict=True))
    first, second = torch.cat(list(sampler.batches(0))), torch.cat(list(sampler.batches(1)))
    assert not torch.equal(first, second)  # a new order per epoch


# ---------------------------------------------------------------------------------------------------------
# PKSampler
# ---------------------------------------------------------------------------------------------------------

def _check_pk_batch(batch: torch.Tensor, labels: np.ndarray, p: int, k: int) -> None:
    assert batch.dtype == torch.int64 and batch.shape == (p * k,)
    ids = batch.numpy()
    assert ids.min() >= 0 and ids.max() < len(labels)
    batch_labels = labels[ids]
    classes, counts = np.unique(batch_labels, return_counts=True)
    assert len(classes) == p, f"{len(classes)} classes in a batch, expected P = {p}"
    assert (counts == k).all(), f"samples per class {counts.tolist()}, expected K = {k} each"
    for j in range(p):  # "class by class": block j holds one class
        block = batch_labels[j * k:(j + 1) * k]
        assert (block == block[0]).all()
    for c in classes:
        members = ids[batch_labels == c]
        size = int((labels == c).sum())
        if size >= k:
            assert len(set(members.tolist())) == k, f"class {c} ({size} members) repeats a sample"
        else:
            assert set(members.tolist()) <= set(np.flatnonzero(labels == c).tolist())


@pytest.mark.parametrize(("sizes", "batch_size", "k"), [
    ({c: 20 for c in range(10)}, 16, 4),  # P = 4 of 10 classes
    ({3: 5, 7: 9, 11: 2, 20: 8, 42: 30}, 15, 3),  # uneven classes, one smaller than K, ids not 0..C-1
    ({0: 4, 1: 4}, 8, 4),  # P = every class, K = every member
    ({c: 3 for c in range(6)}, 12, 2),
])
def test_pk_batches_hold_p_classes_of_k_samples(sizes, batch_size, k) -> None:
    labels = _labels(sizes)
    sampler = PKSampler(torch.from_numpy(labels), batch_size, k, seed=3)
    assert (sampler.p, sampler.k) == (batch_size // k, k)
    assert sampler.steps_per_epoch == max(1, len(labels) // batch_size)
    for epoch in range(3):
        batches = list(sampler.batches(epoch))
        assert len(batches) == sampler.steps_per_epoch
        for batch in batches:
            _check_pk_batch(batch, labels, batch_size // k, k)


def test_pk_class_smaller_than_k_repeats_only_its_own_members() -> None:
    labels = _labels({0: 1, 1: 2, 2: 10})
    sampler = PKSampler(labels, batch_size=9, samples_per_class=3, seed=0)  # P = 3: every class, every batch
    for b in range(20):
        batch = sampler.batch(0, b).numpy()
        for c, size in ((0, 1), (1, 2), (2, 10)):
            members = batch[labels[batch] == c]
            assert len(members) == 3
            assert set(members.tolist()) <= set(np.flatnonzero(labels == c).tolist())
            if size >= 3:
                assert len(set(members.tolist())) == 3


def test_pk_draws_classes_and_members_roughly_uniformly() -> None:
    labels = _labels({c: 10 for c in range(8)})
    sampler = PKSampler(labels, batch_size=4, samples_per_class=2, seed=11)  # P = 2 of 8 classes
    draws = 4000
    class_counts = np.zeros(8)
    sample_counts = np.zeros(len(labels))
    for b in range(draws):
        ids = sampler.batch(0, b).numpy()
        class_counts[np.unique(labels[ids])] += 1
        sample_counts[ids] += 1
    # each class is in a batch with probability P / C = 1/4: binomial(4000, 1/4), sd ~ 27
    p = 2 / 8
    sd = np.sqrt(draws * p * (1 - p))
    assert np.abs(class_counts - draws * p).max() < 6 * sd, class_counts
    # each member of a chosen class with probability K / size = 2/10: overall 4000 * 1/4 * 1/5 = 200, sd ~ 14
    q = p * 2 / 10
    sd = np.sqrt(draws * q * (1 - q))
    assert np.abs(sample_counts - draws * q).max() < 6 * sd


def test_pk_is_a_pure_function_of_seed_epoch_and_batch() -> None:
    labels = _labels({c: 12 for c in range(9)})
    a = PKSampler(labels, 12, 3, seed=7)
    b = PKSampler(labels, 12, 3, seed=7)
    for _ in range(5):  # draws made before do not matter
        b.batch(4, 2)
    assert torch.equal(a.batch(2, 5), b.batch(2, 5))
    assert torch.equal(a.batch(0, 0), a.batch(0, 0))
    # the documented generator: np.random.default_rng([seed, epoch, batch])
    rng = np.random.default_rng([7, 2, 5])
    chosen = rng.choice(9, size=4, replace=False)
    classes = np.unique(labels)
    expected = np.concatenate([rng.choice(np.flatnonzero(labels == classes[c]), size=3, replace=False)
                               for c in chosen])
    assert a.batch(2, 5).tolist() == expected.tolist()
    distinct = {tuple(a.batch(e, i).tolist()) for e in range(3) for i in range(3)}
    assert len(distinct) == 9  # every (epoch, batch) differs
    other_seed = PKSampler(labels, 12, 3, seed=8)
    assert not torch.equal(a.batch(0, 0), other_seed.batch(0, 0))


def test_pk_accepts_tensors_and_arrays_alike() -> None:
    labels = _labels({c: 6 for c in range(5)})
    from_tensor = PKSampler(torch.from_numpy(labels), 6, 2, seed=1)
    from_array = PKSampler(labels.tolist(), 6, 2, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(from_tensor.batches(1), from_array.batches(1), strict=True))


def test_pk_resume_gives_the_remaining_batches() -> None:
    labels = _labels({c: 10 for c in range(10)})
    sampler = PKSampler(labels, 10, 5, seed=2)
    whole = list(sampler.batches(3))
    assert len(whole) == 100 // 10
    for start in (0, 1, 4, len(whole) - 1, len(whole)):
        resumed = list(PKSampler(labels, 10, 5, seed=2).batches(3, start_batch=start))
        assert len(resumed) == len(whole) - start
        assert all(torch.equal(x, y) for x, y in zip(resumed, whole[start:], strict=True))


def test_pk_epoch_of_fewer_samples_than_a_batch_still_has_one_batch() -> None:
    labels = _labels({0: 2, 1: 2, 2: 2})
    sampler = PKSampler(labels, batch_size=8, samples_per_class=4, seed=0)  # 6 samples < 8
    assert sampler.steps_per_epoch == 1
    _check_pk_batch(next(iter(sampler.batches(0))), labels, 2, 4)


@pytest.mark.parametrize(("labels", "batch_size", "k", "match"), [
    (_labels({c: 10 for c in range(5)}), 10, 4, r"batch size \(10\) must be a multiple of .* K = 4"),
    (_labels({c: 10 for c in range(5)}), 9, 2, r"batch size \(9\) must be a multiple"),
    (_labels({c: 10 for c in range(5)}), 10, 1, r"K >= 2"),
    (_labels({c: 10 for c in range(5)}), 4, 4, r"P = 1 classes; P must be between 2 and the 5 classes"),
    (_labels({c: 10 for c in range(3)}), 8, 2, r"P = 4 classes; P must be between 2 and the 3 classes"),
    (np.full(20, -1), 8, 2, "no labels"),
])
def test_pk_errors(labels, batch_size, k, match) -> None:
    with pytest.raises(ValueError, match=match):
        PKSampler(labels, batch_size, k, seed=0)


def test_pk_start_batch_is_checked():
    sampler = PKSampler(torch.arange(40) % 4, batch_size=8, samples_per_class=2, seed=0)
    with pytest.raises(ValueError, match=r"`start_batch` must be an int in \[0, 5\]"):
        list(sampler.batches(0, start_batch=6))
    assert list(sampler.batches(0, start_batch=5)) == []


# ---------------------------------------------------------------------------------------------------------
# RankSlice: one process's share of the global batch (training on several processes)
# ---------------------------------------------------------------------------------------------------------

def _global_samplers() -> list[tuple[str, object, int]]:
    labels = _labels({c: 12 for c in range(8)})
    return [("shuffle", ShuffleSampler(96, 24, seed=4), 24), ("pk", PKSampler(labels, 24, 3, seed=4), 24)]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("which", [0, 1])
def test_rank_slices_are_contiguous_rows_of_the_global_batch(world, which) -> None:
    # rank r of W takes rows r B/W .. (r+1) B/W of each global batch, so the ranks' slices in rank order are
    # exactly the single-process batch, with as many steps per epoch
    _, sampler, batch_size = _global_samplers()[which]
    local = batch_size // world
    slices = [RankSlice(sampler, r, world, batch_size) for r in range(world)]
    for epoch in (0, 2):
        whole = list(sampler.batches(epoch))
        parts = [list(s.batches(epoch)) for s in slices]
        assert all(s.steps_per_epoch == sampler.steps_per_epoch == len(whole) for s in slices)
        for b, batch in enumerate(whole):
            for r in range(world):
                assert parts[r][b].tolist() == batch[r * local:(r + 1) * local].tolist()
            assert torch.cat([parts[r][b] for r in range(world)]).tolist() == batch.tolist()


def test_a_rank_slice_resumes_at_a_batch() -> None:
    _, sampler, batch_size = _global_samplers()[1]
    whole = list(RankSlice(sampler, 1, 2, batch_size).batches(1))
    resumed = list(RankSlice(sampler, 1, 2, batch_size).batches(1, start_batch=2))
    assert [b.tolist() for b in resumed] == [b.tolist() for b in whole[2:]]
    assert [b.tolist() for b in resumed] == [b[12:].tolist() for b in list(sampler.batches(1))[2:]]


@pytest.mark.parametrize(("rank", "world", "batch_size", "match"), [
    (2, 2, 24, r"need 0 <= rank < world, got rank=2, world=2"),
    (-1, 2, 24, r"need 0 <= rank < world"),
    (0, 0, 24, r"need 0 <= rank < world"),
    (0, 5, 24, r"the global batch size 24 is not a multiple of the 5 processes"),
])
def test_rank_slice_refusals(rank, world, batch_size, match) -> None:
    with pytest.raises(ValueError, match=match):
        RankSlice(ShuffleSampler(96, batch_size, seed=0), rank, world, batch_size)
