"""A stratified, seeded train/test split that is the same on every machine and every run.

Only the most stable part of numpy's random API is used: ``default_rng(seed).random(n)`` (PCG64
doubles) followed by a *stable* argsort. scikit-learn's splitters are avoided on purpose: their
internals (and so the split) may change between versions.
"""

from __future__ import annotations

import numpy as np


def check_seed(seed: int, where: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"{where}: `seed` must be a non-negative int, got {seed!r}")
    return int(seed)


def seeded_permutation(n: int, rng: np.random.Generator) -> np.ndarray:
    """A permutation of range(n) (int64) drawn as argsort of n uniform doubles."""
    return np.argsort(rng.random(n), kind="stable").astype(np.int64)


def per_class_test_counts(class_sizes: np.ndarray, test_fraction: float) -> np.ndarray:
    """How many samples of each class go to the test split.

    Largest-remainder rounding: the total is ``floor(f * N + 1/2)``; each class gets
    ``floor(f * n_c)`` and the leftover units go to the classes with the largest fractional parts
    (ties: earlier class first), never taking a class's last training sample.
    """
    total = int(class_sizes.sum())
    quota = test_fraction * class_sizes.astype(np.float64)
    counts = np.minimum(np.floor(quota).astype(np.int64), np.maximum(class_sizes - 1, 0))
    leftover = int(np.floor(test_fraction * total + 0.5)) - int(counts.sum())
    for c in np.argsort(-(quota - counts), kind="stable"):
        if leftover <= 0:
            break
        if counts[c] + 1 <= class_sizes[c] - 1:
            counts[c] += 1
            leftover -= 1
    return counts


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int,
                     where: str = "stratified_split") -> tuple[np.ndarray, np.ndarray]:
    """Split positions 0..N-1 into (train, test), both sorted ascending, int64.

    Each class (each distinct label; an unlabelled set, all ``-1``, is one group) contributes
    its share given by :func:`per_class_test_counts`. Classes are visited in ascending label order and
    each draws its own permutation from one ``np.random.default_rng(seed)``, so the result is a
    function of (labels, test_fraction, seed) only.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"{where}: `labels` must be 1-D, got shape {labels.shape}")
    fraction = float(test_fraction)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"{where}: `test_fraction` must be in [0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(check_seed(seed, where))
    classes, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    counts = per_class_test_counts(sizes, fraction)
    test_parts = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        test_parts.append(members[seeded_permutation(len(members), rng)[: counts[c]]])
    test = np.sort(np.concatenate(test_parts)) if test_parts else np.zeros(0, dtype=np.int64)
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test).astype(np.int64), test.astype(np.int64)
