"""Weighted kNN against a slow reference written from the protocol (Wu et al. 2018, Sec. 3.4), one test row at a
time in float64 python, for every chunk size (the chunked top-k must not change a prediction)."""

import math

import numpy as np
import pytest
import torch

from contrastkit.evaluate import knn_predict


def _reference(train: np.ndarray, labels: np.ndarray, test: np.ndarray, k: int, tau: float) -> list[int]:
    """For each test row: cosines to every train row, the k largest, votes exp(s / tau) per class, argmax with
    ties to the smallest class id."""
    unit_train = train / np.linalg.norm(train, axis=1, keepdims=True)
    predictions = []
    for row in test:
        sims = [float(v) for v in unit_train @ (row / np.linalg.norm(row))]
        order = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        votes: dict[int, float] = {}
        for i in order:
            votes[int(labels[i])] = votes.get(int(labels[i]), 0.0) + math.exp(sims[i] / tau)
        best = max(votes.values())
        predictions.append(min(c for c, v in votes.items() if v == best))
    return predictions


@pytest.mark.parametrize("chunk", [1, 7, 1024])
def test_knn_matches_the_brute_force_loop(chunk: int) -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 16))
    labels = rng.integers(0, 5, size=300) * 3  # ids 0, 3, ..., 12: votes are kept for present classes only
    test = rng.normal(size=(50, 16))
    expected = _reference(train, labels, test, k=20, tau=0.07)
    predicted = knn_predict(torch.from_numpy(train).float(), labels, torch.from_numpy(test).float(), k=20,
                            chunk=chunk)
    assert predicted.tolist() == expected
    assert knn_predict(train, labels, test, k=7, temperature=0.5, chunk=chunk).tolist() == \
        _reference(train, labels, test, k=7, tau=0.5)
