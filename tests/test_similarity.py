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
