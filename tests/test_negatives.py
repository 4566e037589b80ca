"""Negatives sources: queue FIFO order and wrap-around, bank momentum updates, candidates and masking."""

import pytest
import torch
import torch.nn.functional as F

from contrastkit.negatives import InBatchNegatives, MemoryBank, MoCoQueue, build_negatives


def test_queue_fifo_order_across_wrap_around():
    queue = MoCoQueue(dim=2, size=5)
    seen = []
    for b in [2, 3, 4, 1, 7, 2]:  # batch sizes that do not divide the size
        keys = torch.arange(len(seen), len(seen) + b, dtype=torch.float32)[:, None].repeat(1, 2)
        queue.update(keys, torch.arange(len(seen), len(seen) + b))
        seen += keys[:, 0].tolist()
        newest = seen[-5:]
        assert queue.ordered()[:, 0].tolist() == newest  # oldest to newest, the last `size` keys
        assert int(queue.filled) == min(len(seen), 5)
        assert int(queue.pointer) == len(seen) % 5
        negatives, ids = queue.negatives()
        assert sorted(negatives[:, 0].tolist()) == sorted(newest)
        assert sorted(ids.tolist()) == sorted(int(v) for v in newest)


def test_queue_hand_computed_slots():
    queue = MoCoQueue(dim=1, size=4)
    queue.update(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([10, 11, 12]))
    queue.update(torch.tensor([[4.0], [5.0]]), torch.tensor([13, 14]))
    # slots: 0 1 2 3 written with 1 2 3 4, then 5 wraps to slot 0
    assert queue.keys[:, 0].tolist() == [5.0, 2.0, 3.0, 4.0]
    assert queue.ids.tolist() == [14, 11, 12, 13]
    assert int(queue.pointer) == 1 and int(queue.filled) == 4


def test_queue_candidates_mask_a_samples_own_old_key():
    queue = MoCoQueue(dim=3, size=8)
    first = queue.candidates(torch.randn(2, 3), torch.tensor([0, 1]))
    assert first.negatives is None  # empty queue: in-batch for the first step
    queue.update(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))
    c = queue.candidates(torch.randn(2, 3), torch.tensor([1, 7]))
    assert c.negatives.shape == (4, 3)
    assert torch.equal(c.labels, torch.tensor([1, 7])) and torch.equal(c.negative_labels, torch.tensor([0, 1, 2, 3]))
    assert MoCoQueue(3, 8, mask_same_sample=False).candidates(torch.randn(1, 3), torch.tensor([0])).labels is None


def test_queue_errors():
    queue = MoCoQueue(dim=3, size=4)
    with pytest.raises(ValueError, match=r"keys must be \(B, 3\)"):
        queue.update(torch.randn(2, 4), torch.arange(2))
    with pytest.raises(ValueError, match="indices must be"):
        queue.update(torch.randn(2, 3), torch.arange(3))
    with pytest.raises(ValueError, match="size must be >= 1"):
        MoCoQueue(3, 0)


def test_bank_momentum_update_hand_computed():
    bank = MemoryBank(num_samples=4, dim=2, momentum=0.5)
    bank.bank.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, -1.0]]))
    bank.update(torch.tensor([[0.0, 3.0], [5.0, 0.0]]), torch.tensor([0, 3]))
    # v0 = normalise(0.5 [1, 0] + 0.5 [0, 1]) ; v3 = normalise(0.5 [0, -1] + 0.5 [1, 0])
    s = 2 ** -0.5
    assert torch.allclose(bank.bank, torch.tensor([[s, s], [0.0, 1.0], [1.0, 0.0], [s, -s]]))


def test_bank_candidates_full_and_sampled():
    bank = MemoryBank(num_samples=10, dim=4, momentum=0.5)
    idx = torch.tensor([2, 5])
    c = bank.candidates(None, idx)
    assert torch.equal(c.positive, bank.bank[idx]) and c.negatives.shape == (10, 4)
    assert torch.equal(c.negative_labels, torch.arange(10)) and torch.equal(c.labels, idx)
    sampled = MemoryBank(10, 4, num_negatives=6)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = sampled.candidates(None, idx, g1), sampled.candidates(None, idx, g2)
    assert a.negatives.shape == (6, 4) and torch.equal(a.negative_labels, b.negative_labels)
    assert torch.equal(a.negatives, sampled.bank[a.negative_labels])
    assert torch.allclose(bank.bank.norm(dim=1), torch.ones(10))


def test_bank_errors():
    bank = MemoryBank(5, 3)
    with pytest.raises(ValueError, match=r"sample ids must be in \[0, 5\)"):
        bank.candidates(None, torch.tensor([5]))
    with pytest.raises(ValueError, match="momentum must be in"):
        MemoryBank(5, 3, momentum=1.0)
    with pytest.raises(ValueError, match=r"features must be \(1, 3\)"):
        bank.update(torch.randn(1, 4), torch.tensor([0]))


def test_bank_update_matches_formula_on_random_values():
    bank = MemoryBank(6, 5, momentum=0.3)
    before = bank.bank.clone()
    feats, idx = torch.randn(3, 5), torch.tensor([4, 0, 2])
    bank.update(feats, idx)
    expect = F.normalize(0.3 * before[idx] + 0.7 * F.normalize(feats, dim=1), dim=1)
    assert torch.allclose(bank.bank[idx], expect)
    untouched = torch.tensor([1, 3, 5])
    assert torch.equal(bank.bank[untouched], before[untouched])


def test_build_negatives_by_name():
    assert isinstance(build_negatives("batch", 4), InBatchNegatives)
    assert isinstance(build_negatives("queue", 4, queue_size=7), MoCoQueue)
    assert isinstance(build_negatives("bank", 4, num_samples=9), MemoryBank)
    with pytest.raises(ValueError, match="needs num_samples"):
        build_negatives("bank", 4)
    with pytest.raises(ValueError, match="unknown negatives source"):
        build_negatives("tree", 4)


def test_state_dict_holds_queue_and_bank():
    queue = MoCoQueue(3, 6)
    queue.update(torch.randn(4, 3), torch.arange(4))
    restored = MoCoQueue(3, 6)
    restored.load_state_dict(queue.state_dict())
    assert torch.equal(restored.keys, queue.keys) and torch.equal(restored.ids, queue.ids)
    assert int(restored.pointer) == 4 and int(restored.filled) == 4
    bank = MemoryBank(5, 3, seed=1)
    other = MemoryBank(5, 3, seed=2)
    other.load_state_dict(bank.state_dict())
    assert torch.equal(other.bank, bank.bank)
