"""NT-Xent / SupCon against a loop written from SimCLR's and Khosla et al.'s equations, in float64."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import contrastkit.losses.ntxent as ntxent_module
from contrastkit.losses.ntxent import NTXentLoss, nt_xent, nt_xent_rows
from contrastkit.similarity import BilinearSimilarity, MLPCritic, cosine, dot, euclidean, squared_euclidean
from tests.helpers import spy_block_sizes


def reference_nt_xent(z1, z2, temperature, labels=None, score=cosine):
    """SimCLR's loss (Algorithm 1) / SupCon L_out (Khosla et al. 2020, eq. 2), one anchor and pair at a time."""
    z = torch.cat([z1, z2])
    n = z1.shape[0]
    label = torch.cat([labels, labels]) if labels is not None else torch.cat([torch.arange(n)] * 2)

    def s(i, j):
        return score.scores(z[i:i + 1], z[j:j + 1]).detach().item() / temperature

    total, anchors = 0.0, 0
    for i in range(2 * n):
        denominator = sum(math.exp(s(i, k)) for k in range(2 * n) if k != i)
        positives = [p for p in range(2 * n) if p != i and label[p] == label[i]]
        total += -sum(s(i, p) - math.log(denominator) for p in positives) / len(positives)
        anchors += 1
    return total / anchors


MEASURES = [cosine, dot, squared_euclidean, euclidean]


@pytest.mark.parametrize("n", [1, 2, 5, 12])
@pytest.mark.parametrize("score", MEASURES, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("supervised", [False, True])
def test_matches_reference(n, score, supervised):
    z1, z2 = torch.randn(n, 6, dtype=torch.float64), torch.randn(n, 6, dtype=torch.float64)
    labels = torch.randint(0, 3, (n,)) if supervised else None
    expect = reference_nt_xent(z1, z2, 0.4, labels, score)
    assert nt_xent(z1, z2, 0.4, labels=labels, score=score).item() == pytest.approx(expect, rel=1e-10, abs=1e-12)


def test_learned_scores_match_reference():
    z1, z2 = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    for score in [BilinearSimilarity(4, 4).double(), MLPCritic(4, hidden=8).double()]:
        with torch.no_grad():
            for p in score.parameters():
                p.add_(0.3 * torch.randn_like(p))
            expect = reference_nt_xent(z1, z2, 0.7, None, score)
            assert nt_xent(z1, z2, 0.7, score=score).item() == pytest.approx(expect, rel=1e-10)


def test_identical_embeddings_give_log_2n_minus_1():
    for n in (1, 4, 33):
        z = torch.randn(1, 8).expand(n, 8)
        assert nt_xent(z, z, 0.5).item() == pytest.approx(math.log(2 * n - 1), abs=1e-5)


def test_matches_pytorch_metric_learning():
    from pytorch_metric_learning.losses import NTXentLoss as PMLNTXent

    z1, z2 = torch.randn(16, 8, dtype=torch.float64), torch.randn(16, 8, dtype=torch.float64)
    pair_labels = torch.arange(16)
    theirs = PMLNTXent(temperature=0.3)(torch.cat([z1, z2]), torch.cat([pair_labels, pair_labels]))
    assert nt_xent(z1, z2, 0.3).item() == pytest.approx(theirs.item(), rel=1e-10)


@pytest.mark.parametrize("supervised", [False, True])
@pytest.mark.parametrize("score", [cosine, dot, squared_euclidean], ids=lambda m: type(m).__name__)
def test_memory_efficient_equals_direct(supervised, score):
    z1 = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 5, (37,)) if supervised else None
    direct = nt_xent(z1, z2, 0.2, labels=labels, score=score)
    g_direct = torch.autograd.grad(direct, (z1, z2))
    for block in (1, 8, 30, None):
        blockwise = nt_xent(z1, z2, 0.2, labels=labels, score=score, memory_efficient=True, block_size=block)
        assert blockwise.item() == pytest.approx(direct.item(), rel=1e-6)
        for g_b, g_d in zip(torch.autograd.grad(blockwise, (z1, z2)), g_direct, strict=True):
            assert torch.allclose(g_b, g_d, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_gradcheck(memory_efficient):
    z1 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 2])
    assert torch.autograd.gradcheck(
        lambda a, b: nt_xent(a, b, 0.5, memory_efficient=memory_efficient, block_size=3), (z1, z2))
    assert torch.autograd.gradcheck(
        lambda a, b: nt_xent(a, b, 0.5, labels=labels, memory_efficient=memory_efficient, block_size=3), (z1, z2))
    temperature = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: nt_xent(z1.detach(), z2.detach(), t), (temperature,))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 9), seed=st.integers(0, 2**31 - 1), supervised=st.booleans())
def test_permutation_invariance_and_bounds(n, seed, supervised):
    g = torch.Generator().manual_seed(seed)
    z1, z2 = torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randn(n, 5, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (n,), generator=g) if supervised else None
    loss = nt_xent(z1, z2, 0.5, labels=labels)
    perm = torch.randperm(n, generator=g)
    permuted = nt_xent(z1[perm], z2[perm], 0.5, labels=None if labels is None else labels[perm])
    swapped = nt_xent(z2, z1, 0.5, labels=labels)
    assert permuted.item() == pytest.approx(loss.item(), rel=1e-10)
    assert swapped.item() == pytest.approx(loss.item(), rel=1e-10)
    assert loss.item() >= -1e-12  # cross-entropy of a softmax
    if not supervised:  # one positive among 2N-1 candidates with cosine scores in [-1, 1]
        assert loss.item() <= math.log(2 * n - 1) + 2 / 0.5 + 1e-9


def test_learnable_temperature_gets_a_gradient():
    loss_fn = NTXentLoss(0.2, learnable_temperature=True)
    loss_fn(torch.randn(8, 4), torch.randn(8, 4)).backward()
    assert loss_fn.temperature.learned.log_temperature.grad is not None
    assert len(list(loss_fn.parameters())) == 1
    assert len(list(NTXentLoss(0.2).parameters())) == 0


def test_batch_of_one_is_finite_zero_and_backpropagates():
    z1 = torch.randn(1, 4, requires_grad=True)
    loss = nt_xent(z1, torch.randn(1, 4))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)  # the positive is the only candidate
    loss.backward()
    assert torch.isfinite(z1.grad).all()


def test_zero_vectors_are_finite():
    z = torch.zeros(4, 3, requires_grad=True)
    loss = nt_xent(z, z)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("memory_efficient", [False, True])
def test_half_precision_inputs(dtype, memory_efficient):
    z1 = torch.randn(16, 8).to(dtype).requires_grad_()
    z2 = torch.randn(16, 8).to(dtype)
    loss = nt_xent(z1, z2, 0.05, memory_efficient=memory_efficient, block_size=5)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert z1.grad.dtype == dtype and torch.isfinite(z1.grad.float()).all()
    ref = nt_xent(z1.detach().float(), z2.float(), 0.05)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="NaN/Inf"):
        nt_xent(torch.tensor([[float("nan"), 1.0]]), torch.randn(1, 2))
    with pytest.raises(ValueError, match="temperature must be"):
        nt_xent(torch.randn(3, 4), torch.randn(3, 4), temperature=0.0)
    with pytest.raises(ValueError, match="2 dimensions"):
        nt_xent(torch.randn(3), torch.randn(3))
    with pytest.raises(ValueError, match="empty batch"):
        nt_xent(torch.randn(0, 4), torch.randn(0, 4))
    with pytest.raises(ValueError, match=r"labels.*shape \(3,\)"):
        nt_xent(torch.randn(3, 4), torch.randn(3, 4), labels=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="inner-product score"):
        nt_xent(torch.randn(3, 4), torch.randn(3, 4), score=euclidean, memory_efficient=True)
    with pytest.raises(TypeError, match="integer class ids"):
        nt_xent(torch.randn(3, 4), torch.randn(3, 4), labels=torch.zeros(3))


@pytest.mark.parametrize("memory_efficient", [False, True])
@pytest.mark.parametrize("supervised", [False, True])
@pytest.mark.parametrize("score", ["cosine", "dot", "squared_euclidean"])
def test_row_blocks_of_a_gathered_batch_add_up_to_the_whole(memory_efficient, supervised, score):
    """Two 'processes' with 3 pairs each: each scores its own 6 views against the 12 gathered ones (views of
    rank r at columns 6r .. 6r + 5, its z1 then its z2); the mean of both blocks' rows is NT-Xent of the whole
    batch, and the gradients reaching each process's views through the gathered candidates and its own anchors
    add up to the one-process gradients."""
    torch.manual_seed(3)
    z1 = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 2, 1, 2]) if supervised else None
    whole = nt_xent(z1, z2, 0.3, labels=labels, score=score, memory_efficient=memory_efficient)
    expect = torch.autograd.grad(whole, (z1, z2))

    blocks = [torch.cat([z1[3 * r:3 * r + 3], z2[3 * r:3 * r + 3]]) for r in range(2)]  # each rank's 6 views
    gathered = torch.cat(blocks)  # (12, D): what an all-gather with gradient gives every rank
    ids = None
    if supervised:
        ids = torch.cat([torch.cat([labels[3 * r:3 * r + 3]] * 2) for r in range(2)])
    rows = []
    for r, block in enumerate(blocks):
        positive = 6 * r + torch.tensor([3, 4, 5, 0, 1, 2])  # z1 row i <-> z2 row i of the same rank
        rows.append(nt_xent_rows(block, gathered, positive, 0.3, offset=6 * r, score=score,
                                 labels=None if ids is None else ids[6 * r:6 * r + 6], candidate_labels=ids,
                                 memory_efficient=memory_efficient, block_size=2))
    total = torch.cat(rows).mean()
    assert torch.allclose(total, whole, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad(total, (z1, z2))
    for g, e in zip(got, expect, strict=True):
        assert torch.allclose(g, e, rtol=1e-10, atol=1e-12)


def test_row_block_arguments_are_checked():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="does not place 4 anchors inside 4 candidates"):
        nt_xent_rows(z, z, torch.arange(4), offset=1)
    with pytest.raises(ValueError, match="give both `labels` and `candidate_labels`"):
        nt_xent_rows(z, z, torch.arange(4), labels=torch.zeros(4, dtype=torch.long))


# ------------------------------------------------------------ settings, defaults and messages, exactly
def test_defaults_are_the_documented_ones():
    z1, z2 = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    assert nt_xent(z1, z2).item() == nt_xent(z1, z2, 0.5).item()  # tau = 0.5, cosine
    z = torch.cat([z1, z2])
    positive = torch.cat([torch.arange(5, 10), torch.arange(5)])
    assert torch.equal(nt_xent_rows(z, z, positive), nt_xent_rows(z, z, positive, 0.5, score=cosine))
    # not memory-efficient by default: a score without inner-product factors is accepted
    assert torch.isfinite(nt_xent_rows(z, z, positive, score=euclidean)).all()
    loss = NTXentLoss(score=euclidean)
    assert loss.temperature() == 0.5 and loss.memory_efficient is False and loss.block_size is None
    assert loss(z1, z2).item() == pytest.approx(nt_xent(z1, z2, 0.5, score=euclidean).item(), rel=1e-12)


def test_the_module_passes_every_setting_on(monkeypatch):
    z1, z2 = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 1])
    calls = spy_block_sizes(monkeypatch, ntxent_module)
    module = NTXentLoss(0.3, score=dot, memory_efficient=True, block_size=2)
    got = module(z1, z2, labels)
    assert calls == [2]  # blockwise, in blocks of 2 rows
    assert got.item() == pytest.approx(reference_nt_xent(z1, z2, 0.3, labels, dot), rel=1e-10)
    assert got.item() != pytest.approx(reference_nt_xent(z1, z2, 0.3, None, dot), rel=1e-3)  # labels matter
    calls.clear()
    NTXentLoss(0.3, score=dot, memory_efficient=True)(z1, z2)
    nt_xent(z1, z2, 0.3, score=dot, memory_efficient=True, block_size=3)
    NTXentLoss(0.3, score=dot)(z1, z2)
    assert calls == [max(16, (1 << 25) // 12), 3, None]  # the default block; the given one; direct


@pytest.mark.parametrize("world", [3, 4])
@pytest.mark.parametrize("score", [cosine, euclidean], ids=lambda m: type(m).__name__)
def test_row_blocks_at_every_offset_match_the_reference(world, score):
    """``world`` 'processes' of 2 pairs each; every block's rows against the loop over the whole batch (offsets
    that are not half the batch, so a slip in the own column's sign or the offset shows)."""
    torch.manual_seed(5)
    n = 2 * world
    z1, z2 = torch.randn(n, 5, dtype=torch.float64), torch.randn(n, 5, dtype=torch.float64)
    labels = torch.randint(0, 3, (n,))
    blocks = [torch.cat([z1[2 * r:2 * r + 2], z2[2 * r:2 * r + 2]]) for r in range(world)]
    gathered = torch.cat(blocks)
    ids = torch.cat([torch.cat([labels[2 * r:2 * r + 2]] * 2) for r in range(world)])
    for supervised in (False, True):
        rows = [nt_xent_rows(block, gathered, 4 * r + torch.tensor([2, 3, 0, 1]), 0.3, offset=4 * r, score=score,
                             labels=ids[4 * r:4 * r + 4] if supervised else None,
                             candidate_labels=ids if supervised else None) for r, block in enumerate(blocks)]
        expect = reference_nt_xent(z1, z2, 0.3, labels if supervised else None, score)
        assert torch.cat(rows).mean().item() == pytest.approx(expect, rel=1e-10)


def test_class_ids_are_consecutive_from_zero():
    from contrastkit.losses.ntxent import _class_ids

    ids, count = _class_ids(torch.tensor([7, -2, 7, 30]))
    assert ids.tolist() == [1, 0, 1, 2] and count == 3
    ids, count = _class_ids(torch.zeros(0, dtype=torch.long))
    assert ids.tolist() == [] and count == 0


def _message(call) -> str:
    with pytest.raises((ValueError, TypeError)) as error:
        call()
    return str(error.value)


def test_every_refusal_names_the_function_and_the_argument():
    z = torch.randn(4, 3)
    p = torch.arange(4)
    assert _message(lambda: nt_xent(torch.randn(3), z)) == "nt_xent: `z1` must have 2 dimensions, got shape (3,)"
    assert _message(lambda: nt_xent(z, torch.randn(4))) == "nt_xent: `z2` must have 2 dimensions, got shape (4,)"
    assert _message(lambda: nt_xent(z, torch.randn(3, 3))) == \
        "nt_xent: `z1` and `z2` must have the same shape, got (4, 3) and (3, 3)"
    assert _message(lambda: nt_xent(z, z, labels=torch.zeros(3, dtype=torch.long))) == \
        "nt_xent: `labels` must have shape (4,) to match the embeddings, got (3,)"
    assert _message(lambda: nt_xent(z, z, 0.0)) == "nt_xent_rows: temperature must be a finite number > 0, got 0.0"
    assert _message(lambda: nt_xent_rows(torch.randn(4), z, p)) == \
        "nt_xent_rows: `anchors` must have 2 dimensions, got shape (4,)"
    assert _message(lambda: nt_xent_rows(z, torch.randn(4), p)) == \
        "nt_xent_rows: `candidates` must have 2 dimensions, got shape (4,)"
    assert _message(lambda: nt_xent_rows(z, z, p, offset=1)) == \
        "nt_xent_rows: `offset` 1 does not place 4 anchors inside 4 candidates"
    assert _message(lambda: nt_xent(z, z, score=euclidean, memory_efficient=True)) == \
        ("nt_xent: memory_efficient=True needs an inner-product score (cosine, dot, squared Euclidean, bilinear); "
         "EuclideanDistance is not one")
    assert _message(lambda: NTXentLoss(temperature=-1.0)) == \
        "NTXentLoss: temperature must be a finite number > 0, got -1.0"
