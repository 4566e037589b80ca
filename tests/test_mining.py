"""Triplet mining: exact counts and index lists against brute-force enumeration and PyTorch Metric Learning."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from contrastkit.mining import (
    TRIPLET_KINDS,
    TripletCounts,
    band_coefficients,
    mine_triplets,
    triplet_band,
    triplet_categories,
)
from contrastkit.similarity import MahalanobisDistance, cosine, dot, euclidean

pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
pml_distances = pytest.importorskip("pytorch_metric_learning.distances")

SIZES = [2, 7, 24, 40]


def batch(n: int, dim: int = 5, classes: int = 3, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g, dtype=dtype)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


def loop_dissimilarity(x: torch.Tensor, measure: str) -> list[list[float]]:
    """d[i][j], smaller = closer, by explicit loops: Euclidean distance or negated cosine similarity."""
    rows = x.double().tolist()
    n = len(rows)
    d = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            u, v = rows[i], rows[j]
            if measure == "euclidean":
                d[i][j] = math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v, strict=True)))
            else:  # cosine: d = -cos
                dot_uv = sum(a * b for a, b in zip(u, v, strict=True))
                d[i][j] = -dot_uv / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))
    return d


def brute_force_sets(x: torch.Tensor, y: torch.Tensor, margin: float, measure: str = "euclidean"):
    """Every valid triplet (a != p same label, n other label) sorted into the survey's states."""
    d = loop_dissimilarity(x, measure)
    labels = y.tolist()
    n = len(labels)
    sets: dict[str, set[tuple[int, int, int]]] = {kind: set() for kind in TRIPLET_KINDS}
    total = 0
    for a, p, q in itertools.product(range(n), repeat=3):
        if a == p or labels[a] != labels[p] or labels[q] == labels[a]:
            continue
        total += 1
        d_ap, d_an = d[a][p], d[a][q]
        if d_an < d_ap:
            sets["hard"].add((a, p, q))
        elif d_an < d_ap + margin:
            sets["semi-hard"].add((a, p, q))
        else:
            sets["easy"].add((a, p, q))
        if d_an < d_ap + margin:
            sets["all"].add((a, p, q))
    return sets, total


def as_set(indices: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> set[tuple[int, int, int]]:
    a, p, n = (t.tolist() for t in indices)
    triplets = set(zip(a, p, n, strict=True))
    assert len(triplets) == len(a), "a triplet was listed twice"
    return triplets


PML_TYPE = {"all": "all", "hard": "hard", "semi-hard": "semihard", "easy": "easy"}


def pml_triplets(x, y, kind, margin, measure="euclidean"):
    # PML's LpDistance normalises embeddings by default; switch that off to compare raw Euclidean distances.
    distance = (pml_distances.LpDistance(normalize_embeddings=False) if measure == "euclidean"
                else pml_distances.CosineSimilarity())
    miner = pml_miners.TripletMarginMiner(margin=margin, type_of_triplets=PML_TYPE[kind], distance=distance)
    return as_set(miner(x, y))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("measure", ["euclidean", "cosine"])
def test_categories_match_brute_force(n, measure):
    x, y = batch(n, seed=n)
    margin = 0.4 if measure == "euclidean" else 0.1
    sets, total = brute_force_sets(x, y, margin, measure)
    counts = triplet_categories(x, y, margin, distance=measure)
    assert counts == TripletCounts(hard=len(sets["hard"]), semi_hard=len(sets["semi-hard"]),
                                   easy=len(sets["easy"]), total=total)
    assert counts.hard + counts.semi_hard + counts.easy == counts.total


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", TRIPLET_KINDS)
def test_mined_sets_match_brute_force_and_pml(n, kind):
    x, y = batch(n, seed=100 + n)
    margin = 0.5
    sets, _ = brute_force_sets(x, y, margin)
    mined = as_set(mine_triplets(x, y, kind, margin))
    assert mined == sets[kind]
    # PML's boundaries differ only on ties (e.g. its "hard" is d_an <= d_ap), which random floats never hit.
    assert mined == pml_triplets(x, y, kind, margin)


@pytest.mark.parametrize("kind", TRIPLET_KINDS)
def test_cosine_orientation_matches_pml_cosine_similarity(kind):
    # A similarity is oriented by its type (d = -cos); PML needs its is_inverted flag for the same sets.
    x, y = batch(30, classes=4, seed=7)
    mined = as_set(mine_triplets(x, y, kind, 0.2, distance=cosine))
    assert mined == brute_force_sets(x, y, 0.2, "cosine")[0][kind]
    assert mined == pml_triplets(x, y, kind, 0.2, "cosine")


@pytest.mark.parametrize("chunk_size", [1, 4, 1000])
def test_chunking_changes_nothing(chunk_size):
    x, y = batch(21, classes=4, seed=3)
    assert triplet_categories(x, y, 0.3, chunk_size=chunk_size) == triplet_categories(x, y, 0.3)
    for kind in TRIPLET_KINDS:
        reference = mine_triplets(x, y, kind, 0.3)
        chunked = mine_triplets(x, y, kind, 0.3, chunk_size=chunk_size)
        for ours, ref in zip(chunked, reference, strict=True):
            assert torch.equal(ours, ref)


def test_triplets_ordered_by_anchor_and_distances():
    x, y = batch(24, seed=11)
    a, p, n = mine_triplets(x, y, "all", 0.5)
    d = torch.cdist(x, x)
    key = torch.stack([a.double(), d[a, p], d[a, n]], 1).tolist()
    assert key == sorted(key)


def test_counts_at_a_larger_size_against_broadcast_enumeration():
    # A second, independent reference at N = 200: the (N, N, N) masks built directly (8M booleans).
    x, y = batch(200, dim=8, classes=6, seed=5, dtype=torch.float32)
    margin = 0.7
    d = euclidean.pairwise(x, x).double()
    same = y[:, None] == y[None, :]
    valid = (same & ~torch.eye(200, dtype=torch.bool))[:, :, None] & ~same[:, None, :]  # (a, p, n)
    d_ap, d_an = d[:, :, None], d[:, None, :]
    counts = triplet_categories(x, y, margin)
    assert counts.total == int(valid.sum())
    assert counts.hard == int((valid & (d_an < d_ap)).sum())
    assert counts.semi_hard == int((valid & (d_an >= d_ap) & (d_an < d_ap + margin)).sum())
    assert counts.easy == int((valid & (d_an >= d_ap + margin)).sum())


def test_total_at_n_1024_equals_closed_form():
    # total = sum over classes c of n_c (n_c - 1) (N - n_c); runs in O(chunk * N) memory.
    x, y = batch(1024, dim=16, classes=16, seed=9, dtype=torch.float32)
    sizes = torch.bincount(y).tolist()
    counts = triplet_categories(x, y, 0.2, chunk_size=128)
    assert counts.total == sum(c * (c - 1) * (1024 - c) for c in sizes)
    assert counts.hard + counts.semi_hard + counts.easy == counts.total
    assert min(counts.hard, counts.semi_hard, counts.easy) > 0


@pytest.mark.parametrize("kind", ["all", "semi-hard", "hard", "easy"])
def test_band_coefficients_give_the_triplet_sum(kind):
    x, y = batch(24, classes=3, seed=21)
    margin = 0.5
    d_loop = loop_dissimilarity(x, "euclidean")
    sets, _ = brute_force_sets(x, y, margin)
    expected = sum(d_loop[a][p] - d_loop[a][n] for a, p, n in sets[kind])
    d = euclidean.pairwise(x, x)
    coefficients, n_triplets = band_coefficients(d, y, triplet_band(kind, margin), chunk_size=5)
    assert n_triplets == len(sets[kind])
    assert abs(float((coefficients * d).sum()) - expected) < 1e-10
    # Per anchor, sum_p count(a, p) = sum_n w(a, n) = triplets of that anchor: rows of C sum to zero.
    assert torch.equal(coefficients.sum(1), torch.zeros(24, dtype=torch.float64))


def test_counts_helpers():
    counts = TripletCounts(hard=1, semi_hard=2, easy=5, total=8)
    assert counts.as_dict() == {"hard": 1, "semi_hard": 2, "easy": 5, "total": 8}
    assert counts.fractions() == {"hard": 0.125, "semi_hard": 0.25, "easy": 0.625}
    assert TripletCounts(0, 0, 0, 0).fractions() == {"hard": 0.0, "semi_hard": 0.0, "easy": 0.0}


@pytest.mark.parametrize("labels", [[0, 0, 0, 0, 0], [0, 1, 2, 3, 4], [3]], ids=["one-class", "all-distinct",
                                                                                 "batch-of-one"])
def test_no_valid_triplet(labels):
    y = torch.tensor(labels)
    x = torch.randn(len(labels), 4, dtype=torch.float64)
    assert triplet_categories(x, y, 0.2) == TripletCounts(0, 0, 0, 0)
    for kind in TRIPLET_KINDS:
        a, p, n = mine_triplets(x, y, kind, 0.2)
        assert a.dtype == p.dtype == n.dtype == torch.long
        assert a.numel() == p.numel() == n.numel() == 0


def test_empty_batch():
    x, y = torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    assert triplet_categories(x, y, 0.2).total == 0
    assert all(t.numel() == 0 for t in mine_triplets(x, y, "all", 0.2))


def test_zero_margin_has_no_semi_hard_triplet():
    x, y = batch(20, seed=2)
    counts = triplet_categories(x, y, 0.0)
    assert counts.semi_hard == 0 and counts.hard + counts.easy == counts.total


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_are_compared_in_float32(dtype):
    x, y = batch(40, classes=4, seed=4, dtype=torch.float32)
    x_half = x.to(dtype)
    assert triplet_categories(x_half, y, 0.3) == triplet_categories(x_half.float(), y, 0.3)
    assert as_set(mine_triplets(x_half, y, "semi-hard", 0.3)) == as_set(
        mine_triplets(x_half.float(), y, "semi-hard", 0.3))


def test_any_measure_works():
    x, y = batch(16, dim=4, seed=8)
    counts = triplet_categories(x, y, 0.5, distance=dot)
    assert counts.hard + counts.semi_hard + counts.easy == counts.total > 0
    learned = MahalanobisDistance(4)  # identity init: Euclidean
    assert triplet_categories(x, y, 0.5, distance=learned) == triplet_categories(x, y, 0.5)


def test_errors_name_the_problem():
    x, y = batch(6)
    with pytest.raises(ValueError, match="kind"):
        mine_triplets(x, y, "semihard", 0.2)
    with pytest.raises(ValueError, match="margin"):
        triplet_categories(x, y, -0.1)
    with pytest.raises(ValueError, match="labels"):
        triplet_categories(x, y[:5], 0.2)
    with pytest.raises(TypeError, match="labels"):
        mine_triplets(x, y.double(), "all", 0.2)
    with pytest.raises(ValueError, match="NaN"):
        triplet_categories(torch.full((6, 5), float("nan")), y, 0.2)
    with pytest.raises(ValueError, match="embeddings"):
        triplet_categories(x[0], y, 0.2)
    with pytest.raises(ValueError, match="chunk_size"):
        triplet_categories(x, y, 0.2, chunk_size=0)
    with pytest.raises(ValueError, match="unknown measure"):
        triplet_categories(x, y, 0.2, distance="manhattan")
    with pytest.raises(ValueError, match="dissimilarities"):
        band_coefficients(torch.zeros(5, 6), y, triplet_band("all", 0.2))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 18), classes=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_permuting_the_batch_permutes_the_triplets(n, classes, seed):
    x, y = batch(n, dim=3, classes=classes, seed=seed)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    assert triplet_categories(x[perm], y[perm], 0.3) == triplet_categories(x, y, 0.3)
    for kind in ("all", "semi-hard"):
        original = as_set(mine_triplets(x, y, kind, 0.3))
        permuted = as_set(mine_triplets(x[perm], y[perm], kind, 0.3))
        # Index i of the permuted batch is sample perm[i] of the original.
        assert {(int(perm[a]), int(perm[p]), int(perm[q])) for a, p, q in permuted} == original


# --- Tie rule: hand-made batches whose distances are exact in float64 -----------------------------------------
# Points on a line with integer or half-integer coordinates have exact Euclidean distances (the squared form and
# the square root are exact), so d(a,n) == d(a,p) and d(a,n) == d(a,p) + m really happen. Only class 0 has two
# members, so its two points are the only anchors; every other point is a negative of its own class.

# A = 0 and P = 1 (class 0, d_ap = 1), margin 1. Negatives: N1 = 1 (a duplicate of P), N2 = 2, N3 = -1, N4 = 0.5.
#   anchor A: N1 d=1 (= d_ap: semi-hard), N2 d=2 (= d_ap + m: easy), N3 d=1 (semi-hard), N4 d=0.5 (hard)
#   anchor P: N1 d=0 (hard), N2 d=1 (= d_ap: semi-hard), N3 d=2 (= d_ap + m: easy), N4 d=0.5 (hard)
TIES_X = torch.tensor([[0.0], [1.0], [1.0], [2.0], [-1.0], [0.5]], dtype=torch.float64)
TIES_Y = torch.tensor([0, 0, 1, 2, 3, 4])
TIES_SETS = {
    "hard": {(0, 1, 5), (1, 0, 2), (1, 0, 5)},
    "semi-hard": {(0, 1, 2), (0, 1, 4), (1, 0, 3)},
    "easy": {(0, 1, 3), (1, 0, 4)},
}
TIES_SETS["all"] = TIES_SETS["hard"] | TIES_SETS["semi-hard"]

# Duplicate anchor and positive (d_ap = 0), a third copy with another label (d_an = 0 = d_ap) and a negative at
# exactly d_ap + m = 1: each anchor has one semi-hard and one easy triplet, and nothing is hard.
DUPLICATES_X = torch.tensor([[0.0], [0.0], [0.0], [1.0]], dtype=torch.float64)
DUPLICATES_Y = torch.tensor([0, 0, 1, 2])


def rule_counts(x: torch.Tensor, y: torch.Tensor, margin: float) -> TripletCounts:
    """The docstring's rule in a float64 loop: hard d_an < d_ap; semi-hard d_ap <= d_an < d_ap + m; else easy."""
    points, labels = x.double().tolist(), y.tolist()
    n = len(labels)
    counts = {"hard": 0, "semi-hard": 0, "easy": 0}
    for a, p, q in itertools.product(range(n), repeat=3):
        if a == p or labels[a] != labels[p] or labels[q] == labels[a]:
            continue
        d_ap, d_an = math.dist(points[a], points[p]), math.dist(points[a], points[q])
        kind = "hard" if d_an < d_ap else "semi-hard" if d_an < d_ap + margin else "easy"
        counts[kind] += 1
    return TripletCounts(counts["hard"], counts["semi-hard"], counts["easy"], sum(counts.values()))


def test_tied_distances_follow_the_documented_rule():
    """Guards the tie rule: d_an == d_ap is semi-hard (not hard), d_an == d_ap + m is easy (not semi-hard)."""
    assert triplet_categories(TIES_X, TIES_Y, 1.0) == TripletCounts(hard=3, semi_hard=3, easy=2, total=8)
    assert rule_counts(TIES_X, TIES_Y, 1.0) == TripletCounts(hard=3, semi_hard=3, easy=2, total=8)
    for kind in TRIPLET_KINDS:
        assert as_set(mine_triplets(TIES_X, TIES_Y, kind, 1.0)) == TIES_SETS[kind], kind


def test_duplicate_points_are_semi_hard_not_hard():
    """A negative identical to the anchor and its duplicate positive (d_an = d_ap = 0) is semi-hard; one at
    exactly d_ap + m is easy."""
    assert triplet_categories(DUPLICATES_X, DUPLICATES_Y, 1.0) == TripletCounts(0, 2, 2, 4)
    assert as_set(mine_triplets(DUPLICATES_X, DUPLICATES_Y, "semi-hard", 1.0)) == {(0, 1, 2), (1, 0, 2)}
    assert as_set(mine_triplets(DUPLICATES_X, DUPLICATES_Y, "hard", 1.0)) == set()


def test_zero_margin_sends_ties_to_easy():
    """With m = 0 the semi-hard band is empty and a tie d_an == d_ap is easy (d_an >= d_ap + 0)."""
    assert triplet_categories(TIES_X, TIES_Y, 0.0) == TripletCounts(hard=3, semi_hard=0, easy=5, total=8)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("margin", [0.0, 1.0, 2.0])
def test_integer_grid_with_many_ties_matches_the_rule(seed, margin):
    """Random points on a small integer line (many duplicates and ties at d_ap and d_ap + m) against the loop."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-3, 4, (14, 1), generator=g).double()
    y = torch.randint(0, 3, (14,), generator=g)
    expected = rule_counts(x, y, margin)
    assert triplet_categories(x, y, margin, chunk_size=5) == expected
    assert len(mine_triplets(x, y, "semi-hard", margin)[0]) == expected.semi_hard
    assert len(mine_triplets(x, y, "hard", margin)[0]) == expected.hard


# ------------------------------------------------------------ limits, settings and messages, exactly
def test_fractions_of_a_single_triplet_and_an_empty_batch():
    assert TripletCounts(1, 0, 0, 1).fractions() == {"hard": 1.0, "semi_hard": 0.0, "easy": 0.0}
    x, y = torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)
    for kind in TRIPLET_KINDS:
        a, p, n = mine_triplets(x, y, kind, 0.2)
        assert a.dtype == p.dtype == n.dtype == torch.long and a.numel() == p.numel() == n.numel() == 0
    coefficients, count = band_coefficients(torch.zeros(0, 0, dtype=torch.float64), y, triplet_band("all", 0.2))
    assert coefficients.shape == (0, 0) and coefficients.dtype == torch.float64 and count == 0


@pytest.mark.parametrize("chunk_size", [None, 12, 13, 24])  # one block, two blocks, two uneven, one
def test_band_coefficients_in_one_or_two_blocks(chunk_size):
    x, y = batch(24, classes=3, seed=22)
    d = euclidean.pairwise(x, x)
    sets, _ = brute_force_sets(x, y, 0.5)
    d_loop = loop_dissimilarity(x, "euclidean")
    for kind in ("all", "semi-hard"):
        coefficients, n_triplets = band_coefficients(d, y, triplet_band(kind, 0.5), chunk_size=chunk_size)
        assert coefficients.shape == (24, 24) and n_triplets == len(sets[kind])
        expected = sum(d_loop[a][p] - d_loop[a][q] for a, p, q in sets[kind])
        assert abs(float((coefficients * d).sum()) - expected) < 1e-10


def test_every_function_uses_the_chunk_size_it_is_given(monkeypatch):
    import contrastkit.mining as mining

    chunks = []
    original = mining._sorted_chunks

    def spy(rows, labels, chunk):
        chunks.append(chunk)
        return original(rows, labels, chunk)

    monkeypatch.setattr(mining, "_sorted_chunks", spy)
    x, y = batch(10, dim=3, seed=1)
    triplet_categories(x, y, 0.2, chunk_size=3)
    mine_triplets(x, y, "all", 0.2, chunk_size=4)
    band_coefficients(euclidean.pairwise(x, x), y, triplet_band("all", 0.2), chunk_size=6)
    triplet_categories(x, y, 0.2)
    mine_triplets(x, y, "hard", 0.2)
    wide, labels = torch.randn(600, 2), torch.arange(600) % 3
    triplet_categories(wide, labels, 0.2)
    assert chunks == [3, 4, 6, 10, 10, 436]  # default: min(N, 2^18 // N) anchors (N = 10, 10, 600)


def test_sort_rows_on_every_path():
    from contrastkit.mining import sort_rows

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 9, generator=g, dtype=torch.float64)
    expected_order = torch.sort(x, dim=1).indices
    for variant in (x, x.float(), x.clone().requires_grad_(True), x.to(torch.bfloat16)):
        values, order = sort_rows(variant)  # NumPy for plain float CPU rows, torch.sort otherwise
        assert torch.equal(order, expected_order) and order.dtype == torch.long
        assert torch.equal(values.detach(), torch.sort(variant.detach(), dim=1).values)
    ints = torch.randperm(12, generator=g).reshape(3, 4)
    assert torch.equal(sort_rows(ints)[0], torch.sort(ints, dim=1).values)


def _message(call) -> str:
    with pytest.raises((ValueError, TypeError)) as error:
        call()
    return str(error.value)


def test_every_refusal_names_the_function_and_the_argument():
    x, y = batch(6)
    flat = torch.randn(6)
    cases = [
        (lambda: triplet_categories(flat, y, 0.2), "triplet_categories: `embeddings` must have 2 dimensions, got "
                                                   "shape (6,)"),
        (lambda: triplet_categories(x, y[:5], 0.2), "triplet_categories: `labels` must have shape (6,) to match "
                                                    "the embeddings, got (5,)"),
        (lambda: triplet_categories(x, y, -0.1), "triplet_categories: `margin` must be >= 0, got -0.1"),
        (lambda: triplet_categories(x, y, 0.2, chunk_size=0), "triplet_categories: `chunk_size` must be >= 1, got 0"),
        (lambda: mine_triplets(flat, y, "all", 0.2), "mine_triplets: `embeddings` must have 2 dimensions, got shape "
                                                     "(6,)"),
        (lambda: mine_triplets(x, y, "all", -1), "mine_triplets: `margin` must be >= 0, got -1"),
        (lambda: mine_triplets(x, y, "all", 0.2, chunk_size=0), "mine_triplets: `chunk_size` must be >= 1, got 0"),
        (lambda: mine_triplets(x, y, "semihard", 0.2), "triplet_band: `kind` must be one of ['all', 'hard', "
                                                       "'semi-hard', 'easy'], got 'semihard'"),
        (lambda: band_coefficients(torch.zeros(5, 6), y, triplet_band("all", 0.2)),
         "band_coefficients: `dissimilarities` must have shape (6, 6) to match the labels, got (5, 6)"),
        (lambda: band_coefficients(torch.zeros(6, 6), y, triplet_band("all", 0.2), chunk_size=0),
         "band_coefficients: `chunk_size` must be >= 1, got 0"),
    ]
    for call, message in cases:
        assert _message(call) == message
