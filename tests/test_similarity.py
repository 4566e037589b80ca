"""Similarity measures against explicit per-pair formulas, in float64, plus orientation and gradients."""

import math

import pytest
import torch

from contrastkit.similarity import (
    BilinearSimilarity,
    CosineSimilarity,
    Distance,
    MahalanobisDistance,
    MLPCritic,
    Similarity,
    cosine,
    cosine_distance,
    dot,
    euclidean,
    get_measure,
    squared_euclidean,
)


def _pair_ref(name, x, y):
    if name == "euclidean":
        return math.sqrt(sum((a - b) ** 2 for a, b in zip(x, y, strict=True)))
    if name == "squared_euclidean":
        return sum((a - b) ** 2 for a, b in zip(x, y, strict=True))
    dot_xy = sum(a * b for a, b in zip(x, y, strict=True))
    if name == "dot":
        return dot_xy
    nx, ny = math.sqrt(sum(a * a for a in x)), math.sqrt(sum(b * b for b in y))
    cos = dot_xy / (nx * ny)
    return cos if name == "cosine" else 1 - cos


@pytest.mark.parametrize("name", ["euclidean", "squared_euclidean", "cosine", "cosine_distance", "dot"])
@pytest.mark.parametrize(("n", "m", "d"), [(1, 1, 1), (5, 3, 4), (8, 11, 16)])
def test_fixed_measures_match_loops(name, n, m, d):
    measure = get_measure(name)
    x, y = torch.randn(n, d, dtype=torch.float64), torch.randn(m, d, dtype=torch.float64)
    got = measure(x, y)
    assert got.shape == (n, m) and got.dtype == torch.float64
    for i in range(n):
        for j in range(m):
            assert got[i, j].item() == pytest.approx(_pair_ref(name, x[i].tolist(), y[j].tolist()), abs=1e-10)
    k = min(n, m)
    paired = measure.paired(x[:k], y[:k])
    assert torch.allclose(paired, got[range(k), range(k)], atol=1e-10)


def test_orientation_is_the_type():
    assert isinstance(euclidean, Distance) and isinstance(squared_euclidean, Distance)
    assert isinstance(cosine_distance, Distance) and isinstance(MahalanobisDistance(3), Distance)
    assert isinstance(cosine, Similarity) and isinstance(dot, Similarity)
    assert isinstance(BilinearSimilarity(3), Similarity) and isinstance(MLPCritic(3), Similarity)
    x, y = torch.randn(4, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    assert torch.equal(euclidean.scores(x, y), -euclidean(x, y))
    assert torch.equal(euclidean.dissimilarities(x, y), euclidean(x, y))
    assert torch.equal(cosine.scores(x, y), cosine(x, y))
    assert torch.equal(cosine.dissimilarities(x, y), -cosine(x, y))


@pytest.mark.parametrize(
    "measure",
    [squared_euclidean, cosine, cosine_distance, dot, BilinearSimilarity(4, 4, bias=True).double(),
     BilinearSimilarity(4, 4).double()],
)
def test_score_factors_reproduce_scores(measure):
    x, y = torch.randn(6, 4, dtype=torch.float64), torch.randn(7, 4, dtype=torch.float64)
    a, c, offset = measure.score_factors(x, y)
    scores = a @ c.T + (0 if offset is None else offset[:, None])
    assert torch.allclose(scores, measure.scores(x, y), atol=1e-12)


def test_non_inner_product_measures_have_no_factors():
    x = torch.randn(3, 4)
    assert euclidean.score_factors(x, x) is None
    assert MahalanobisDistance(4).score_factors(x, x) is None
    assert MLPCritic(4).score_factors(x, x) is None


def test_mahalanobis_is_psd_and_matches_quadratic_form():
    measure = MahalanobisDistance(5, rank=3, init="random").double()
    x, y = torch.randn(4, 5, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    metric = measure.metric.detach()
    assert torch.linalg.eigvalsh(metric).min() > -1e-12
    got = measure(x, y)
    for i in range(4):
        for j in range(6):
            diff = x[i] - y[j]
            assert got[i, j].item() == pytest.approx(math.sqrt(float(diff @ metric @ diff)), abs=1e-10)
    identity = MahalanobisDistance(5).double()
    assert torch.allclose(identity(x, y), euclidean(x, y))


def test_bilinear_and_critic_match_definitions():
    bil = BilinearSimilarity(3, 5).double()
    x, c = torch.randn(4, 3, dtype=torch.float64), torch.randn(6, 5, dtype=torch.float64)
    w = bil.weight.detach()
    assert torch.allclose(bil(x, c), torch.stack([torch.stack([xi @ w @ cj for cj in c]) for xi in x]))
    critic = MLPCritic(3, 5, hidden=8).double()
    # the critic is an MLP on the concatenation [x; y]: its first layer is Linear(3 + 5, 8) split in two
    first = torch.nn.Linear(8, 8).double()
    with torch.no_grad():
        first.weight.copy_(torch.cat([critic.first_x.weight, critic.first_y.weight], dim=1))
        first.bias.copy_(critic.first_x.bias)
    mlp = torch.nn.Sequential(first, *critic.rest)
    expect = torch.stack([torch.stack([mlp(torch.cat([xi, cj])).squeeze() for cj in c]) for xi in x])
    assert torch.allclose(critic(x, c), expect, atol=1e-12)
    assert torch.allclose(critic.paired(x, c[:4]), critic(x, c[:4]).diagonal(), atol=1e-12)


@pytest.mark.parametrize("measure", [euclidean, squared_euclidean, cosine, dot, cosine_distance])
def test_gradcheck(measure):
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: measure(a, b), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: measure.paired(a, b), (x, y[:4]))


def test_learnable_measures_gradcheck():
    for measure in [MahalanobisDistance(3, init="random").double(), BilinearSimilarity(3, 2).double()]:
        x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
        y = torch.randn(2, measure.dim_y if hasattr(measure, "dim_y") else 3, dtype=torch.float64,
                        requires_grad=True)
        assert torch.autograd.gradcheck(lambda a, b, m=measure: m(a, b), (x, y))


def test_euclidean_gradient_at_identical_points_is_finite():
    x = torch.randn(3, 4, requires_grad=True)
    d = euclidean(x, x)
    d.sum().backward()
    assert torch.isfinite(x.grad).all()
    y = torch.zeros(2, 4, requires_grad=True)
    euclidean.paired(y, y.detach().clone()).sum().backward()
    assert torch.equal(y.grad, torch.zeros_like(y))


def test_zero_vectors_give_zero_cosine_not_nan():
    x = torch.zeros(2, 3, requires_grad=True)
    s = cosine(x, torch.randn(4, 3))
    assert torch.equal(s, torch.zeros(2, 4))
    s.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_computed_in_float32(dtype):
    x = (torch.randn(5, 8) * 1e-3).to(dtype)
    for measure in [euclidean, cosine, squared_euclidean, dot]:
        out = measure(x, x)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.allclose(cosine(x, x).diagonal(), torch.ones(5), atol=1e-3)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="feature dimensions differ"):
        cosine(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match="2-D"):
        euclidean(torch.randn(3), torch.randn(3))
    with pytest.raises(ValueError, match="same number of rows"):
        dot.paired(torch.randn(3, 4), torch.randn(2, 4))
    with pytest.raises(ValueError, match="expected feature dim 4"):
        MahalanobisDistance(4)(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match="unknown measure"):
        get_measure("manhattan")
    with pytest.raises(ValueError, match="unbounded similarity"):
        dot.as_distance()
    assert isinstance(CosineSimilarity().as_distance(), Distance)


# ------------------------------------------------------------ every form, dtype, setting and message, exactly
F64 = torch.float64


def _message(call) -> str:
    with pytest.raises((ValueError, TypeError)) as error:
        call()
    return str(error.value)


def test_paired_scores_are_the_oriented_paired_form():
    x, y = torch.randn(4, 3, dtype=F64), torch.randn(4, 3, dtype=F64)
    for measure in (euclidean, squared_euclidean, cosine_distance, MahalanobisDistance(3, init="random").double()):
        assert torch.equal(measure.paired_scores(x, y), -measure.paired(x, y))
    for measure in (cosine, dot, BilinearSimilarity(3).double()):
        assert torch.equal(measure.paired_scores(x, y), measure.paired(x, y))


@pytest.mark.parametrize(("first", "second"), [(torch.float32, F64), (F64, torch.float32)])
def test_mixed_precision_pairs_compute_in_float64(first, second):
    """A float32 and a float64 input: every fixed measure computes in float64 (no downcast, no dtype clash)."""
    x64, y64 = torch.randn(3, 4, dtype=F64), torch.randn(5, 4, dtype=F64)
    x, y = x64.to(first), y64.to(second)
    for name in ("euclidean", "squared_euclidean", "cosine", "cosine_distance", "dot"):
        measure = get_measure(name)
        exact = measure(x.double(), y.double())
        got = measure(x, y)
        assert got.dtype == F64 and torch.allclose(got, exact, rtol=1e-12, atol=1e-12), name
        paired = measure.paired(x, y[:3])
        assert paired.dtype == F64 and torch.allclose(paired, measure.paired(x.double(), y[:3].double()))
    factors = dot.score_factors(x, y)
    assert factors[0].dtype == factors[1].dtype == F64
    for module in (MahalanobisDistance(4, init="random"), BilinearSimilarity(4)):  # float32 parameters
        assert module(x, y).dtype == F64
    double = MahalanobisDistance(4, init="random").double()
    assert double(x.float(), y.float()).dtype == F64  # float64 parameters: float64 result
    bil = BilinearSimilarity(4).double()
    assert bil(x.float(), y.float()).dtype == F64
    critic = MLPCritic(4, hidden=6).double()
    out = critic(x.float(), y.float())  # float32 inputs meet the critic's float64 weights
    assert out.dtype == F64 and torch.allclose(out, critic(x.double(), y.double()))
    assert critic(x.double(), y.double()).dtype == F64


def test_identical_points_are_at_distance_exactly_zero():
    x = torch.randn(5, 3)
    assert torch.equal(euclidean(x, x).diagonal(), torch.zeros(5))
    assert torch.equal(euclidean.paired(x, x), torch.zeros(5))
    from contrastkit.similarity import safe_sqrt

    assert torch.equal(safe_sqrt(torch.tensor([0.0, 4.0, 1e-30])), torch.tensor([0.0, 2.0, 1e-15]))


def test_normalize_keeps_tiny_rows_and_computes_in_float32():
    from contrastkit.similarity import normalize

    tiny64 = torch.tensor([[3e-11, 4e-11]], dtype=F64)
    assert torch.allclose(normalize(tiny64), torch.tensor([[0.6, 0.8]], dtype=F64), rtol=1e-12)  # eps 1e-12
    tiny32 = torch.tensor([[3e-10, 4e-10]])
    assert torch.allclose(normalize(tiny32), tiny32 / 1e-8, rtol=1e-6)  # float32: eps 1e-8 (norm 5e-10 < eps)
    half = torch.tensor([[3.0, 4.0]], dtype=torch.bfloat16)
    out = normalize(half)
    assert out.dtype == torch.float32 and torch.allclose(out, torch.tensor([[0.6, 0.8]]))
    assert torch.equal(normalize(torch.zeros(2, 3)), torch.zeros(2, 3))


def test_a_users_measure_computes_in_float32_under_autocast():
    """Measure subclasses' own pairwise / paired / score_factors get full precision (bf16 inputs and
    autocast become float32), whatever the subclass."""
    seen = {}

    class Mine(Similarity):
        def pairwise(self, x, y):
            seen["pairwise"] = (x.dtype, y.dtype)
            return x @ y.T

        def paired(self, x, y):
            seen["paired"] = (x.dtype, y.dtype)
            return (x * y).sum(1)

        def score_factors(self, x, y):
            seen["score_factors"] = (x.dtype, y.dtype)
            return x, y, None

    mine = Mine()
    x = torch.randn(3, 4).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mine(x, x)
        assert out.dtype == torch.float32
        assert mine.paired(x, x).dtype == torch.float32
        mine.score_factors(x, x)
    assert seen == {name: (torch.float32, torch.float32) for name in ("pairwise", "paired", "score_factors")}

    class OnlyPairwise(Distance):  # a subclass that leaves the other methods to its bases
        def pairwise(self, x, y):
            return torch.cdist(x, y)

        def paired(self, x, y):
            return (x - y).norm(dim=1)

    assert OnlyPairwise().score_factors(x, x) is None  # the base's, untouched


def test_cosine_distance_factors_for_one_dimensional_embeddings():
    x, y = torch.randn(3, 1, dtype=F64), torch.randn(4, 1, dtype=F64)
    a, c, offset = cosine_distance.score_factors(x, y)
    assert torch.allclose(a @ c.T + offset[:, None], -cosine_distance(x, y))


def test_mahalanobis_settings_at_their_limits():
    one = MahalanobisDistance(1)
    assert one.factor.shape == (1, 1) and one.rank == 1
    low = MahalanobisDistance(4, rank=2)
    assert torch.equal(low.factor.detach(), torch.eye(4, 2)) and (low.dim, low.rank) == (4, 2)
    assert MahalanobisDistance(4, rank=1).factor.shape == (4, 1)
    torch.manual_seed(7)
    random = MahalanobisDistance(9, rank=3, init="random")
    torch.manual_seed(7)
    assert torch.equal(random.factor.detach(), torch.randn(9, 3) / 3.0)  # N(0, 1 / dim) entries
    assert random.extra_repr() == "dim=9, rank=3"
    x, y = torch.randn(5, 9, dtype=F64), torch.randn(5, 9, dtype=F64)
    double = random.double()
    projected = double.project(x)
    assert torch.allclose(projected, x @ double.factor)
    assert double.project(x.reshape(5, 1, 9)).shape == (5, 1, 3)  # any leading dimensions
    metric = double.metric.detach()
    loop = [math.sqrt(float((x[i] - y[i]) @ metric @ (x[i] - y[i]))) for i in range(5)]
    assert double.paired(x, y).tolist() == pytest.approx(loop, abs=1e-10)
    for kwargs, message in (({"dim": 0}, "MahalanobisDistance: dim must be >= 1, got 0"),
                            ({"dim": 3, "rank": 0}, "MahalanobisDistance: rank must be in [1, 3], got 0"),
                            ({"dim": 3, "rank": 4}, "MahalanobisDistance: rank must be in [1, 3], got 4"),
                            ({"dim": 3, "init": "zeros"},
                             "MahalanobisDistance: init must be 'identity' or 'random', got 'zeros'")):
        assert _message(lambda kw=kwargs: MahalanobisDistance(**kw)) == message
    assert _message(lambda: MahalanobisDistance(4).project(torch.randn(2, 3))) == \
        "MahalanobisDistance: expected feature dim 4, got shape (2, 3)"


def test_bilinear_settings_forms_and_bias():
    square = BilinearSimilarity(3)
    assert square.bias is None and torch.equal(square.weight.detach(), torch.eye(3))
    assert square.extra_repr() == "dim_x=3, dim_y=3, bias=False"
    assert BilinearSimilarity(1, 1).weight.shape == (1, 1) and BilinearSimilarity(2, 1).weight.shape == (2, 1)
    torch.manual_seed(3)
    rect = BilinearSimilarity(3, 5)
    torch.manual_seed(3)
    assert torch.equal(rect.weight.detach(), torch.nn.init.xavier_uniform_(torch.empty(3, 5)))
    biased = BilinearSimilarity(3, 5, bias=True).double()
    assert biased.bias.shape == () and float(biased.bias.detach()) == 0.0
    assert biased.extra_repr() == "dim_x=3, dim_y=5, bias=True"
    with torch.no_grad():
        biased.bias.fill_(0.5)
        biased.weight.normal_()
    x, c = torch.randn(4, 3, dtype=F64), torch.randn(4, 5, dtype=F64)
    w = biased.weight.detach()
    loop = torch.tensor([[float(x[i] @ w @ c[j]) + 0.5 for j in range(4)] for i in range(4)], dtype=F64)
    assert torch.allclose(biased(x, c), loop, atol=1e-12)
    assert torch.allclose(biased.paired(x, c), loop.diagonal(), atol=1e-12)
    a, cf, offset = biased.score_factors(x, c)
    assert torch.allclose(a @ cf.T + offset[:, None], loop, atol=1e-12)
    unbiased = BilinearSimilarity(3, 5).double()
    assert torch.allclose(unbiased.paired(x, c), unbiased(x, c).diagonal(), atol=1e-12)
    for make, message in ((lambda: BilinearSimilarity(0, 2), "BilinearSimilarity: dims must be >= 1, got 0, 2"),
                          (lambda: BilinearSimilarity(2, 0), "BilinearSimilarity: dims must be >= 1, got 2, 0")):
        assert _message(make) == message
    for u, v in ((torch.randn(4), c), (x, torch.randn(5)), (torch.randn(4, 2), c), (x, torch.randn(4, 4))):
        assert _message(lambda u=u, v=v: biased(u, v)) == \
            f"BilinearSimilarity: expected (N, 3) and (M, 5), got {tuple(u.shape)} and {tuple(v.shape)}"
    assert _message(lambda: biased.paired(x, c[:3])) == "paired form needs the same number of rows, got 4 and 3"


def test_mlp_critic_architecture_and_messages():
    critic = MLPCritic(3, 5)
    assert (critic.first_x.in_features, critic.first_x.out_features) == (3, 128) and critic.first_y.bias is None
    assert (critic.first_y.in_features, critic.first_y.out_features) == (5, 128)
    kinds = [type(m).__name__ for m in critic.rest]
    assert kinds == ["ReLU", "Linear", "ReLU", "Linear"] and critic.rest[-1].out_features == 1  # 2 layers
    one = MLPCritic(4, hidden=6, layers=1)
    assert [type(m).__name__ for m in one.rest] == ["ReLU", "Linear"] and one.dim_y == 4
    three = MLPCritic(4, hidden=6, layers=3)
    assert [type(m).__name__ for m in three.rest] == ["ReLU", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert critic.extra_repr() == "dim_x=3, dim_y=5"
    assert _message(lambda: MLPCritic(3, layers=0)) == "MLPCritic: layers must be >= 1, got 0"
    x, y = torch.randn(4, 3), torch.randn(4, 5)
    for u, v in ((torch.randn(4), y), (x, torch.randn(5)), (torch.randn(4, 2), y), (x, torch.randn(4, 4))):
        assert _message(lambda u=u, v=v: critic(u, v)) == \
            f"MLPCritic: expected (N, 3) and (M, 5), got {tuple(u.shape)} and {tuple(v.shape)}"
    assert critic.paired(x, y).shape == (4,)


def test_every_shape_refusal_exactly():
    cases = [
        (lambda: cosine(torch.randn(3), torch.randn(2, 3)),
         "measures take 2-D (batch, dim) inputs, got shapes (3,) and (2, 3)"),
        (lambda: cosine(torch.randn(2, 3), torch.randn(3)),
         "measures take 2-D (batch, dim) inputs, got shapes (2, 3) and (3,)"),
        (lambda: dot(torch.randn(2, 3), torch.randn(2, 4)),
         "feature dimensions differ: 3 vs 4 (shapes (2, 3) and (2, 4))"),
        (lambda: dot.paired(torch.randn(3, 4), torch.randn(2, 4)),
         "paired form needs the same number of rows, got 3 and 2"),
        (lambda: get_measure("manhattan"), "unknown measure 'manhattan'; expected a Measure or one of ['cosine', "
                                           "'cosine_distance', 'dot', 'euclidean', 'squared_euclidean']"),
        (lambda: dot.as_distance(), "DotProductSimilarity is an unbounded similarity with no non-negative distance "
                                    "of the same ordering; losses defined on distances (the contrastive margin "
                                    "loss) need a Distance or CosineSimilarity (used as 1 - cos)"),
    ]
    for call, message in cases:
        assert _message(call) == message


def test_a_float32_critic_does_not_silently_downcast_float64_inputs():
    critic = MLPCritic(3, hidden=4)  # float32 weights
    x = torch.randn(2, 3, dtype=F64)
    with pytest.raises(RuntimeError):  # a dtype clash from torch, not a quiet loss of precision
        critic(x, x)
    assert critic(x.float(), x.float()).dtype == torch.float32
