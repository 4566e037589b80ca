"""Weighted kNN (Wu et al. 2018): against a slow per-sample loop written from the paper, a hand-made case,
ties, chunking, numpy input, small temperatures, and input checks."""

import math

import numpy as np
import pytest
import torch

from contrastkit.evaluate import knn_accuracy, knn_predict


def _reference_predict(train: torch.Tensor, labels: torch.Tensor, test: torch.Tensor, k: int,
                       tau: float) -> list[int]:
    """Per test sample, in float64: cosine to every train row, k largest, vote exp(s / tau) per label."""
    train = train.double()
    test = test.double()
    predictions = []
    for row in test:
        sims = [float(row @ t / (row.norm() * t.norm())) for t in train]
        order = sorted(range(len(sims)), key=lambda i: -sims[i])[:k]
        votes: dict[int, float] = {}
        for i in order:
            votes[int(labels[i])] = votes.get(int(labels[i]), 0.0) + math.exp(sims[i] / tau)
        best = max(votes.values())
        predictions.append(min(c for c, v in votes.items() if v == best))  # ties -> smallest class
    return predictions


@pytest.mark.parametrize(("n_train", "n_test", "dim", "classes", "k"),
                         [(30, 7, 3, 2, 1), (50, 20, 8, 4, 5), (120, 33, 16, 10, 20), (64, 9, 5, 3, 64)])
@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_matches_the_slow_reference(n_train: int, n_test: int, dim: int, classes: int, k: int,
                                    tau: float, gen: torch.Generator) -> None:
    train = torch.randn(n_train, dim, generator=gen) * 3
    test = torch.randn(n_test, dim, generator=gen)
    labels = torch.randint(0, classes, (n_train,), generator=gen)
    expected = _reference_predict(train, labels, test, k, tau)
    assert knn_predict(train, labels, test, k=k, temperature=tau).tolist() == expected
    assert knn_predict(train.double(), labels, test.double(), k=k, temperature=tau, chunk=4).tolist() == expected


def test_hand_made_case_weights_beat_counts() -> None:
    # Unit vectors in the plane at angles (degrees) from the test point at 0 degrees.
    angles = torch.tensor([10.0, 20.0, 30.0, 80.0, 170.0])
    train = torch.stack([torch.cos(torch.deg2rad(angles)), torch.sin(torch.deg2rad(angles))], dim=1)
    labels = torch.tensor([1, 0, 0, 1, 1])
    test = torch.tensor([[2.0, 0.0]])  # length does not matter: cosine similarity
    # k=1: nearest (10 deg) is class 1.
    assert knn_predict(train, labels, test, k=1).tolist() == [1]
    # k=3: class 1 has exp(cos10/0.07) = 1.29e6, class 0 has exp(cos20/0.07) + exp(cos30/0.07) = 6.8e5 + 2.4e5.
    assert knn_predict(train, labels, test, k=3, temperature=0.07).tolist() == [1]
    # With a large temperature the weights are nearly equal, and two votes beat one.
    assert knn_predict(train, labels, test, k=3, temperature=100.0).tolist() == [0]


def test_vote_ties_go_to_the_smallest_class() -> None:
    train = torch.tensor([[1.0, 1.0], [1.0, -1.0]])  # symmetric about the x axis
    test = torch.tensor([[1.0, 0.0]])
    assert knn_predict(train, torch.tensor([3, 2]), test, k=2).tolist() == [2]
    assert knn_predict(train, torch.tensor([2, 3]), test, k=2).tolist() == [2]


def test_accuracy_numpy_inputs_and_tiny_temperature() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 6)) * 5
    train_y = np.repeat(np.arange(3), 20)
    test_y = np.repeat(np.arange(3), 5)
    train = (centres[train_y] + rng.normal(size=(60, 6))).astype(np.float32)
    test = (centres[test_y] + rng.normal(size=(15, 6))).astype(np.float32)
    assert knn_accuracy(train, train_y, test, test_y) == 1.0
    # tau = 1e-3 would overflow exp(s / tau) without the max shift: still finite, still the nearest neighbour
    nearest = knn_predict(train, train_y, test, k=1)
    assert torch.equal(knn_predict(train, train_y, test, k=10, temperature=1e-3), nearest)
    shuffled = rng.permutation(test_y)
    assert knn_accuracy(train, train_y, test, shuffled) == pytest.approx(float(np.mean(shuffled == test_y)))


def test_input_checks() -> None:
    train, labels, test = torch.randn(10, 4), torch.randint(0, 2, (10,)), torch.randn(3, 4)
    with pytest.raises(ValueError, match="k"):
        knn_predict(train, labels, test, k=11)
    with pytest.raises(ValueError, match="k"):
        knn_predict(train, labels, test, k=0)
    with pytest.raises(ValueError, match="feature dimensions differ"):
        knn_predict(train, labels, torch.randn(3, 5))
    with pytest.raises(ValueError, match="train_labels"):
        knn_predict(train, labels[:9], test)
    with pytest.raises(TypeError, match="integer"):
        knn_predict(train, labels.float(), test)
    with pytest.raises(ValueError, match="non-negative"):
        knn_predict(train, labels - 1, test, k=3)
    with pytest.raises(ValueError, match="NaN"):
        knn_predict(train, labels, torch.full((3, 4), float("nan")), k=3)
    with pytest.raises(ValueError, match="temperature"):
        knn_predict(train, labels, test, k=3, temperature=0.0)
    with pytest.raises(ValueError, match="test_labels"):
        knn_accuracy(train, labels, test, labels, k=3)


def test_class_ids_are_returned_as_given_whatever_their_size(gen: torch.Generator) -> None:
    # votes are kept per present class, not per id up to the largest: 10**12 needs no memory
    train = torch.randn(40, 5, generator=gen)
    test = torch.randn(9, 5, generator=gen)
    dense = torch.randint(0, 3, (40,), generator=gen)
    ids = torch.tensor([4, 10**9, 10**12])
    predicted = knn_predict(train, ids[dense], test, k=7)
    assert predicted.tolist() == [int(ids[c]) for c in _reference_predict(train, dense, test, 7, 0.07)]
