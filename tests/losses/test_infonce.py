"""InfoNCE against a loop written from CPC's eq. 4 (one query, its candidates, a softmax), in float64."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import contrastkit.losses.infonce as infonce_module
from contrastkit.losses.infonce import InfoNCELoss, info_nce
from contrastkit.similarity import BilinearSimilarity, MLPCritic, cosine, dot, euclidean, squared_euclidean
from tests.helpers import spy_block_sizes


def reference_info_nce(q, p, negatives, temperature, score=cosine, labels=None, negative_labels=None):
    n = q.shape[0]

    def s(x, y):
        return score.scores(x[None], y[None]).detach().item() / temperature

    total = 0.0
    for i in range(n):
        positive = s(q[i], p[i])
        if negatives is None:
            others = [s(q[i], p[j]) for j in range(n) if j != i and (labels is None or labels[j] != labels[i])]
        elif negatives.dim() == 2:
            others = [s(q[i], negatives[j]) for j in range(negatives.shape[0])
                      if labels is None or negative_labels[j] != labels[i]]
        else:
            others = [s(q[i], negatives[i, j]) for j in range(negatives.shape[1])]
        total += -(positive - math.log(math.exp(positive) + sum(math.exp(o) for o in others)))
    return total / n


def _inputs(n, m, d=5, per_query=False):
    q, p = torch.randn(n, d, dtype=torch.float64), torch.randn(n, d, dtype=torch.float64)
    shape = (n, m, d) if per_query else (m, d)
    return q, p, torch.randn(*shape, dtype=torch.float64)


SCORES = [cosine, dot, squared_euclidean, euclidean]


@pytest.mark.parametrize("n", [1, 3, 10])
@pytest.mark.parametrize("score", SCORES, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("kind", ["in-batch", "shared", "per-query"])
def test_matches_reference(n, score, kind):
    q, p, neg = _inputs(n, 7, per_query=kind == "per-query")
    negatives = None if kind == "in-batch" else neg
    expect = reference_info_nce(q, p, negatives, 0.3, score)
    assert info_nce(q, p, negatives, 0.3, score=score).item() == pytest.approx(expect, rel=1e-10)


@pytest.mark.parametrize("kind", ["in-batch", "shared"])
def test_false_negative_masking_matches_reference(kind):
    q, p, neg = _inputs(12, 9)
    labels = torch.randint(0, 3, (12,))
    neg_labels = torch.randint(0, 3, (9,)) if kind == "shared" else None
    negatives = neg if kind == "shared" else None
    expect = reference_info_nce(q, p, negatives, 0.2, cosine, labels, neg_labels)
    for efficient in (False, True):
        got = info_nce(q, p, negatives, 0.2, labels=labels, negative_labels=neg_labels,
                       memory_efficient=efficient, block_size=5)
        assert got.item() == pytest.approx(expect, rel=1e-10)
    unmasked = info_nce(q, p, negatives, 0.2)
    assert unmasked.item() != pytest.approx(expect, rel=1e-6)


def test_cpc_style_scores():
    q, p, neg = _inputs(6, 4, d=3, per_query=True)
    for score in [BilinearSimilarity(3, 3, bias=True).double(), MLPCritic(3, hidden=6).double()]:
        with torch.no_grad():
            for param in score.parameters():
                param.add_(0.5 * torch.randn_like(param))
        for negatives in (None, neg, neg[0]):
            expect = reference_info_nce(q, p, negatives, 1.0, score)
            assert info_nce(q, p, negatives, 1.0, score=score).item() == pytest.approx(expect, rel=1e-10)


@pytest.mark.parametrize("kind", ["in-batch", "shared"])
@pytest.mark.parametrize("score", [cosine, dot, squared_euclidean], ids=lambda m: type(m).__name__)
def test_memory_efficient_equals_direct(kind, score):
    q = torch.randn(29, 8, dtype=torch.float64, requires_grad=True)
    p = torch.randn(29, 8, dtype=torch.float64, requires_grad=True)
    neg = torch.randn(41, 8, dtype=torch.float64, requires_grad=True) if kind == "shared" else None
    inputs = (q, p) if neg is None else (q, p, neg)
    direct = info_nce(q, p, neg, 0.1, score=score)
    g_direct = torch.autograd.grad(direct, inputs)
    for block in (1, 7, None):
        blockwise = info_nce(q, p, neg, 0.1, score=score, memory_efficient=True, block_size=block)
        assert blockwise.item() == pytest.approx(direct.item(), rel=1e-6)
        for g_b, g_d in zip(torch.autograd.grad(blockwise, inputs), g_direct, strict=True):
            assert torch.allclose(g_b, g_d, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("kind", ["in-batch", "shared", "per-query"])
def test_gradcheck(kind):
    q, p, neg = (t.requires_grad_() for t in _inputs(4, 3, d=3, per_query=kind == "per-query"))
    negatives = None if kind == "in-batch" else neg
    inputs = (q, p) if negatives is None else (q, p, negatives)
    assert torch.autograd.gradcheck(lambda *x: info_nce(x[0], x[1], x[2] if len(x) > 2 else None, 0.5), inputs)
    assert torch.autograd.gradcheck(
        lambda *x: info_nce(x[0], x[1], x[2] if len(x) > 2 else None, 0.5, memory_efficient=True, block_size=2)
        if kind != "per-query" else info_nce(*x, 0.5), inputs)


def test_mutual_information_bound():
    q, p, neg = _inputs(8, 15)
    loss, bound = info_nce(q, p, neg, 0.5, return_bound=True)
    assert bound.item() == pytest.approx(math.log(16) - loss.item())
    loss, bound = info_nce(q, p, None, 0.5, return_bound=True)
    assert bound.item() == pytest.approx(math.log(8) - loss.item())
    # a perfect critic (positives identical, negatives orthogonal, low temperature) reaches log(K + 1)
    eye = torch.eye(16, dtype=torch.float64)
    _, bound = info_nce(eye[:1], eye[:1], eye[1:], 0.01, return_bound=True)
    assert bound.item() == pytest.approx(math.log(16), abs=1e-6)


def test_in_batch_equals_explicit_negatives_from_other_positives():
    q, p, _ = _inputs(6, 1)
    per_query = torch.stack([torch.cat([p[:i], p[i + 1:]]) for i in range(6)])  # (6, 5, D)
    assert info_nce(q, p).item() == pytest.approx(info_nce(q, p, per_query).item(), rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), m=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_permutation_invariance_and_non_negativity(n, m, seed):
    g = torch.Generator().manual_seed(seed)
    q, p = torch.randn(n, 4, generator=g, dtype=torch.float64), torch.randn(n, 4, generator=g, dtype=torch.float64)
    neg = torch.randn(m, 4, generator=g, dtype=torch.float64)
    perm, neg_perm = torch.randperm(n, generator=g), torch.randperm(m, generator=g)
    for negatives, permuted in ((None, None), (neg, neg[neg_perm])):
        loss = info_nce(q, p, negatives, 0.3)
        assert info_nce(q[perm], p[perm], permuted, 0.3).item() == pytest.approx(loss.item(), rel=1e-10)
        assert loss.item() >= -1e-12


def test_learnable_temperature_module():
    loss_fn = InfoNCELoss(0.07, learnable_temperature=True)
    loss_fn(torch.randn(8, 4), torch.randn(8, 4), torch.randn(16, 4)).backward()
    assert loss_fn.temperature.learned.log_temperature.grad is not None
    fixed = InfoNCELoss(0.07)
    q, p = torch.randn(5, 3), torch.randn(5, 3)
    assert fixed(q, p).item() == pytest.approx(info_nce(q, p, None, 0.07).item())


def test_zero_vectors_and_half_precision():
    z = torch.zeros(3, 4, requires_grad=True)
    loss = info_nce(z, z, torch.zeros(5, 4))
    assert loss.item() == pytest.approx(math.log(6), rel=1e-6)  # all scores 0: uniform over 6 candidates
    loss.backward()
    assert torch.isfinite(z.grad).all()
    for dtype in (torch.bfloat16, torch.float16):
        q = torch.randn(8, 16).to(dtype)
        out = info_nce(q, q, torch.randn(32, 16).to(dtype), 0.05, memory_efficient=True, block_size=3)
        assert out.dtype == torch.float32 and torch.isfinite(out)


def test_bad_input_errors():
    q = torch.randn(4, 3)
    with pytest.raises(ValueError, match="same number of rows"):
        info_nce(q, torch.randn(3, 3))
    with pytest.raises(ValueError, match=r"\(N, M, D\) with N = 4"):
        info_nce(q, q, torch.randn(3, 2, 3))
    with pytest.raises(ValueError, match="NaN/Inf"):
        info_nce(q, q, torch.full((2, 3), float("inf")))
    with pytest.raises(ValueError, match="negatives` is empty"):
        info_nce(q, q, torch.randn(0, 3))
    with pytest.raises(ValueError, match="needs `negative_labels`"):
        info_nce(q, q, torch.randn(2, 3), labels=torch.arange(4))
    with pytest.raises(ValueError, match="feature dimensions differ"):
        info_nce(q, q, torch.randn(2, 5))
    with pytest.raises(ValueError, match="temperature must be"):
        info_nce(q, q, temperature=-1.0)


@pytest.mark.parametrize("memory_efficient", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("score", ["cosine", "squared_euclidean"])
def test_row_blocks_against_gathered_keys_add_up_to_the_whole(memory_efficient, masked, score):
    """In-batch InfoNCE across two 'processes': each scores its 4 queries against the 8 gathered keys with
    ``positive_offset`` = 4 r; the mean of both equals the one-process loss, gradients too."""
    torch.manual_seed(5)
    q = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    k = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3]) if masked else None
    whole = info_nce(q, k, temperature=0.2, labels=labels, score=score, memory_efficient=memory_efficient)
    expect = torch.autograd.grad(whole, (q, k))
    parts = [info_nce(q[4 * r:4 * r + 4], k, temperature=0.2, score=score, positive_offset=4 * r,
                      labels=None if labels is None else labels[4 * r:4 * r + 4], negative_labels=labels,
                      memory_efficient=memory_efficient, block_size=3) for r in range(2)]
    total = (parts[0] + parts[1]) / 2
    assert torch.allclose(total, whole, rtol=1e-12, atol=1e-12)
    for g, e in zip(torch.autograd.grad(total, (q, k)), expect, strict=True):
        assert torch.allclose(g, e, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="does not place 4 queries inside 8 keys"):
        info_nce(q[:4], k, positive_offset=5)
    with pytest.raises(ValueError, match="is for in-batch negatives"):
        info_nce(q[:4], k, k, positive_offset=0)


# ------------------------------------------------------------ settings, defaults and messages, exactly
@pytest.mark.parametrize("score", [euclidean, "mlp"], ids=["euclidean", "mlp"])
@pytest.mark.parametrize("kind", ["in-batch", "shared"])
def test_masking_with_a_score_that_has_no_inner_product_form(score, kind):
    """The generic path (scores computed directly, no factors): false negatives dropped as in the reference."""
    torch.manual_seed(2)
    if score == "mlp":
        score = MLPCritic(5, hidden=8).double()
    q, p, neg = _inputs(10, 7)
    labels = torch.randint(0, 3, (10,))
    neg_labels = torch.randint(0, 3, (7,)) if kind == "shared" else None
    negatives = neg if kind == "shared" else None
    expect = reference_info_nce(q, p, negatives, 0.4, score, labels, neg_labels)
    got = info_nce(q, p, negatives, 0.4, score=score, labels=labels, negative_labels=neg_labels)
    assert got.item() == pytest.approx(expect, rel=1e-10)
    assert got.item() != pytest.approx(reference_info_nce(q, p, negatives, 0.4, score), rel=1e-3)


@pytest.mark.parametrize("score", [cosine, euclidean], ids=lambda m: type(m).__name__)
def test_gathered_row_blocks_with_masking_at_every_offset(score):
    """Three 'processes' of 2 queries against the 6 gathered keys (offsets 0, 2, 4: not symmetric), masked."""
    torch.manual_seed(6)
    q, k, _ = _inputs(6, 1)
    labels = torch.tensor([0, 1, 0, 2, 1, 2])
    expect = reference_info_nce(q, k, None, 0.2, score, labels)
    parts = [info_nce(q[2 * r:2 * r + 2], k, temperature=0.2, score=score, positive_offset=2 * r,
                      labels=labels[2 * r:2 * r + 2], negative_labels=labels) for r in range(3)]
    assert (sum(parts) / 3).item() == pytest.approx(expect, rel=1e-10)


def test_the_bound_counts_every_candidate():
    q, p, per_query = _inputs(4, 6, per_query=True)
    loss, bound = info_nce(q, p, per_query, 0.5, return_bound=True)  # K + 1 = 7 candidates per query
    assert bound.item() == pytest.approx(math.log(7) - loss.item(), rel=1e-12)
    assert loss.item() == pytest.approx(reference_info_nce(q, p, per_query, 0.5), rel=1e-10)


def test_defaults_and_the_module_passes_every_setting_on(monkeypatch):
    q, p, neg = _inputs(6, 5)
    assert info_nce(q, p).item() == info_nce(q, p, None, 0.1).item()  # tau = 0.1, cosine
    default = InfoNCELoss()
    assert default.temperature() == 0.1 and default.temperature.learned is None
    assert (default.memory_efficient, default.block_size) == (False, None)
    assert InfoNCELoss(score=euclidean)(q, p).item() == pytest.approx(info_nce(q, p, None, 0.1, score=euclidean)
                                                                      .item(), rel=1e-12)  # direct: accepted
    labels, neg_labels = torch.tensor([0, 1, 0, 1, 2, 2]), torch.tensor([0, 2, 1, 1, 0])
    calls = spy_block_sizes(monkeypatch, infonce_module)
    module = InfoNCELoss(0.3, score=dot, memory_efficient=True, block_size=2)
    got = module(q, p, neg, labels=labels, negative_labels=neg_labels)
    assert calls == [2]
    assert got.item() == pytest.approx(reference_info_nce(q, p, neg, 0.3, dot, labels, neg_labels), rel=1e-10)
    assert module(q, p, labels=labels).item() == pytest.approx(reference_info_nce(q, p, None, 0.3, dot, labels),
                                                               rel=1e-10)
    calls.clear()
    seven = torch.randn(7, 5, dtype=torch.float64)  # 7 candidates of dimension 5: the block follows the 7
    InfoNCELoss(0.3, memory_efficient=True)(q, p, seven)
    InfoNCELoss(0.3)(q, p, seven)
    assert calls == [max(16, (1 << 25) // 7), None]


def _message(call) -> str:
    with pytest.raises((ValueError, TypeError)) as error:
        call()
    return str(error.value)


def test_every_refusal_names_the_function_and_the_argument():
    q, neg = torch.randn(4, 3), torch.randn(2, 3)
    labels = torch.arange(4)
    cases = [
        (lambda: info_nce(torch.randn(3), q), "info_nce: `query` must have 2 dimensions, got shape (3,)"),
        (lambda: info_nce(q, torch.randn(4)), "info_nce: `positive` must have 2 dimensions, got shape (4,)"),
        (lambda: info_nce(torch.randn(0, 3), torch.randn(0, 3)), "info_nce: empty batch (query has 0 rows)"),
        (lambda: info_nce(q, q, [1.0]), "info_nce: `negatives` must be a torch.Tensor, got list"),
        (lambda: info_nce(q, q, torch.randn(2, 2, 2, 3)),
         "info_nce: `negatives` must be (M, D) shared or (N, M, D) per query, got shape (2, 2, 2, 3)"),
        (lambda: info_nce(q, q, temperature=0.0), "info_nce: temperature must be a finite number > 0, got 0.0"),
        (lambda: info_nce(q, q, labels=torch.arange(3)),
         "info_nce: `labels` must have shape (4,) to match the embeddings, got (3,)"),
        (lambda: info_nce(q, q, neg, negative_labels=torch.arange(2)),
         "info_nce: `negative_labels` needs `labels` and shared (M, D) `negatives`"),
        (lambda: info_nce(q, q, labels=labels, negative_labels=labels),
         "info_nce: `negative_labels` needs `labels` and shared (M, D) `negatives`"),
        (lambda: info_nce(q, q, positive_offset=0, labels=labels),
         "info_nce: with `positive_offset`, masking needs `labels` (N,) and the keys' `negative_labels` (S,)"),
        (lambda: info_nce(q, q, torch.randn(4, 2, 3), labels=labels),
         "info_nce: `labels` masking is not defined for per-query (N, M, D) negatives"),
        (lambda: info_nce(q, q, score=euclidean, memory_efficient=True),
         "info_nce: memory_efficient=True needs an inner-product score (cosine, dot, squared Euclidean, "
         "bilinear); EuclideanDistance is not one"),
    ]
    for call, message in cases:
        assert _message(call) == message
