"""Methods as compositions: each learns on a tiny batch; after-step updates; registry settings."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contrastkit.methods import PRESETS, ContrastiveMethod, build_method, method_settings
from contrastkit.methods.base import StepOutput
from contrastkit.models.heads import ProjectionHead
from contrastkit.models.split_bn import SplitBatchNorm1d
from contrastkit.negatives import InBatchNegatives, MemoryBank, MoCoQueue


def _encoder() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU())


def _views(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, 8, 8, generator=g)
    return base, [base + 0.1 * torch.randn(base.shape, generator=g) for _ in range(2)]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_loss_falls_over_a_few_steps(name):
    torch.manual_seed(0)
    # a queue as long as the batch is full after the first step, so later losses are comparable
    queue = {"queue_size": 16} if PRESETS[name]["negatives"] == "queue" else {}
    method = build_method(name, _encoder(), 32, num_samples=16, **queue)
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
    assert simclr.temperature() == 0.2 and moco.temperature() == 0.2 and bank.temperature() == 0.07


def test_simclr_with_a_queue_is_a_setting():
    method = build_method("simclr", _encoder(), 32, negatives="queue", queue_size=40)
    assert isinstance(method.negatives, MoCoQueue) and method.loss_name == "info_nce" and method.key_net is None
    _, views = _views()
    out = method.training_step(views, torch.arange(16))
    out.loss.backward()
    method.after_step(out)
    assert int(method.negatives.filled) == 16
    assert method_settings("simclr", negatives="queue").loss == "info_nce"  # the documented default rule
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
    method = build_method("moco", _encoder(), 32, key_momentum=0.5, split_bn=0)
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
    method = build_method("moco", _encoder(), 32, split_bn=4, key_momentum=0.0)
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


def test_symmetric_keys_gathered_from_two_processes_enter_the_queue_in_the_one_process_order():
    """Each process's keys are [k2; k1]; gathered they are [r0 k2; r0 k1; r1 k2; r1 k1]. One process on the
    whole batch would enqueue [k2 of all; k1 of all]: the queue must hold that order, so that the two runs
    dequeue the same keys when it wraps around."""
    method = build_method("moco", _encoder(), 32, symmetric=True, queue_size=100, split_bn=0)
    k2, k1 = torch.randn(2, 4, 128), torch.randn(2, 4, 128)  # (process, B, D)
    ids = torch.arange(8).reshape(2, 4)
    mine = StepOutput(torch.zeros(()), keys=torch.cat([k2[0], k1[0]]), indices=torch.cat([ids[0], ids[0]]))
    gathered = {torch.Size([8, 128]): torch.cat([k2[0], k1[0], k2[1], k1[1]]),
                torch.Size([8]): torch.cat([ids[0], ids[0], ids[1], ids[1]])}
    two_processes = SimpleNamespace(rank=0, world=2, gather=lambda t: gathered[t.shape])  # what the trainer hands in
    method.after_step(mine, two_processes)
    queue = method.negatives
    assert torch.equal(queue.keys[:16], torch.cat([k2[0], k2[1], k1[0], k1[1]]))
    assert queue.ids[:16].tolist() == [*range(8), *range(8)]


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


# --- MoCo's keys and loss, recomputed by hand from the networks ---------------------------------------------------

QUEUE_IDS = torch.arange(100, 124)  # ids of the pre-filled queue entries: never the batch's samples


def _moco(symmetric: bool = False, split_bn: int = 0) -> ContrastiveMethod:
    """MoCo built from its parts, with a key encoder moved away from the online one (so a key computed by the
    wrong network or from the wrong view cannot coincide with the right one) and a queue of 24 known keys."""
    torch.manual_seed(0)
    method = ContrastiveMethod(_encoder(), ProjectionHead(32, 32, 16), MoCoQueue(16, 64), loss="info_nce",
                               key_encoder="momentum", temperature=0.2, symmetric=symmetric, split_bn=split_bn)
    with torch.no_grad():
        for p in method.key_net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    method.negatives.update(F.normalize(torch.randn(24, 16), dim=1), QUEUE_IDS)
    return method.train()


def _hand_info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean over queries of -log softmax of the positive among [q.k, q.queue] / tau (unit vectors: dot = cosine)."""
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], dim=1) / tau  # (N, 1 + K)
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def _query(method: ContrastiveMethod, x: torch.Tensor) -> torch.Tensor:
    return F.normalize(method.head(method.encoder(x)), dim=1)


@torch.no_grad()
def _key(method: ContrastiveMethod, x: torch.Tensor) -> torch.Tensor:
    return F.normalize(method.key_net(x), dim=1)


def test_moco_key_comes_from_the_other_view():
    """Guards the pairing: the positive (and what after_step enqueues) is the momentum key of views[1], the
    query is views[0]; a key of the query's own view would make the task trivial."""
    method = _moco()
    _, views = _views()
    queue = method.negatives.ordered().clone()
    out = method.training_step(views, torch.arange(16))
    k_other, k_same = _key(method, views[1]), _key(method, views[0])
    assert torch.allclose(out.keys, k_other, atol=1e-6)
    assert not torch.allclose(out.keys, k_same, atol=1e-2)
    expected = _hand_info_nce(_query(method, views[0]), k_other, queue, 0.2)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    method.after_step(out)
    assert torch.allclose(method.negatives.ordered()[-16:], k_other, atol=1e-6)


def test_symmetric_moco_loss_averages_both_directions():
    """Guards the symmetric loss: 0.5 * (L(q1, k2) + L(q2, k1)) with q2 from views[1] and k1 from views[0],
    both against the same queue; keys enqueued as [k2, k1]."""
    method = _moco(symmetric=True)
    _, views = _views()
    queue = method.negatives.ordered().clone()
    out = method.training_step(views, torch.arange(16))
    q1, q2 = _query(method, views[0]), _query(method, views[1])
    k1, k2 = _key(method, views[0]), _key(method, views[1])
    expected = 0.5 * (_hand_info_nce(q1, k2, queue, 0.2) + _hand_info_nce(q2, k1, queue, 0.2))
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    one_sided = 0.5 * (_hand_info_nce(q1, k2, queue, 0.2) + _hand_info_nce(q1, k1, queue, 0.2))
    assert abs(one_sided.item() - expected.item()) > 1e-3  # the check can tell q2 from q1
    assert torch.allclose(out.keys, torch.cat([k2, k1]), atol=1e-6)
    assert torch.equal(out.indices, torch.cat([torch.arange(16), torch.arange(16)]))


def test_split_bn_keys_are_computed_on_the_shuffled_batch_in_train_mode():
    """Guards the shuffle of split BatchNorm (MoCo's "shuffling BN") where it matters, in training mode: the keys
    equal the key network run on the batch permuted with the step's generator, then un-permuted, and differ
    from the keys of the unshuffled batch (whose groups would share statistics with their queries)."""
    method = _moco(split_bn=4)
    assert isinstance(method.key_net.target.encoder[2], SplitBatchNorm1d)
    _, views = _views()
    out = method.training_step(views, torch.arange(16), generator=torch.Generator().manual_seed(5))
    order = torch.randperm(16, generator=torch.Generator().manual_seed(5))
    shuffled = _key(method, views[1][order])[torch.argsort(order)]
    unshuffled = _key(method, views[1])
    assert torch.allclose(out.keys, shuffled, atol=1e-6)
    assert not torch.allclose(out.keys, unshuffled, atol=1e-2)
    expected = _hand_info_nce(_query(method, views[0]), shuffled, method.negatives.ordered(), 0.2)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_learnable_temperature_at_init_gives_the_fixed_temperature_loss():
    """A method with ``learnable_temperature=True`` starts at tau: same loss as the fixed-tau method."""
    _, views = _views()
    losses = []
    for learnable in (False, True):
        torch.manual_seed(0)
        method = ContrastiveMethod(_encoder(), ProjectionHead(32, 32, 16), InBatchNegatives(), loss="nt_xent",
                                   temperature=0.3, learnable_temperature=learnable)
        losses.append(method.training_step(views, torch.arange(16)).loss.item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)
