"""The stratified seeded split: a partition, stratified up to rounding, a pure function of its inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contrastkit.data.split import per_class_test_counts, seeded_permutation, stratified_split


def test_small_split_is_pinned() -> None:
    # computed once with numpy's PCG64; pins the algorithm (doubles + stable argsort)
    train, test = stratified_split(np.repeat(np.arange(3), 5), 0.4, seed=7)
    assert test.tolist() == [3, 4, 6, 9, 11, 12]
    assert train.tolist() == [0, 1, 2, 5, 7, 8, 10, 13, 14]


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6),
       fraction=st.floats(0.0, 0.95), seed=st.integers(0, 2**32))
def test_split_is_a_stratified_partition(sizes, fraction, seed) -> None:
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(len(sizes)), sizes))
    train, test = stratified_split(labels, fraction, seed)
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    per_class = np.bincount(labels[test], minlength=len(sizes))
    assert np.all(np.abs(per_class - fraction * np.asarray(sizes)) < 1 + 1e-9)
    assert np.all(np.bincount(labels[train], minlength=len(sizes)) >= 1)  # each class keeps a train sample
    assert len(test) <= int(np.floor(fraction * len(labels) + 0.5))
    again = stratified_split(labels, fraction, seed)
    assert np.array_equal(again[1], test)


def test_total_is_rounded_fraction_when_classes_allow() -> None:
    counts = per_class_test_counts(np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180]), 0.2)
    assert counts.sum() == 359 and np.all(np.abs(counts - 0.2 * np.array([178, 182, 177, 183, 181,
                                                                          182, 181, 179, 174, 180])) < 1)


def test_unlabelled_is_one_group_and_zero_fraction_is_empty_test() -> None:
    labels = np.full(10, -1)
    train, test = stratified_split(labels, 0.3, seed=0)
    assert len(test) == 3 and len(train) == 7
    train, test = stratified_split(labels, 0.0, seed=0)
    assert len(test) == 0 and np.array_equal(train, np.arange(10))


def test_seeds_differ() -> None:
    labels = np.repeat(np.arange(4), 50)
    assert not np.array_equal(stratified_split(labels, 0.2, 0)[1], stratified_split(labels, 0.2, 1)[1])


def test_seeded_permutation_is_a_permutation() -> None:
    perm = seeded_permutation(1000, np.random.default_rng(3))
    assert perm.dtype == np.int64 and np.array_equal(np.sort(perm), np.arange(1000))


@pytest.mark.parametrize(("fraction", "seed"), [(1.0, 0), (-0.5, 0), (0.2, -3), (0.2, 1.5), (0.2, True)])
def test_bad_arguments(fraction, seed) -> None:
    with pytest.raises(ValueError, match="stratified_split"):
        stratified_split(np.zeros(5, dtype=np.int64), fraction, seed)


def test_labels_must_be_1d() -> None:
    with pytest.raises(ValueError, match="1-D"):
        stratified_split(np.zeros((2, 3)), 0.2, 0)
