"""Triplet loss: explicit triplets and online mining, against loops written from the equations and against PML."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from contrastkit.losses.triplet import MINING_STRATEGIES, TripletLoss, triplet_loss
from contrastkit.similarity import MahalanobisDistance, cosine

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
pml_distances = pytest.importorskip("pytorch_metric_learning.distances")
pml_reducers = pytest.importorskip("pytorch_metric_learning.reducers")


def batch(n: int, dim: int = 5, classes: int = 3, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=dtype), torch.randint(0, classes, (n,), generator=g)


def loop_d(u: list[float], v: list[float], measure: str) -> float:
    """Smaller-is-closer dissimilarity of two vectors: Euclidean distance or negated cosine."""
    if measure == "euclidean":
        return math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v, strict=True)))
    dot_uv = sum(a * b for a, b in zip(u, v, strict=True))
    return -dot_uv / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def loop_matrix(x: torch.Tensor, measure: str) -> list[list[float]]:
    rows = x.double().tolist()
    return [[loop_d(u, v, measure) for v in rows] for u in rows]


def reference_batch_loss(x: torch.Tensor, y: torch.Tensor, margin: float, mining: str,
                         measure: str = "euclidean") -> float:
    """TripletLoss written from the papers' definitions with explicit loops over anchors and triplets."""
    d = loop_matrix(x, measure)
    labels = y.tolist()
    n = len(labels)
    if mining in ("all", "semi-hard"):
        terms = []
        for a, p, q in itertools.product(range(n), repeat=3):
            if a == p or labels[a] != labels[p] or labels[q] == labels[a]:
                continue
            d_ap, d_an = d[a][p], d[a][q]
            if mining == "all" and d_an < d_ap + margin:  # batch-all: the non-zero hinge terms
                terms.append(d_ap - d_an + margin)
            if mining == "semi-hard" and d_ap <= d_an < d_ap + margin:
                terms.append(d_ap - d_an + margin)
        return sum(terms) / len(terms) if terms else 0.0
    terms = []
    for a in range(n):
        positives = [d[a][p] for p in range(n) if p != a and labels[p] == labels[a]]
        negatives = [d[a][q] for q in range(n) if labels[q] != labels[a]]
        if not positives or not negatives:
            continue
        d_ap = max(positives) if mining == "hard" else min(positives)  # batch-hard / easy positive
        terms.append(max(0.0, d_ap - min(negatives) + margin))
    return sum(terms) / len(terms) if terms else 0.0


def pml_batch_loss(x, y, margin, mining, measure="euclidean"):
    """The same loss assembled from PML parts.

    all:       TripletMarginMiner("all") + TripletMarginLoss with its default AvgNonZeroReducer (batch-all).
    semi-hard: TripletMarginMiner("semihard") + TripletMarginLoss (every mined term is non-zero, so
               AvgNonZero = mean over the semi-hard triplets).
    hard:      BatchHardMiner (one triplet per anchor) + TripletMarginLoss with MeanReducer (zeros count).
    easy:      BatchEasyHardMiner(pos_strategy="easy", neg_strategy="hard") + TripletMarginLoss + MeanReducer.
    LpDistance must not normalise (its default) to compare raw Euclidean distances.
    """
    distance = (pml_distances.LpDistance(normalize_embeddings=False) if measure == "euclidean"
                else pml_distances.CosineSimilarity())
    if mining in ("all", "semi-hard"):
        miner = pml_miners.TripletMarginMiner(margin=margin, distance=distance,
                                              type_of_triplets="all" if mining == "all" else "semihard")
        loss = pml_losses.TripletMarginLoss(margin=margin, distance=distance)
    else:
        miner = (pml_miners.BatchHardMiner(distance=distance) if mining == "hard" else
                 pml_miners.BatchEasyHardMiner(pos_strategy="easy", neg_strategy="hard", distance=distance))
        loss = pml_losses.TripletMarginLoss(margin=margin, distance=distance,
                                            reducer=pml_reducers.MeanReducer())
    return float(loss(x, y, miner(x, y)))


def boundary_gap(x: torch.Tensor, y: torch.Tensor, margin: float) -> float:
    """Smallest distance of any triplet to a band edge (d_an = d_ap, d_an = d_ap + m) or of any per-anchor
    max / min to its runner-up; gradcheck's finite differences must not cross these."""
    d = loop_matrix(x, "euclidean")
    labels = y.tolist()
    n = len(labels)
    gaps = [math.inf]
    for a in range(n):
        positives = sorted(d[a][p] for p in range(n) if p != a and labels[p] == labels[a])
        negatives = sorted(d[a][q] for q in range(n) if labels[q] != labels[a])
        for group in (positives, negatives):
            gaps += [b - a_ for a_, b in itertools.pairwise(group)]
        for d_ap, d_an in itertools.product(positives, negatives):
            gaps += [abs(d_an - d_ap), abs(d_an - d_ap - margin)]
    return min(gaps)


def separated_batch(n: int, margin: float, min_gap: float = 1e-3):
    """The first seeded batch whose triplets all lie at least ``min_gap`` away from every boundary."""
    for seed in range(1000):
        x, y = batch(n, dim=3, classes=3, seed=seed)
        if boundary_gap(x, y, margin) >= min_gap and len(set(y.tolist())) > 1:
            return x, y
    raise AssertionError("no well-separated batch found")


# --- explicit triplets -------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 7, 40])
@pytest.mark.parametrize("measure", ["euclidean", "cosine"])
def test_triplet_loss_matches_loop(n, measure):
    g = torch.Generator().manual_seed(n)
    a, p, q = (torch.randn(n, 4, generator=g, dtype=torch.float64) for _ in range(3))
    margin = 0.3
    rows = [t.tolist() for t in (a, p, q)]
    expected = sum(max(0.0, loop_d(rows[0][i], rows[1][i], measure) - loop_d(rows[0][i], rows[2][i], measure)
                       + margin) for i in range(n)) / n
    assert abs(float(triplet_loss(a, p, q, margin, distance=measure)) - expected) < 1e-10


def test_triplet_loss_matches_pml_on_explicit_triplets():
    a, p, q = (batch(30, seed=s)[0] for s in (1, 2, 3))
    # PML takes one embedding table and index triplets; MeanReducer averages zeros too, like ours.
    table = torch.cat([a, p, q])
    idx = torch.arange(30)
    pml = pml_losses.TripletMarginLoss(margin=0.4, reducer=pml_reducers.MeanReducer(),
                                       distance=pml_distances.LpDistance(normalize_embeddings=False))
    expected = float(pml(table, indices_tuple=(idx, idx + 30, idx + 60)))
    assert abs(float(triplet_loss(a, p, q, 0.4)) - expected) < 1e-10


def test_triplet_loss_gradcheck():
    g = torch.Generator().manual_seed(0)
    a, p, q = (torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    hinge = (a - p).norm(dim=1) - (a - q).norm(dim=1) + 0.5
    assert hinge.abs().min() > 1e-3  # no sample sits on the hinge's kink
    assert torch.autograd.gradcheck(lambda a, p, q: triplet_loss(a, p, q, 0.5), (a, p, q))


def test_triplet_loss_errors_and_empty():
    a = torch.randn(4, 3)
    with pytest.raises(ValueError, match="`negative`"):
        triplet_loss(a, a, torch.randn(5, 3))
    with pytest.raises(ValueError, match="margin"):
        triplet_loss(a, a, a, margin=0.0)
    with pytest.raises(ValueError, match="NaN"):
        triplet_loss(a, a, torch.full((4, 3), float("inf")))
    empty = torch.zeros(0, 3, requires_grad=True)
    loss = triplet_loss(empty, empty, empty)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(empty.grad).all()


# --- online mining -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 7, 24, 40])
@pytest.mark.parametrize("mining", MINING_STRATEGIES)
def test_mined_loss_matches_loop_and_pml(n, mining):
    x, y = batch(n, seed=10 + n)
    margin = 0.5
    ours = float(TripletLoss(margin, mining)(x, y))
    assert abs(ours - reference_batch_loss(x, y, margin, mining)) < 1e-10
    assert abs(ours - pml_batch_loss(x, y, margin, mining)) < 1e-10


@pytest.mark.parametrize("mining", MINING_STRATEGIES)
def test_cosine_orientation_from_the_type(mining):
    x, y = batch(30, classes=4, seed=5)
    ours = float(TripletLoss(0.1, mining, distance=cosine)(x, y))
    assert abs(ours - reference_batch_loss(x, y, 0.1, mining, "cosine")) < 1e-10
    assert abs(ours - pml_batch_loss(x, y, 0.1, mining, "cosine")) < 1e-10
    assert ours == float(TripletLoss(0.1, mining, distance="cosine")(x, y))


@pytest.mark.parametrize("mining", MINING_STRATEGIES)
def test_gradcheck(mining):
    margin = 0.5
    x, y = separated_batch(10, margin)
    x.requires_grad_(True)
    loss = TripletLoss(margin, mining)
    assert loss(x, y).item() > 0  # a non-trivial gradient is checked
    assert torch.autograd.gradcheck(lambda e: loss(e, y), (x,))


@pytest.mark.parametrize("mining", ["all", "semi-hard"])
def test_gradient_equals_the_per_triplet_sum(mining):
    # The weighted-sum form against autograd through a tensor of explicitly listed triplets.
    x, y = batch(24, classes=3, seed=31)
    x.requires_grad_(True)
    TripletLoss(0.5, mining)(x, y).backward()
    d = loop_matrix(x.detach(), "euclidean")
    labels = y.tolist()
    triplets = [(a, p, q) for a, p, q in itertools.product(range(24), repeat=3)
                if a != p and labels[a] == labels[p] and labels[q] != labels[a]
                and (d[a][q] < d[a][p] + 0.5) and (mining == "all" or d[a][p] <= d[a][q])]
    a, p, q = (torch.tensor(t) for t in zip(*triplets, strict=True))
    e = x.detach().clone().requires_grad_(True)
    ((e[a] - e[p]).norm(dim=1) - (e[a] - e[q]).norm(dim=1) + 0.5).mean().backward()
    assert torch.allclose(x.grad, e.grad, atol=1e-12, rtol=0)


@pytest.mark.parametrize("mining", MINING_STRATEGIES)
@pytest.mark.parametrize("labels", [[0] * 6, list(range(6)), [4]], ids=["one-class", "all-distinct", "one"])
def test_no_valid_triplet_gives_connected_zero(mining, labels):
    x = torch.randn(len(labels), 3, requires_grad=True)
    loss = TripletLoss(0.2, mining)(x, torch.tensor(labels))
    loss.backward()
    assert loss.item() == 0.0 and loss.dtype == torch.float32
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("mining", MINING_STRATEGIES)
def test_all_easy_batch_gives_connected_zero(mining):
    # Two tight clusters far apart: every triplet is easy, so no band is populated and every hinge is 0.
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    x = (centres[y] + 0.01 * torch.randn(6, 2, generator=g, dtype=torch.float64)).requires_grad_(True)
    loss = TripletLoss(0.5, mining)(x, y)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mining", MINING_STRATEGIES)
def test_half_precision_inputs(dtype, mining):
    x, y = batch(64, dim=16, classes=4, seed=1, dtype=torch.float32)
    x_half = x.to(dtype).requires_grad_(True)
    loss = TripletLoss(0.3, mining)(x_half, y)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert torch.isfinite(x_half.grad).all()
    # Compared in float32: the same value as the float32 copy of the rounded inputs.
    assert loss.item() == pytest.approx(float(TripletLoss(0.3, mining)(x_half.detach().float(), y)), rel=1e-6)


@pytest.mark.parametrize("mining", ["all", "semi-hard"])
def test_float32_weighted_sum_is_accurate(mining):
    x, y = batch(256, dim=32, classes=16, seed=2, dtype=torch.float32)
    single = float(TripletLoss(0.2, mining)(x, y))
    double = float(TripletLoss(0.2, mining)(x.double(), y))
    assert single == pytest.approx(double, rel=1e-4)


@pytest.mark.parametrize("mining", ["all", "semi-hard"])
def test_chunk_size_changes_nothing(mining):
    x, y = batch(40, classes=4, seed=6)
    reference = TripletLoss(0.5, mining)(x, y)
    for chunk in (1, 7, 64):
        assert abs(float(TripletLoss(0.5, mining, chunk_size=chunk)(x, y)) - float(reference)) < 1e-12


def test_learned_measure_receives_gradient():
    x, y = batch(20, dim=4, seed=3)
    measure = MahalanobisDistance(4, init="random")
    loss_fn = TripletLoss(0.5, "semi-hard", distance=measure)
    assert any(p is measure.factor for p in loss_fn.parameters())
    loss_fn(x.float(), y).backward()
    assert measure.factor.grad is not None and measure.factor.grad.abs().sum() > 0


def test_validation():
    with pytest.raises(ValueError, match=r"\['all', 'semi-hard', 'hard', 'easy'\]"):
        TripletLoss(mining="semihard")
    with pytest.raises(ValueError, match="margin"):
        TripletLoss(margin=0.0)
    with pytest.raises(ValueError, match="margin"):
        TripletLoss(margin=-1.0)
    with pytest.raises(ValueError, match="chunk_size"):
        TripletLoss(chunk_size=0)
    loss = TripletLoss()
    x, y = batch(6)
    with pytest.raises(ValueError, match="labels"):
        loss(x, y[:4])
    with pytest.raises(TypeError, match="labels"):
        loss(x, y.float())
    with pytest.raises(ValueError, match="NaN"):
        loss(torch.full_like(x, float("nan")), y)
    with pytest.raises(ValueError, match="embeddings"):
        loss(x[:, :, None], y)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 16), classes=st.integers(1, 4), seed=st.integers(0, 2**31 - 1),
       mining=st.sampled_from(MINING_STRATEGIES))
def test_permutation_invariant_and_non_negative(n, classes, seed, mining):
    x, y = batch(n, dim=3, classes=classes, seed=seed)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    loss = TripletLoss(0.4, mining)
    value = float(loss(x, y))
    assert value >= 0.0
    assert abs(float(loss(x[perm], y[perm])) - value) < 1e-12


# A = 0, P = 1 (class 0), margin 1; negatives N1 = 1 (duplicate of P), N2 = 2, N3 = -1, N4 = 0.5, each its own class.
# Distances are exact in float64. Semi-hard (d_ap <= d_an < d_ap + 1): (A,P,N1), (A,P,N3), (P,A,N2), each with
# hinge 1 - 1 + 1 = 1. Hard: (A,P,N4) 1.5, (P,A,N1) 2, (P,A,N4) 1.5. Easy, at exactly d_ap + m: (A,P,N2), (P,A,N3).
TIES_X = torch.tensor([[0.0], [1.0], [1.0], [2.0], [-1.0], [0.5]], dtype=torch.float64)
TIES_Y = torch.tensor([0, 0, 1, 2, 3, 4])


@pytest.mark.parametrize(("mining", "expected"), [("semi-hard", 1.0), ("all", 8.0 / 6.0)])
def test_band_losses_on_tied_distances(mining, expected):
    """Guards the tie rule inside the loss: a negative at d_ap is semi-hard (hinge m), one at d_ap + m is easy
    (excluded even from batch-all, whose mean is over the non-zero hinges)."""
    loss = TripletLoss(1.0, mining)(TIES_X, TIES_Y)
    assert abs(float(loss) - expected) < 1e-12
    assert abs(float(loss) - reference_batch_loss(TIES_X, TIES_Y, 1.0, mining)) < 1e-12


# ------------------------------------------------------------ settings, defaults and messages, exactly
def test_defaults_and_settings_reach_the_computation(monkeypatch):
    x, y = batch(12, seed=4)
    a, p, n = x[:4], x[4:8], x[8:]
    assert triplet_loss(a, p, n).item() == triplet_loss(a, p, n, 0.2, "euclidean").item()
    default = TripletLoss()
    assert (default.margin, default.mining, default.chunk_size) == (0.2, "semi-hard", None)
    assert default(x, y).item() == pytest.approx(reference_batch_loss(x, y, 0.2, "semi-hard"), rel=1e-10)
    import contrastkit.losses.triplet as module

    chunks = []
    original = module.band_coefficients

    def spy(d, labels, band, chunk_size=None):
        chunks.append(chunk_size)
        return original(d, labels, band, chunk_size)

    monkeypatch.setattr(module, "band_coefficients", spy)
    TripletLoss(mining="all", chunk_size=3)(x, y)
    TripletLoss()(x, y)
    assert chunks == [3, None]  # the setting is used, not dropped


def test_no_triplets_is_a_zero_connected_to_every_input():
    a, p, n = (torch.zeros(0, 3, requires_grad=True) for _ in range(3))
    grads = torch.autograd.grad(triplet_loss(a, p, n), (a, p, n))
    assert [g.shape for g in grads] == [(0, 3)] * 3


def _message(call) -> str:
    with pytest.raises((ValueError, TypeError)) as error:
        call()
    return str(error.value)


def test_every_refusal_names_the_function_and_the_argument():
    x, y = batch(4)
    flat = torch.randn(4)
    cases = [
        (lambda: triplet_loss(flat, x, x), "triplet_loss: `anchor` must have 2 dimensions, got shape (4,)"),
        (lambda: triplet_loss(x, flat, x), "triplet_loss: `positive` must have 2 dimensions, got shape (4,)"),
        (lambda: triplet_loss(x, x, flat), "triplet_loss: `negative` must have 2 dimensions, got shape (4,)"),
        (lambda: triplet_loss(x, x[:3], x),
         "triplet_loss: `anchor` and `positive` must have the same shape, got (4, 5) and (3, 5)"),
        (lambda: triplet_loss(x, x, x[:3]),
         "triplet_loss: `anchor` and `negative` must have the same shape, got (4, 5) and (3, 5)"),
        (lambda: triplet_loss(x, x, x, margin=0), "triplet_loss: `margin` must be > 0, got 0"),
        (lambda: TripletLoss(margin=-0.5), "TripletLoss: `margin` must be > 0, got -0.5"),
        (lambda: TripletLoss(mining="semihard"),
         "TripletLoss: `mining` must be one of ['all', 'semi-hard', 'hard', 'easy'], got 'semihard'"),
        (lambda: TripletLoss(chunk_size=0), "TripletLoss: `chunk_size` must be >= 1, got 0"),
        (lambda: TripletLoss()(flat, y), "TripletLoss: `embeddings` must have 2 dimensions, got shape (4,)"),
        (lambda: TripletLoss()(x, y[:3]),
         "TripletLoss: `labels` must have shape (4,) to match the embeddings, got (3,)"),
    ]
    for call, message in cases:
        assert _message(call) == message
