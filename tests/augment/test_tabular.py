r"""SCARF views of tabular rows (contrastkit.augment.tabular.ScarfAugment).

Rules checked (module docstring): each feature of each row is corrupted independently with probability
``corruption``; a corrupted value is feature d of a uniformly drawn training row (so it belongs to column d of
the training rows); then ``noise * std_d * N(0, 1)`` is added, std_d the feature's training standard deviation
(no noise on a constant feature); the same generator state gives the same view.

The training rows are built so that a value names its row and column: ``train[j, d] = 1000 d + j``, and the
rows to augment hold negative values that no training row has.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from contrastkit.augment.tabular import ScarfAugment

N_TRAIN, D = 40, 6


def _train() -> torch.Tensor:
    j = torch.arange(N_TRAIN, dtype=torch.float64)[:, None]
    d = torch.arange(D, dtype=torch.float64)[None, :]
    return (1000 * d + j).float()  # (N, D): value 1000 d + j is column d of row j


def _rows(b: int) -> torch.Tensor:
    return -1.0 - torch.rand(b, D)  # values in (-2, -1]: never a training value


def test_no_corruption_and_no_noise_is_the_identity(gen) -> None:
    x = _rows(50)
    view = ScarfAugment(_train(), corruption=0.0, noise=0.0)(x, gen)
    assert view.dtype == torch.float32 and view.shape == x.shape
    assert torch.equal(view, x)


def test_integer_rows_come_back_as_float(gen) -> None:
    x = torch.randint(-5, 5, (7, D))
    view = ScarfAugment(_train(), corruption=0.0, noise=0.0)(x, gen)
    assert view.dtype == torch.float32 and torch.equal(view, x.float())


def test_full_corruption_draws_each_value_from_its_own_column(gen) -> None:
    train = _train()
    x = _rows(300)
    view = ScarfAugment(train, corruption=1.0, noise=0.0)(x, gen).double().numpy()
    columns = [set(train[:, d].tolist()) for d in range(D)]
    for i in range(view.shape[0]):
        for d in range(D):
            assert view[i, d] in columns[d], f"view[{i}, {d}] = {view[i, d]} is not in training column {d}"
    # the row drawn for each value: j = value - 1000 d; the draws are uniform over the N rows and independent
    # across features (not one row per sample)
    drawn = (view - 1000 * np.arange(D)[None, :]).astype(np.int64)  # (B, D) row ids
    counts = np.bincount(drawn.ravel(), minlength=N_TRAIN)
    n, p = drawn.size, 1 / N_TRAIN
    assert np.abs(counts - n * p).max() < 6 * math.sqrt(n * p * (1 - p)), counts
    same_row_for_all_features = (drawn == drawn[:, :1]).all(axis=1).mean()
    assert same_row_for_all_features < 0.01  # independent draws: (1/40)^5 per sample


@pytest.mark.parametrize("corruption", [0.1, 0.6, 0.9])
def test_corrupted_fraction_is_about_the_corruption_rate(corruption, gen) -> None:
    x = _rows(2000)
    view = ScarfAugment(_train(), corruption=corruption, noise=0.0)(x, gen)
    corrupted = view != x  # a corrupted value comes from the training rows, never equal to x
    kept = ~corrupted
    assert torch.equal(view[kept], x[kept])  # what is not corrupted is untouched
    n = x.numel()
    fraction = corrupted.double().mean().item()
    sigma = math.sqrt(corruption * (1 - corruption) / n)  # binomial(n, c) / n
    assert abs(fraction - corruption) < 6 * sigma, (fraction, corruption, sigma)
    # each feature on its own too (2,000 draws per column)
    per_column = corrupted.double().mean(0)
    sigma_column = math.sqrt(corruption * (1 - corruption) / x.shape[0])
    assert (per_column - corruption).abs().max().item() < 6 * sigma_column


@pytest.mark.parametrize("noise", [0.1, 0.5])
def test_noise_std_per_feature_is_noise_times_the_training_std(noise, gen) -> None:
    rng = np.random.default_rng(0)
    scales = np.array([0.01, 1.0, 100.0, 3.0, 0.0])  # the last feature is constant
    train = rng.normal(size=(5000, 5)) * scales + np.array([5.0, -3.0, 0.0, 1e3, 7.0])
    std = np.sqrt(((train - train.mean(0)) ** 2).mean(0))  # float64, per feature
    x = torch.from_numpy(rng.normal(size=(4000, 5))).float()
    view = ScarfAugment(torch.from_numpy(train).float(), corruption=0.0, noise=noise)(x, gen)
    delta = (view.double() - x.double()).numpy()  # (B, D) the noise alone
    for d in range(4):
        expected = noise * std[d]
        got = delta[:, d].std()
        # the sample std of 4,000 normals is within ~1.1 % (one sd); 6 % is over 5 sd
        assert abs(got / expected - 1) < 0.06, (d, got, expected)
        assert abs(delta[:, d].mean()) < 6 * expected / math.sqrt(len(delta))
    assert (delta[:, 4] == 0).all()  # zero spread: no noise


def test_noise_is_added_to_corrupted_values_too(gen) -> None:
    train = torch.randn(500, 3)
    x = torch.full((3000, 3), 100.0)
    view = ScarfAugment(train, corruption=1.0, noise=0.5)(x, gen)
    # value = a training value + 0.5 std_d z: its variance is std_d^2 (1 + 0.25)
    std = train.double().std(0, unbiased=False)
    ratio = view.double().std(0) / (std * math.sqrt(1.25))
    assert ((ratio - 1).abs() < 0.06).all(), ratio


def test_same_generator_state_gives_the_same_view() -> None:
    aug = ScarfAugment(_train(), corruption=0.5, noise=0.2)
    x = _rows(64)
    first = aug(x, torch.Generator().manual_seed(9))
    again = aug(x, torch.Generator().manual_seed(9))
    assert torch.equal(first, again)
    gen = torch.Generator().manual_seed(9)
    a, b = aug(x, gen), aug(x, gen)  # the generator moves on: two different views
    assert torch.equal(a, first) and not torch.equal(a, b)
    assert not torch.equal(first, aug(x, torch.Generator().manual_seed(10)))


def test_buffers_are_not_saved_in_the_state_dict() -> None:
    aug = ScarfAugment(_train())
    assert aug.state_dict() == {}  # the marginals come from the data, not from a checkpoint
    assert aug.rows.shape == (N_TRAIN, D) and aug.scale.shape == (D,)
    assert "corruption=0.6" in repr(aug) and "noise=0.1" in repr(aug)


@pytest.mark.parametrize("x", [torch.zeros(4, D + 1), torch.zeros(D), torch.zeros(2, 3, D)])
def test_rows_of_the_wrong_shape_are_refused(x) -> None:
    with pytest.raises(ValueError, match=rf"expected rows \(B, {D}\)"):
        ScarfAugment(_train())(x)


@pytest.mark.parametrize(("train", "kwargs", "match"), [
    (torch.zeros(0, 3), {}, "non-empty float"),
    (torch.zeros(5), {}, "non-empty float"),
    (torch.zeros(5, 3, dtype=torch.int64), {}, "non-empty float"),
    (np.zeros((5, 3)), {}, "non-empty float"),
    (torch.zeros(5, 3), {"corruption": 1.5}, r"`corruption` must be in \[0, 1\]"),
    (torch.zeros(5, 3), {"corruption": -0.1}, r"`corruption` must be in \[0, 1\]"),
    (torch.zeros(5, 3), {"noise": -1.0}, "`noise` must be >= 0"),
    (torch.zeros(5, 3), {"noise": float("nan")}, "`noise` must be >= 0"),
])
def test_constructor_errors(train, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        ScarfAugment(train, **kwargs)
