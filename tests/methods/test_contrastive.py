"""Methods as compositions: each learns on a tiny batch; after-step updates; registry settings."""

import pytest
import torch
from torch import nn

from contrastkit.methods import METHODS, ContrastiveMethod, build_method, method_settings
from contrastkit.negatives import InBatchNegatives, MemoryBank, MoCoQueue


def _encoder() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU())


def _views(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, 8, 8, generator=g)
    return base, [base + 0.1 * torch.randn(base.shape, generator=g) for _ in range(2)]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_loss_falls_over_a_few_steps(name):
    torch.manual_seed(0)
    # a queue as long as the batch is full after the first step, so later losses are comparable
    method = build_method(name, _encoder(), 32, num_samples=16, queue_size=16)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-2)
    base, _ = _views()
    indices = torch.arange(16)
    losses = []
    for step in range(40):
        g = torch.Generator().manual_seed(step)
        views = [base + 0.1 * torch.randn(base.shape, generator=g) for _ in range(2)]
        out = method.training_step(views, indices, generator=g)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        method.after_step(out)
        losses.append(out.loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < 0.85 * sum(losses[1:6]) / 5, losses


def test_registry_builds_the_documented_compositions():
    simclr = build_method("simclr", _encoder(), 32)
    moco = build_method("moco", _encoder(), 32)
    bank = build_method("membank", _encoder(), 32, num_samples=10)
    assert isinstance(simclr.negatives, InBatchNegatives) and simclr.loss_name == "nt_xent"
    assert simclr.key_net is None and simclr.num_views == 2
    assert isinstance(moco.negatives, MoCoQueue) and moco.key_net is not None and moco.split_bn == 8
    assert isinstance(bank.negatives, MemoryBank) and bank.num_views == 1
    assert simclr.temperature() == 0.5 and moco.temperature() == 0.2 and bank.temperature() == 0.07


def test_simclr_with_a_queue_is_a_setting():
    method = build_method("simclr", _encoder(), 32, negatives="queue", queue_size=40)
    assert isinstance(method.negatives, MoCoQueue) and method.loss_name == "info_nce" and method.key_net is None
    _, views = _views()
    out = method.training_step(views, torch.arange(16))
    out.loss.backward()
    method.after_step(out)
    assert int(method.negatives.filled) == 16
    assert method_settings("simclr", negatives="queue")["loss"] == "info_nce"
    with pytest.raises(ValueError, match="unknown setting"):
        method_settings("simclr", queue_length=3)
    with pytest.raises(ValueError, match="unknown method"):
        build_method("byol", _encoder(), 32)


def test_training_step_has_no_side_effects_on_stored_state():
    method = build_method("moco", _encoder(), 32, queue_size=64, split_bn=0)
    _, views = _views()
    key_weights = [p.clone() for p in method.key_net.parameters()]
    out = method.training_step(views, torch.arange(16))
    assert int(method.negatives.filled) == 0
    assert all(torch.equal(a, b) for a, b in zip(key_weights, method.key_net.parameters(), strict=True))
    out.loss.backward()
    assert all(p.grad is None for p in method.key_net.parameters())  # no gradient through keys
    method.after_step(out)
    assert int(method.negatives.filled) == 16
    assert torch.allclose(method.negatives.ordered(), out.keys)


def test_after_step_momentum_and_bank_values():
    method = build_method("moco", _encoder(), 32, momentum=0.5, split_bn=0)
    online = [p.detach().clone() for p in list(method.encoder.parameters()) + list(method.head.parameters())]
    key = [p.detach().clone() for p in method.key_net.parameters()]
    with torch.no_grad():
        for p in list(method.encoder.parameters()) + list(method.head.parameters()):
            p.add_(1.0)
    _, views = _views()
    method.after_step(method.training_step(views, torch.arange(16)))
    for k_new, k_old, q_old in zip(method.key_net.parameters(), key, online, strict=True):
        assert torch.allclose(k_new, 0.5 * k_old + 0.5 * (q_old + 1.0))
    bank_method = build_method("membank", _encoder(), 32, num_samples=16, bank_momentum=0.25)
    before = bank_method.negatives.bank.clone()
    out = bank_method.training_step(views[:1], torch.arange(16))
    bank_method.after_step(out)
    expect = torch.nn.functional.normalize(0.25 * before + 0.75 * out.keys, dim=1)
    assert torch.allclose(bank_method.negatives.bank, expect, atol=1e-6)


def test_split_bn_shuffle_keys_are_unshuffled():
    torch.manual_seed(0)
    method = build_method("moco", _encoder(), 32, split_bn=4, momentum=0.0)
    method.eval()  # in eval mode BN is per-sample, so shuffling must not change any key
    _, views = _views()
    keys = method._momentum_keys(views[1], torch.Generator().manual_seed(1))
    direct = torch.nn.functional.normalize(method.key_net(views[1]), dim=1)
    assert torch.allclose(keys, direct, atol=1e-6)


def test_symmetric_moco_enqueues_both_views():
    method = build_method("moco", _encoder(), 32, symmetric=True, queue_size=100, split_bn=0)
    _, views = _views()
    out = method.training_step(views, torch.arange(16))
    assert out.keys.shape == (32, 128) and out.indices.shape == (32,)


def test_invalid_compositions():
    with pytest.raises(ValueError, match="nt_xent"):
        ContrastiveMethod(_encoder(), nn.Identity(), MoCoQueue(32), loss="nt_xent")
    with pytest.raises(ValueError, match="memory bank supplies the positives"):
        ContrastiveMethod(_encoder(), nn.Identity(), MemoryBank(10, 32), key_encoder="momentum")
    with pytest.raises(ValueError, match="loss must be one of"):
        ContrastiveMethod(_encoder(), nn.Identity(), InBatchNegatives(), loss="triplet")
    method = build_method("simclr", _encoder(), 32)
    with pytest.raises(ValueError, match="needs 2 views"):
        method.training_step([torch.rand(4, 1, 8, 8)], torch.arange(4))
