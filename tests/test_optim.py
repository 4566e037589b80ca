"""LARS against its update rule computed by hand; the warm-up + cosine schedule; parameter groups."""

import math

import pytest
import torch
from torch import nn

from contrastkit.optim import LARS, build_optimizer, parameter_groups, warmup_cosine_schedule


def test_lars_step_matches_the_rule():
    w = nn.Parameter(torch.tensor([3.0, 4.0]))  # |w| = 5
    opt = LARS([w], lr=0.1, momentum=0.9, weight_decay=0.01, trust_coefficient=0.001)
    w.grad = torch.tensor([0.0, 1.0])
    g = torch.tensor([0.0, 1.0]) + 0.01 * torch.tensor([3.0, 4.0])
    ratio = 0.001 * 5.0 / g.norm()
    v = 0.1 * ratio * g
    opt.step()
    assert torch.allclose(w.detach(), torch.tensor([3.0, 4.0]) - v)
    w.grad = torch.tensor([1.0, 0.0])
    w_now = w.detach().clone()
    g2 = torch.tensor([1.0, 0.0]) + 0.01 * w_now
    v = 0.9 * v + 0.1 * (0.001 * w_now.norm() / g2.norm()) * g2
    opt.step()
    assert torch.allclose(w.detach(), w_now - v)


def test_lars_excluded_group_is_plain_momentum_sgd():
    b = nn.Parameter(torch.tensor([1.0]))
    opt = LARS([{"params": [b], "weight_decay": 0.0, "lars_exclude": True}], lr=0.5, momentum=0.0)
    b.grad = torch.tensor([2.0])
    opt.step()
    assert b.item() == pytest.approx(0.0)


def test_parameter_groups_exclude_biases_and_norms():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    decay, no_decay = parameter_groups(net, 1e-4)
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3])]
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0
    for name in ("sgd", "adam", "adamw", "lars"):
        assert build_optimizer(name, net, 0.1).param_groups[0]["weight_decay"] == 1e-6
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer("rmsprop", net, 0.1)


def test_warmup_cosine_values():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine_schedule(opt, total_steps=10, warmup_steps=2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)
    for step in range(2, 10):
        assert lrs[step] == pytest.approx(0.5 * (1 + math.cos(math.pi * (step - 2) / 8)))
