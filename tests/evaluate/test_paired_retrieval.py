"""Cross-modal retrieval (contrastkit.evaluate.retrieval.cross_modal_recall, distinct_items) against a slow loop
written from the definition, and hand-built cases whose answers are known: distinct items by content, any true
partner in the top K, ties to the candidate that occurs first, the chance of a random ranking."""

import math
import random

import pytest
import torch

from contrastkit.data.text import encode_texts
from contrastkit.evaluate.retrieval import chance_at_k, cross_modal_recall, distinct_items, recall_at_k


def _loop_recall(a_rows: list, b_rows: list, embedding: dict, ks=(1, 5, 10)) -> dict:
    """Recall@K both ways from the pairs themselves: pair i joins content a_rows[i] and b_rows[i]; each distinct
    content (first-occurrence order) is a query once; candidates sorted by (-cosine, first occurrence)."""

    def cosine(u, v):
        dot = sum(x * y for x, y in zip(u, v, strict=True))
        return dot / (math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v)))

    def one_way(queries_rows, candidate_rows):
        queries = list(dict.fromkeys(queries_rows))
        candidates = list(dict.fromkeys(candidate_rows))
        hits = dict.fromkeys(ks, 0)
        chance = dict.fromkeys(ks, 0.0)
        m = len(candidates)
        for q in queries:
            partners = {c for qq, c in zip(queries_rows, candidate_rows, strict=True) if qq == q}
            ranked = sorted(range(m), key=lambda j: (-cosine(embedding[q], embedding[candidates[j]]), j))
            for k in ks:
                hits[k] += any(candidates[j] in partners for j in ranked[:k])
                # a random ranking misses when each of its first K draws is one of the M - P others
                chance[k] += 1 - math.prod((m - len(partners) - i) / (m - i) for i in range(min(k, m)))
        return ({f"r{k}": hits[k] / len(queries) for k in ks}, len(queries), m,
                {f"r{k}": chance[k] / len(queries) for k in ks})

    return {"a_to_b": one_way(a_rows, b_rows), "b_to_a": one_way(b_rows, a_rows)}


def _embed_distinct(rows: list, embedding: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, D) embeddings of the distinct contents of ``rows`` and (N,) the item of each row, via distinct_items."""
    codes = {c: i for i, c in enumerate(sorted(set(rows)))}
    stored = torch.tensor([[codes[c]] for c in rows])  # (N, 1): the content as a stored row
    first, item = distinct_items(stored)
    return torch.tensor([embedding[rows[i]] for i in first.tolist()], dtype=torch.float64), item


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cross_modal_recall_matches_a_loop(seed):
    rnd = random.Random(seed)
    # 40 pairs of 25 audio contents and 12 texts: repeated texts (one sentence, several voices), repeated audio
    a_rows = [f"a{rnd.randrange(25)}" for _ in range(40)]
    b_rows = [f"b{rnd.randrange(12)}" for _ in range(40)]
    embedding = {c: [rnd.gauss(0, 1) for _ in range(3)] for c in set(a_rows) | set(b_rows)}
    a, a_of_pair = _embed_distinct(a_rows, embedding)
    b, b_of_pair = _embed_distinct(b_rows, embedding)
    got = cross_modal_recall(a, b, a_of_pair, b_of_pair)
    want = _loop_recall(a_rows, b_rows, embedding)
    for direction in ("a_to_b", "b_to_a"):
        recall, queries, candidates, chance = want[direction]
        assert {k: got[direction][k] for k in ("r1", "r5", "r10")} == pytest.approx(recall, abs=1e-12)
        assert (got[direction]["queries"], got[direction]["candidates"]) == (queries, candidates)
        assert got[direction]["chance"] == pytest.approx(chance, abs=1e-12)
    assert got["pairs"] == 40


@pytest.mark.parametrize("block_size", [1, 3, 1024])
def test_recall_at_k_is_the_same_in_any_block_size(block_size):
    g = torch.Generator().manual_seed(0)
    q, c = torch.randn(11, 4, generator=g), torch.randn(7, 4, generator=g)
    links = torch.tensor([[i, i % 7] for i in range(11)] + [[0, 3], [5, 6]]).T
    assert recall_at_k(q, c, links[0], links[1], (1, 2, 3), block_size=block_size) == \
        recall_at_k(q, c, links[0], links[1], (1, 2, 3), block_size=10_000)


def test_distinct_items_by_stored_content():
    first, item = distinct_items(torch.tensor([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0], [3.0, 4.0]]))
    assert first.tolist() == [0, 1, 3] and item.tolist() == [0, 1, 0, 2, 1]
    # texts padded alike: equal sentences are one item, a sentence that only starts alike is another
    first, item = distinct_items(encode_texts(["a cat", "a cat sat", "a cat", "dog"]))
    assert first.tolist() == [0, 1, 3] and item.tolist() == [0, 1, 0, 2]
    # float16 audio (the speech sets' in-memory form); bitwise equality
    audio = torch.tensor([[[0.5, 0.25]], [[0.5, 0.25]], [[0.5, 0.0]]], dtype=torch.float16)
    assert distinct_items(audio)[1].tolist() == [0, 0, 1]


def test_perfect_towers_and_the_chance_of_each_direction():
    eye = torch.eye(3, dtype=torch.float64)
    result = cross_modal_recall(eye, eye, torch.arange(3), torch.arange(3))
    for direction in ("a_to_b", "b_to_a"):
        assert {k: result[direction][k] for k in ("r1", "r5", "r10")} == {"r1": 1.0, "r5": 1.0, "r10": 1.0}
        assert result[direction]["chance"] == {"r1": 1 / 3, "r5": 1.0, "r10": 1.0}  # min(K, 3) / 3


def test_ties_go_to_the_candidate_that_occurs_first():
    # a collapsed text tower: every text embeds at one point, so every audio query ties all 12 candidates
    a = torch.eye(12, dtype=torch.float64)
    b = torch.ones(12, 12, dtype=torch.float64)
    pairs = torch.arange(12)
    result = cross_modal_recall(a, b, pairs, pairs)
    # query i's partner is candidate i; candidates 0..i-1 tie it and occur first, so its rank is i
    assert (result["a_to_b"]["r1"], result["a_to_b"]["r5"], result["a_to_b"]["r10"]) == (1 / 12, 5 / 12, 10 / 12)
    # each text query sees every audio at the same similarity 1/sqrt(12): the same ranks
    assert (result["b_to_a"]["r1"], result["b_to_a"]["r5"], result["b_to_a"]["r10"]) == (1 / 12, 5 / 12, 10 / 12)


def test_a_query_hits_through_any_of_its_partners():
    # pairs: (audio 0, "seven"), (audio 1, "seven"), (audio 2, "two"), (audio 3, "nine") -- texts: 3 distinct
    a = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.6, 0.8, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.0, 1.0, 0.1], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)  # seven, two, nine
    a_of_pair, b_of_pair = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 0, 1, 2])
    result = cross_modal_recall(a, b, a_of_pair, b_of_pair)
    # "seven" is nearest to audio 1 (its second partner): a hit at 1; "two" -> audio 2: hit; "nine" -> audio 0
    # (cos 1) before audio 3 (cos 0.6): a miss at 1, a hit at 2
    assert result["b_to_a"]["r1"] == pytest.approx(2 / 3)
    assert (result["b_to_a"]["queries"], result["b_to_a"]["candidates"]) == (3, 4)
    # audio 0 -> "nine" (miss: its text is "seven"); audio 1 -> "seven" (hit); audio 2 -> "two" (hit);
    # audio 3 (0.6, 0.8, 0) -> "seven" (0.8) before "nine" (0.6): a miss at 1
    assert result["a_to_b"]["r1"] == pytest.approx(2 / 4)
    assert (result["a_to_b"]["queries"], result["a_to_b"]["candidates"]) == (4, 3)
    assert result["a_to_b"]["chance"]["r1"] == pytest.approx(1 / 3)  # one partner among 3 texts
    # "seven" has 2 of the 4 audio clips as partners (a random pick hits 2/4 times), "two" and "nine" 1 each (1/4)
    assert result["b_to_a"]["chance"]["r1"] == pytest.approx((2 / 4 + 1 / 4 + 1 / 4) / 3)
    assert result["b_to_a"]["chance"]["r5"] == 1.0  # K = 5 covers all 4 candidates
    # at K = 2, "seven" misses only when both picks are the other 2 clips (1 of the 6 pairs of picks)
    assert chance_at_k([2, 1, 1], 4, 2) == pytest.approx((5 / 6 + 2 / 4 + 2 / 4) / 3)


def test_bad_inputs_are_one_line_errors():
    e = torch.eye(3)
    with pytest.raises(ValueError, match="share the embedding size"):
        cross_modal_recall(e, torch.eye(3, 4), torch.arange(3), torch.arange(3))
    with pytest.raises(ValueError, match=r"item indices in \[0, 3\)"):
        cross_modal_recall(e, e, torch.tensor([0, 1, 3]), torch.arange(3))
    with pytest.raises(ValueError, match=r"\(N,\) each"):
        cross_modal_recall(e, e, torch.arange(3), torch.arange(2))
    with pytest.raises(ValueError, match="at least one true partner"):
        recall_at_k(e, e, torch.tensor([0, 1]), torch.tensor([0, 1]))  # query 2 has none
