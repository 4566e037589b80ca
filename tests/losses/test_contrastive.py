"""Hadsell et al.'s contrastive loss against loops written from the paper's equation, and against PML."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from contrastkit.losses.contrastive import (
    ContrastiveLoss,
    PairedContrastiveLoss,
    contrastive_loss,
    contrastive_loss_from_labels,
)
from contrastkit.similarity import MahalanobisDistance, cosine, cosine_distance, dot

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
pml_distances = pytest.importorskip("pytorch_metric_learning.distances")
pml_reducers = pytest.importorskip("pytorch_metric_learning.reducers")


def loop_distance(u: list[float], v: list[float], measure: str) -> float:
    if measure == "euclidean":
        return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v, strict=True)))
    dot_uv = sum(a * b for a, b in zip(u, v, strict=True))  # cosine distance 1 - cos
    return 1.0 - dot_uv / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def paper_term(distance: float, y_paper: int, margin: float) -> float:
    """Hadsell, Chopra & LeCun 2006, eq. 4: (1 - Y) 1/2 D^2 + Y 1/2 max(0, m - D)^2, Y = 0 for similar."""
    return (1 - y_paper) * 0.5 * distance**2 + y_paper * 0.5 * max(0.0, margin - distance) ** 2


def reference_paired(x1, x2, similar, margin, measure="euclidean") -> float:
    rows1, rows2, flags = x1.tolist(), x2.tolist(), similar.tolist()
    terms = [paper_term(loop_distance(u, v, measure), 0 if s else 1, margin)
             for u, v, s in zip(rows1, rows2, flags, strict=True)]
    return sum(terms) / len(terms)


def reference_labels(x, y, margin, measure="euclidean") -> float:
    rows, labels = x.tolist(), y.tolist()
    n = len(labels)
    terms = [paper_term(loop_distance(rows[i], rows[j], measure), 0 if labels[i] == labels[j] else 1, margin)
             for i in range(n) for j in range(i + 1, n)]
    return sum(terms) / len(terms)


def pairs(n: int, dim: int = 4, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(n, dim, generator=g, dtype=dtype)
    x2 = torch.randn(n, dim, generator=g, dtype=dtype) * 0.4
    similar = torch.rand(n, generator=g) < 0.5
    return x1, x2, similar


def labelled(n: int, dim: int = 4, classes: int = 3, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return 0.5 * torch.randn(n, dim, generator=g, dtype=dtype), torch.randint(0, classes, (n,), generator=g)


@pytest.mark.parametrize("n", [1, 7, 24, 40])
@pytest.mark.parametrize("measure", ["euclidean", "cosine"])
def test_paired_matches_paper_equation(n, measure):
    x1, x2, similar = pairs(n, seed=n)
    # For cosine the loss runs on 1 - cos (the similarity's as_distance); margin inside [0, 2].
    ours = contrastive_loss(x1, x2, similar, margin=1.0, distance=measure)
    assert abs(float(ours) - reference_paired(x1, x2, similar, 1.0, measure)) < 1e-10


@pytest.mark.parametrize("n", [2, 7, 24, 40])
@pytest.mark.parametrize("measure", ["euclidean", "cosine"])
def test_labels_form_matches_loop_over_pairs(n, measure):
    x, y = labelled(n, seed=n)
    expected = reference_labels(x, y, 0.8, measure)
    assert abs(float(contrastive_loss_from_labels(x, y, 0.8, distance=measure)) - expected) < 1e-10
    assert abs(float(ContrastiveLoss(0.8, distance=measure)(x, y)) - expected) < 1e-10


def test_cosine_similarity_is_used_as_one_minus_cos():
    x, y = labelled(12, seed=3)
    assert float(contrastive_loss_from_labels(x, y, distance=cosine)) == float(
        contrastive_loss_from_labels(x, y, distance=cosine_distance))


@pytest.mark.parametrize("n", [7, 24, 40])
def test_matches_pml_after_squaring_its_terms(n):
    """PML's ContrastiveLoss(pos_margin=0, neg_margin=m) uses un-squared hinges, [D - 0]_+ = D and [m - D]_+,
    over ordered pairs (i, j) and (j, i). With the DoNothingReducer its per-pair terms come out unreduced, so
    1/2 * term^2 gives Hadsell's terms; every unordered pair appears twice, so the mean over the N (N - 1)
    ordered pairs is our mean over the N (N - 1) / 2 pairs. (Its default AvgNonZeroReducer averages positive
    and negative terms separately over the non-zero ones, which is not comparable.)"""
    x, y = labelled(n, seed=50 + n)
    pml = pml_losses.ContrastiveLoss(pos_margin=0.0, neg_margin=0.8, reducer=pml_reducers.DoNothingReducer(),
                                     distance=pml_distances.LpDistance(normalize_embeddings=False))
    out = pml(x, y)
    squared = sum(0.5 * out[k]["losses"].pow(2).sum() for k in ("pos_loss", "neg_loss")
                  if torch.is_tensor(out[k]["losses"]))
    expected = float(squared) / (n * (n - 1))
    assert abs(float(contrastive_loss_from_labels(x, y, 0.8)) - expected) < 1e-10


def test_closed_forms():
    a = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([[4.0, 6.0]], dtype=torch.float64)  # distance 5
    yes, no = torch.tensor([True]), torch.tensor([False])
    assert float(contrastive_loss(a, a, yes)) == 0.0  # identical similar pair
    assert float(contrastive_loss(a, b, yes)) == 12.5  # 1/2 * 5^2
    assert float(contrastive_loss(a, a, no, margin=2.0)) == 2.0  # identical dissimilar pair: 1/2 m^2
    assert float(contrastive_loss(a, b, no, margin=5.0)) == 0.0  # dissimilar pair at the margin
    assert float(contrastive_loss(a, b, no, margin=7.0)) == 2.0  # 1/2 (7 - 5)^2


def test_gradcheck_both_forms():
    x1, x2, similar = pairs(8, seed=1)
    x1.requires_grad_(True)
    x2.requires_grad_(True)
    # max(0, m - D)^2 is continuously differentiable, so no boundary needs to be avoided.
    assert torch.autograd.gradcheck(lambda u, v: contrastive_loss(u, v, similar, 1.0), (x1, x2))
    x, y = labelled(9, seed=2)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: contrastive_loss_from_labels(e, y, 1.0), (x,))
    assert torch.autograd.gradcheck(lambda e: contrastive_loss_from_labels(e, y, 0.5, distance=cosine), (x,))


def test_modules():
    x1, x2, similar = pairs(10, seed=4)
    assert float(PairedContrastiveLoss(0.7)(x1, x2, similar)) == float(contrastive_loss(x1, x2, similar, 0.7))
    x, y = labelled(10, seed=4)
    assert float(ContrastiveLoss(0.7)(x, y)) == float(contrastive_loss_from_labels(x, y, 0.7))
    measure = MahalanobisDistance(4, init="random")
    loss_fn = ContrastiveLoss(1.0, distance=measure)
    assert any(p is measure.factor for p in loss_fn.parameters())
    loss_fn(x.float(), y).backward()
    assert measure.factor.grad is not None and measure.factor.grad.abs().sum() > 0


@pytest.mark.parametrize("make", [lambda x, y: ContrastiveLoss()(x, y), contrastive_loss_from_labels])
def test_batch_of_one_is_a_connected_zero(make):
    x = torch.randn(1, 3, requires_grad=True)
    loss = make(x, torch.tensor([2]))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))


def test_no_pairs_is_a_connected_zero():
    x = torch.zeros(0, 3, requires_grad=True)
    loss = contrastive_loss(x, x, torch.zeros(0, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and x.grad.shape == (0, 3)


def test_zero_vectors_stay_finite():
    x = torch.zeros(4, 3, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1])
    for measure in ("euclidean", "cosine"):
        loss = contrastive_loss_from_labels(x, y, distance=measure)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs(dtype):
    x, y = labelled(32, dim=8, seed=6, dtype=torch.float32)
    x_half = x.to(dtype).requires_grad_(True)
    loss = contrastive_loss_from_labels(x_half, y)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and torch.isfinite(x_half.grad).all()
    assert loss.item() == pytest.approx(float(contrastive_loss_from_labels(x_half.detach().float(), y)),
                                        rel=1e-6)
    x1, x2, similar = pairs(16, seed=6, dtype=torch.float32)
    paired = contrastive_loss(x1.to(dtype), x2.to(dtype), similar)
    assert paired.dtype == torch.float32 and torch.isfinite(paired)


def test_validation():
    x1, x2, similar = pairs(5)
    with pytest.raises(TypeError, match="bool"):
        contrastive_loss(x1, x2, similar.long())  # a 0/1 tensor could be the paper's Y (1 = dissimilar)
    with pytest.raises(ValueError, match="similar"):
        contrastive_loss(x1, x2, similar[:3])
    with pytest.raises(ValueError, match="same shape"):
        contrastive_loss(x1, x2[:4], similar)
    with pytest.raises(ValueError, match="NaN"):
        contrastive_loss(x1, torch.full_like(x2, float("nan")), similar)
    with pytest.raises(ValueError, match="margin"):
        contrastive_loss(x1, x2, similar, margin=0.0)
    with pytest.raises(ValueError, match="margin"):
        ContrastiveLoss(margin=-1.0)
    with pytest.raises(ValueError, match="margin"):
        PairedContrastiveLoss(margin=0.0)
    with pytest.raises(ValueError, match="unbounded similarity"):
        ContrastiveLoss(distance=dot)
    with pytest.raises(ValueError, match="unbounded similarity"):
        contrastive_loss_from_labels(x1, torch.arange(5), distance="dot")
    with pytest.raises(ValueError, match="labels"):
        ContrastiveLoss()(x1, torch.arange(4))
    with pytest.raises(ValueError, match="NaN"):
        ContrastiveLoss()(torch.full_like(x1, float("inf")), torch.arange(5))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 16), classes=st.integers(1, 4), seed=st.integers(0, 2**31 - 1),
       margin=st.floats(0.1, 3.0))
def test_permutation_invariant_and_non_negative(n, classes, seed, margin):
    x, y = labelled(n, dim=3, classes=classes, seed=seed)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    value = float(contrastive_loss_from_labels(x, y, margin))
    assert value >= 0.0
    assert abs(float(contrastive_loss_from_labels(x[perm], y[perm], margin)) - value) < 1e-12
    x1, x2, similar = pairs(n, dim=3, seed=seed)
    assert float(contrastive_loss(x1, x2, similar, margin)) >= 0.0
    assert abs(float(contrastive_loss(x1[perm], x2[perm], similar[perm], margin))
               - float(contrastive_loss(x1, x2, similar, margin))) < 1e-12


# ------------------------------------------------------------ settings, defaults and messages, exactly
def test_defaults_and_the_modules_pass_every_setting_on():
    x1, x2, similar = pairs(9, seed=8)
    x, y = labelled(9, seed=8)
    assert contrastive_loss(x1, x2, similar).item() == contrastive_loss(x1, x2, similar, 1.0, "euclidean").item()
    assert contrastive_loss_from_labels(x, y).item() == contrastive_loss_from_labels(x, y, 1.0, "euclidean").item()
    assert ContrastiveLoss().margin == PairedContrastiveLoss().margin == 1.0
    assert ContrastiveLoss()(x, y).item() == contrastive_loss_from_labels(x, y, 1.0).item()
    assert PairedContrastiveLoss()(x1, x2, similar).item() == contrastive_loss(x1, x2, similar, 1.0).item()
    paired = PairedContrastiveLoss(0.5, distance="cosine")(x1, x2, similar)
    assert paired.item() == contrastive_loss(x1, x2, similar, 0.5, "cosine").item()
    assert paired.item() != pytest.approx(contrastive_loss(x1, x2, similar, 0.5).item(), rel=1e-3)
    assert ContrastiveLoss(0.5, "cosine")(x, y).item() == contrastive_loss_from_labels(x, y, 0.5, "cosine").item()


def test_no_pairs_is_a_zero_connected_to_both_sides():
    x1 = torch.zeros(0, 3, requires_grad=True)
    x2 = torch.zeros(0, 3, requires_grad=True)
    g1, g2 = torch.autograd.grad(contrastive_loss(x1, x2, torch.zeros(0, dtype=torch.bool)), (x1, x2))
    assert g1.shape == g2.shape == (0, 3)


def _message(call) -> str:
    with pytest.raises((ValueError, TypeError)) as error:
        call()
    return str(error.value)


def test_every_refusal_names_the_function_and_the_argument():
    x1, x2, similar = pairs(4)
    x, y = labelled(4)
    flat = torch.randn(4)
    cases = [
        (lambda: contrastive_loss(flat, x2, similar), "contrastive_loss: `x1` must have 2 dimensions, got shape (4,)"),
        (lambda: contrastive_loss(x1, flat, similar), "contrastive_loss: `x2` must have 2 dimensions, got shape (4,)"),
        (lambda: contrastive_loss(x1, x2[:3], similar),
         "contrastive_loss: `x1` and `x2` must have the same shape, got (4, 4) and (3, 4)"),
        (lambda: contrastive_loss(x1, x2, [True] * 4), "contrastive_loss: `similar` must be a torch.Tensor, got list"),
        (lambda: contrastive_loss(x1, x2, similar.long()),
         "contrastive_loss: `similar` must be a bool tensor (True = similar pair; the paper's Y is ~similar), got "
         "dtype torch.int64"),
        (lambda: contrastive_loss(x1, x2, similar[:3]),
         "contrastive_loss: `similar` must have shape (4,) to match the pairs, got (3,)"),
        (lambda: contrastive_loss(x1, x2, similar, margin=0.0), "contrastive_loss: `margin` must be > 0, got 0.0"),
        (lambda: contrastive_loss_from_labels(flat, y),
         "contrastive_loss_from_labels: `embeddings` must have 2 dimensions, got shape (4,)"),
        (lambda: contrastive_loss_from_labels(x, y[:3]),
         "contrastive_loss_from_labels: `labels` must have shape (4,) to match the embeddings, got (3,)"),
        (lambda: contrastive_loss_from_labels(x, y, margin=-1),
         "contrastive_loss_from_labels: `margin` must be > 0, got -1"),
        (lambda: ContrastiveLoss(margin=0.0), "ContrastiveLoss: `margin` must be > 0, got 0.0"),
        (lambda: PairedContrastiveLoss(margin=0.0), "PairedContrastiveLoss: `margin` must be > 0, got 0.0"),
        (lambda: ContrastiveLoss()(flat, y), "ContrastiveLoss: `embeddings` must have 2 dimensions, got shape (4,)"),
        (lambda: ContrastiveLoss()(x, y[:3]),
         "ContrastiveLoss: `labels` must have shape (4,) to match the embeddings, got (3,)"),
    ]
    for call, message in cases:
        assert _message(call) == message


def test_a_batch_of_two_has_its_one_pair():
    x = torch.tensor([[0.0, 0.0], [0.3, 0.4]], dtype=torch.float64)  # distance 0.5
    same, other = torch.tensor([1, 1]), torch.tensor([1, 2])
    assert contrastive_loss_from_labels(x, same).item() == pytest.approx(0.5 * 0.25, rel=1e-15)  # D^2 / 2
    assert contrastive_loss_from_labels(x, other).item() == pytest.approx(0.5 * 0.25, rel=1e-15)  # (1 - D)^2 / 2
    assert ContrastiveLoss(2.0)(x, other).item() == pytest.approx(0.5 * 1.5**2, rel=1e-15)
