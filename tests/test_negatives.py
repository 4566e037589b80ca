"""Negatives sources: queue FIFO order and wrap-around, bank momentum updates, candidates and masking."""

import pytest
import torch
import torch.nn.functional as F

from contrastkit._checks import checks_disabled
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
    with pytest.raises(ValueError) as error:
        queue.update(torch.randn(2, 4), torch.arange(2))
    assert str(error.value) == "MoCoQueue: keys must be (B, 3), got (2, 4)"
    with pytest.raises(ValueError) as error:
        queue.update(torch.randn(3), torch.arange(3))
    assert str(error.value) == "MoCoQueue: keys must be (B, 3), got (3,)"
    with pytest.raises(ValueError) as error:
        queue.update(torch.randn(2, 3), torch.arange(3))
    assert str(error.value) == "MoCoQueue: indices must be (2,), got (3,)"
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
    with pytest.raises(ValueError) as error:
        bank.update(torch.randn(1, 4), torch.tensor([0]))
    assert str(error.value) == "MemoryBank: features must be (1, 3), got (1, 4)"


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


# ------------------------------------------------------------------ each setting and refusal, exactly
def test_in_batch_negatives_pass_the_keys_through_and_store_nothing():
    keys = torch.randn(3, 2)
    c = InBatchNegatives().candidates(keys, torch.arange(3))
    assert c.positive is keys and c.negatives is None and c.labels is None and c.negative_labels is None
    source = InBatchNegatives()
    source.update(keys, torch.arange(3))
    assert list(source.state_dict()) == [] and source.needs_keys
    with pytest.raises(ValueError) as error:
        InBatchNegatives().candidates(None, torch.arange(3))
    assert str(error.value) == "InBatchNegatives: in-batch negatives need the step's keys"


def test_queue_buffers_start_empty_with_the_documented_types():
    queue = MoCoQueue(3)
    assert queue.size == 4096 and queue.keys.shape == (4096, 3) and queue.mask_same_sample
    small = MoCoQueue(1, 1)  # the smallest queue: one key, replaced every step
    assert small.ids.dtype == torch.long and small.ids.tolist() == [-1]  # -1 = empty slot
    assert small.pointer.dtype == small.filled.dtype == torch.long and int(small.filled) == 0
    small.update(torch.tensor([[1.0], [2.0]]), torch.tensor([4, 5]))
    assert small.keys.tolist() == [[2.0]] and small.ids.tolist() == [5] and int(small.filled) == 1
    assert small.filled.dtype == torch.long and small.ids.dtype == torch.long
    for dim, size in ((0, 4), (3, 0)):
        with pytest.raises(ValueError) as error:
            MoCoQueue(dim, size)
        assert str(error.value) == f"MoCoQueue: dim and size must be >= 1, got dim={dim}, size={size}"


def test_queue_candidates_keep_the_steps_keys_as_positives():
    keys, ids = torch.randn(2, 3), torch.tensor([1, 7])
    for mask in (True, False):
        queue = MoCoQueue(3, 8, mask_same_sample=mask)
        assert queue.candidates(keys, ids).positive is keys  # first step: in-batch
        queue.update(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))
        c = queue.candidates(keys, ids)
        assert c.positive is keys and torch.equal(c.negatives, queue.keys[:4])
        assert (c.labels is ids) if mask else (c.labels is None and c.negative_labels is None)
    with pytest.raises(ValueError) as error:
        MoCoQueue(3, 8).candidates(None, ids)
    assert str(error.value) == "MoCoQueue: the queue's positive is the step's key; got keys=None"


def test_bank_starts_from_normalised_seeded_gaussians():
    for seed in (0, 4):
        expected = F.normalize(torch.randn(5, 3, generator=torch.Generator().manual_seed(seed)), dim=1)
        assert torch.equal(MemoryBank(5, 3, seed=seed).bank, expected)
    assert torch.equal(MemoryBank(5, 3).bank, MemoryBank(5, 3, seed=0).bank)  # seed 0 by default
    assert not torch.equal(MemoryBank(5, 3).bank, MemoryBank(5, 3, seed=1).bank)
    assert torch.equal(MemoryBank(5, 3).all_ids, torch.arange(5))


def test_bank_settings_at_their_limits():
    assert MemoryBank(2, 1, momentum=0.0, num_negatives=1).bank.shape == (2, 1)  # the smallest accepted
    cases = [((1, 3), {}, "MemoryBank: need num_samples >= 2 and dim >= 1, got 1, 3"),
             ((4, 0), {}, "MemoryBank: need num_samples >= 2 and dim >= 1, got 4, 0"),
             ((4, 3), {"momentum": -0.1}, "MemoryBank: momentum must be in [0, 1), got -0.1"),
             ((4, 3), {"momentum": 1.0}, "MemoryBank: momentum must be in [0, 1), got 1.0"),
             ((4, 3), {"num_negatives": 0}, "MemoryBank: num_negatives must be >= 1 or None, got 0")]
    for args, kwargs, message in cases:
        with pytest.raises(ValueError) as error:
            MemoryBank(*args, **kwargs)
        assert str(error.value) == message
    bank = MemoryBank(5, 3)
    with pytest.raises(ValueError) as error:
        bank.candidates(None, torch.zeros(2, 1, dtype=torch.long))
    assert str(error.value) == "MemoryBank: indices must be 1-D sample ids, got shape (2, 1)"
    with pytest.raises(ValueError) as error:
        bank.update(torch.randn(2, 3), torch.tensor([-1, 2]))
    assert str(error.value) == ("MemoryBank: sample ids must be in [0, 5), got [-1, 2] -- is the bank sized for "
                                "this dataset?")
    assert bank.candidates(None, torch.zeros(0, dtype=torch.long)).positive.shape == (0, 3)  # no ids: no range
    with checks_disabled("index_range"), pytest.raises(IndexError):  # the range check is skipped: torch's error
        bank.candidates(None, torch.tensor([5]))


def test_sampled_bank_negatives_are_uniform_draws_of_every_row():
    bank = MemoryBank(10, 4, num_negatives=6)
    idx = torch.tensor([2, 5])
    c = bank.candidates(None, idx, torch.Generator().manual_seed(3))
    expected = torch.randint(0, 10, (6,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(c.negative_labels, expected) and torch.equal(c.negatives, bank.bank[expected])
    assert torch.equal(c.positive, bank.bank[idx]) and torch.equal(c.labels, idx)
    torch.manual_seed(0)
    unseeded = bank.candidates(None, idx)  # no generator: torch's default one, on the bank's device
    assert unseeded.negative_labels.shape == (6,)
    many = MemoryBank(10, 4, num_negatives=500).candidates(None, idx, torch.Generator().manual_seed(0))
    assert set(many.negative_labels.tolist()) == set(range(10))  # row 0 and row 9 included


def test_build_negatives_passes_every_setting():
    queue = build_negatives("queue", 4)
    assert (queue.dim, queue.size) == (4, 4096) and build_negatives("queue", 4, queue_size=7).size == 7
    bank = build_negatives("bank", 4, num_samples=9, bank_momentum=0.25, num_negatives=3, seed=5)
    assert (bank.num_samples, bank.dim, bank.momentum, bank.num_negatives) == (9, 4, 0.25, 3)
    assert torch.equal(bank.bank, MemoryBank(9, 4, seed=5).bank)
    default = build_negatives("bank", 4, num_samples=9)
    assert (default.momentum, default.num_negatives) == (0.5, None)
    assert torch.equal(default.bank, MemoryBank(9, 4, seed=0).bank)
    for kwargs, message in (({"kind": "bank"}, "build_negatives: a memory bank needs num_samples (the training set "
                                                "size)"),
                            ({"kind": "tree"}, "unknown negatives source 'tree'; expected 'batch', 'queue' or 'bank'")):
        with pytest.raises(ValueError) as error:
            build_negatives(dim=4, **kwargs)
        assert str(error.value) == message


def test_bank_update_normalises_half_precision_features_in_the_banks_dtype():
    bank = MemoryBank(6, 5, momentum=0.3)
    before = bank.bank.clone()
    feats = torch.randn(3, 5).to(torch.bfloat16)
    idx = torch.tensor([4, 0, 2])
    bank.update(feats, idx)
    expect = F.normalize(0.3 * before[idx] + 0.7 * F.normalize(feats.float(), dim=1), dim=1)
    assert bank.bank.dtype == torch.float32 and torch.allclose(bank.bank[idx], expect, atol=1e-6)


def test_queue_stores_half_precision_keys_in_its_own_dtype():
    queue = MoCoQueue(dim=2, size=4)
    keys = torch.tensor([[0.5, -1.25], [3.0, 0.125]], dtype=torch.bfloat16)  # exact in both dtypes
    queue.update(keys, torch.tensor([7, 8]))
    assert queue.keys.dtype == torch.float32 and queue.ordered().tolist() == [[0.5, -1.25], [3.0, 0.125]]


def test_the_queue_bank_and_key_encoder_defaults_have_one_home() -> None:
    """4,096 / 0.5 / 0.99 are written once, with the part they belong to; the settings' rules and every Python
    keyword default read that constant."""
    import inspect

    from contrastkit import negatives
    from contrastkit.methods import settings as method_settings_module
    from contrastkit.models import momentum

    def default(func, name):
        return inspect.signature(func).parameters[name].default

    assert (negatives.QUEUE_SIZE, negatives.BANK_MOMENTUM, momentum.KEY_MOMENTUM) == (4096, 0.5, 0.99)
    assert method_settings_module.QUEUE_SIZE is negatives.QUEUE_SIZE
    assert method_settings_module.BANK_MOMENTUM is negatives.BANK_MOMENTUM
    assert method_settings_module.KEY_MOMENTUM is momentum.KEY_MOMENTUM
    assert default(negatives.MoCoQueue.__init__, "size") is negatives.QUEUE_SIZE
    assert default(negatives.build_negatives, "queue_size") is negatives.QUEUE_SIZE
    assert default(negatives.MemoryBank.__init__, "momentum") is negatives.BANK_MOMENTUM
    assert default(negatives.build_negatives, "bank_momentum") is negatives.BANK_MOMENTUM
    assert default(momentum.MomentumEncoder.__init__, "momentum") is momentum.KEY_MOMENTUM
