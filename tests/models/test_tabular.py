"""Tabular encoder parts (contrastkit.models.tabular): Standardize and MLPEncoder.

Rules checked: ``Standardize.of(train)`` holds the training rows' per-feature mean and (population) standard
deviation, a zero std counts as 1 (the feature is centred, not scaled); the statistics are buffers (saved with
the weights); ``MLPEncoder`` maps (N, in_dim) -> (N, width) through the standardisation then ``depth``
Linear-BatchNorm-ReLU blocks, and ``feature_dim == width``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from contrastkit.models.tabular import MLPEncoder, Standardize


def _train() -> torch.Tensor:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 4)) * np.array([0.1, 1.0, 50.0, 1.0]) + np.array([3.0, -2.0, 100.0, 0.0])
    train[:, 3] = 7.5  # a constant feature
    return torch.from_numpy(train)


def test_standardize_uses_the_training_mean_and_std() -> None:
    train = _train()
    rows = train.numpy()
    n = rows.shape[0]
    mean = [sum(rows[i, d] for i in range(n)) / n for d in range(4)]
    std = [np.sqrt(sum((rows[i, d] - mean[d]) ** 2 for i in range(n)) / n) for d in range(4)]
    std[3] = 1.0  # zero std counts as 1
    s = Standardize.of(train.float())
    np.testing.assert_allclose(s.mean.double().numpy(), mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(s.std.double().numpy(), std, rtol=1e-5)
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(10, 4)) * 10).float()
    expected = (x.double().numpy() - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(s(x).double().numpy(), expected, rtol=1e-4, atol=1e-4)
    out = s(train.float())
    assert out[:, :3].mean(0).abs().max() < 1e-4 and ((out[:, :3].std(0, unbiased=False) - 1).abs() < 1e-4).all()
    assert torch.equal(out[:, 3], torch.zeros(len(train)))  # centred, left unscaled


def test_standardize_zero_std_is_one_and_buffers_are_saved() -> None:
    s = Standardize(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 2.0, 0.0]))
    assert s.std.tolist() == [1.0, 2.0, 1.0]
    assert torch.equal(s(torch.tensor([[1.0, 4.0, 5.0]])), torch.tensor([[0.0, 1.0, 2.0]]))
    assert set(s.state_dict()) == {"mean", "std"}
    assert list(s.parameters()) == []


def test_standardize_does_not_alias_its_inputs() -> None:
    mean, std = torch.zeros(2), torch.ones(2)
    s = Standardize(mean, std)
    mean += 5
    std *= 3
    assert s.mean.tolist() == [0.0, 0.0] and s.std.tolist() == [1.0, 1.0]


@pytest.mark.parametrize(("mean", "std"), [(torch.zeros(3), torch.ones(4)), (torch.zeros(2, 3), torch.ones(2, 3))])
def test_standardize_shape_errors(mean, std) -> None:
    with pytest.raises(ValueError, match=r"`mean` and `std` must be \(D,\) vectors"):
        Standardize(mean, std)


@pytest.mark.parametrize(("in_dim", "width", "depth"), [(4, 16, 1), (4, 32, 2), (7, 8, 3)])
def test_mlp_encoder_shapes_and_layers(in_dim, width, depth) -> None:
    encoder = MLPEncoder(in_dim, width=width, depth=depth)
    assert encoder.feature_dim == width
    out = encoder(torch.randn(5, in_dim))
    assert out.shape == (5, width)
    assert (out >= 0).all()  # ends in a ReLU
    linears = [m for m in encoder.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(in_dim, width)] + [(width, width)] * (depth - 1)
    assert sum(isinstance(m, nn.BatchNorm1d) for m in encoder.modules()) == depth
    assert isinstance(encoder.net[0], nn.Identity)


def test_mlp_encoder_standardises_first() -> None:
    train = _train().float()
    s = Standardize.of(train)
    with_s = MLPEncoder(4, width=8, depth=2, standardize=s).eval()
    plain = MLPEncoder(4, width=8, depth=2).eval()
    plain.load_state_dict({k: v for k, v in with_s.state_dict().items() if not k.startswith("net.0.")})
    x = torch.randn(6, 4) * 30
    assert with_s.net[0] is s
    assert torch.allclose(with_s(x), plain(s(x)), atol=1e-6)
    assert {"net.0.mean", "net.0.std"} <= set(with_s.state_dict())  # the statistics travel with the weights


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"in_dim": 0}, "in_dim"), ({"in_dim": True}, "in_dim"), ({"in_dim": 3.0}, "in_dim"),
    ({"in_dim": 3, "width": 0}, "width"), ({"in_dim": 3, "depth": 0}, "depth"),
])
def test_mlp_encoder_errors(kwargs, name) -> None:
    with pytest.raises(ValueError, match=f"`{name}` must be an integer >= 1"):
        MLPEncoder(**kwargs)
