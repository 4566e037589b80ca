"""The momentum encoder's update against hand-computed values; no gradient through keys."""

import pytest
import torch
from torch import nn

from contrastkit.models.momentum import MomentumEncoder


def test_update_hand_computed():
    online = nn.Linear(2, 1, bias=True)
    with torch.no_grad():
        online.weight.copy_(torch.tensor([[1.0, 2.0]]))
        online.bias.fill_(4.0)
    ema = MomentumEncoder(online, momentum=0.9)
    with torch.no_grad():
        online.weight.copy_(torch.tensor([[3.0, -2.0]]))
        online.bias.fill_(0.0)
    ema.update(online)
    # 0.9 * old + 0.1 * new
    assert torch.allclose(ema.target.weight, torch.tensor([[1.2, 1.6]]))
    assert torch.allclose(ema.target.bias, torch.tensor([3.6]))
    ema.update(online.parameters(), momentum=0.0)  # m = 0 copies the online network
    assert torch.equal(ema.target.weight, online.weight) and torch.equal(ema.target.bias, online.bias)


def test_no_gradient_and_independent_copy():
    online = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = MomentumEncoder(online, 0.99)
    assert all(not p.requires_grad for p in ema.parameters())
    out = ema(torch.randn(5, 3, requires_grad=True))
    assert not out.requires_grad
    assert ema.target[0].weight.data_ptr() != online[0].weight.data_ptr()
    ema.train()
    ema(torch.randn(8, 3))  # the copy's BatchNorm statistics are its own
    assert not torch.equal(ema.target[1].running_mean, online[1].running_mean)


def test_errors():
    with pytest.raises(ValueError, match="momentum must be in"):
        MomentumEncoder(nn.Linear(2, 2), 1.5)
    ema = MomentumEncoder(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="same architecture"):
        ema.update(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="shapes differ"):
        ema.update(nn.Linear(3, 2))
