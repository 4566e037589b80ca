r"""Retrieval on held-out data: Recall@1 of an embedding.

.. math::  \mathrm{R@1} = \frac{1}{N} \sum_i \mathbb{1}\big[\, y_{j^*(i)} = y_i \,\big], \qquad
           j^*(i) = \arg\min_{j \ne i} \lVert f_i - f_j \rVert_2 ,

over the N held-out samples: is each sample's nearest *other* held-out sample of its class? (The retrieval
metric of deep metric learning, e.g. Oh Song et al. 2016; for a triplet embedding it reads the learned metric
directly, where kNN against the training split also rewards a larger reference set.) Ties go to the lowest
index. The distance is Euclidean; a method whose metric is another one returns features in which the Euclidean
distance ranks pairs the same way (:meth:`contrastkit.methods.triplet.TripletEmbedding.features`).

**Cross-modal retrieval** of paired data (CLIP's evaluation: an audio clip and its transcript, an image and its
caption) is :func:`cross_modal_recall`: Recall@K in both directions among the *distinct* held-out items. The items
of each field are told apart by their stored content (:func:`distinct_items`: identical rows are one item, e.g. one
sentence spoken by several voices is one text), each distinct item of one field is a query once, the candidates are
the distinct items of the other field, and a query is a hit at K when any of its true partners (the items it was
paired with) is among the K candidates of highest cosine similarity:

.. math::  \mathrm{R@K} = \frac{1}{Q} \sum_q \mathbb{1}\big[\, \min_{p \in P(q)} \mathrm{rank}_q(p) < K \,\big],
           \qquad \mathrm{rank}_q(p) = \#\{c : s_{qc} > s_{qp}\} + \#\{c < p : s_{qc} = s_{qp}\} .

Ties are broken deterministically: of candidates with equal similarity, the one that occurs first in the held-out
split ranks higher. Chance is the expected Recall@K of a ranking drawn at random, :math:`1 - \binom{M - P_q}{K} /
\binom{M}{K}` for a query with :math:`P_q` partners among M candidates, averaged over the queries: min(K, M) / M
when every query has a single partner.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["RECALL_KS", "chance_at_k", "cross_modal_recall", "distinct_items", "recall_at_1", "recall_at_k"]

#: the K of Recall@K reported for cross-modal retrieval (CLIP reports R@1, R@5, R@10)
RECALL_KS = (1, 5, 10)


@torch.no_grad()
def recall_at_1(features: Tensor, labels: Tensor, block_size: int = 1024) -> float:
    """Recall@1 (module docstring) of features (N, F) with labels (N,); rows are scored ``block_size`` at a time
    (memory O(block_size N)). Needs N >= 2."""
    if not isinstance(features, Tensor) or features.ndim != 2:
        raise ValueError(f"recall_at_1: `features` must be an (N, F) tensor, got "
                         f"{getattr(features, 'shape', type(features).__name__)}")
    labels = torch.as_tensor(labels)
    if labels.shape != (features.shape[0],):
        raise ValueError(f"recall_at_1: `labels` must have shape ({features.shape[0]},), got {tuple(labels.shape)}")
    n = features.shape[0]
    if n < 2:
        raise ValueError(f"recall_at_1: needs at least 2 samples, got {n}")
    x = features.double().cpu()  # (N, F)
    labels = labels.cpu()
    hits = 0
    for start in range(0, n, block_size):
        d = torch.cdist(x[start:start + block_size], x)  # (B, N)
        rows = torch.arange(d.shape[0])
        d[rows, rows + start] = torch.inf  # never the sample itself
        nearest = d.argmin(1)  # (B,) the first of tied minima
        hits += int((labels[nearest] == labels[start:start + block_size]).sum())
    return hits / n


def distinct_items(x: Tensor) -> tuple[Tensor, Tensor]:
    """The distinct items among the rows of ``x`` (N, ...), told apart by their stored bytes (two rows are one item
    when every element is bitwise equal: padded texts of equal content, identical audio).

    Returns ``first`` (M,) int64, the position of each distinct item's first row, in order of first occurrence,
    and ``item`` (N,) int64, the distinct item of each row (``first[item[i]]`` is the first row equal to row i)."""
    if not isinstance(x, Tensor) or x.ndim < 1:
        raise ValueError(f"distinct_items: `x` must be a tensor of rows (N, ...), got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    n = x.shape[0]
    rows = x.detach().cpu().reshape(n, -1).contiguous()
    raw = rows.view(torch.uint8).numpy() if rows.shape[1] else rows.numpy()  # (N, bytes per row): any dtype
    seen: dict[bytes, int] = {}
    item = torch.empty(n, dtype=torch.int64)
    first: list[int] = []
    for i in range(n):
        index = seen.setdefault(raw[i].tobytes(), len(seen))
        if index == len(first):
            first.append(i)
        item[i] = index
    return torch.tensor(first, dtype=torch.int64), item


@torch.no_grad()
def recall_at_k(queries: Tensor, candidates: Tensor, query_of_link: Tensor, candidate_of_link: Tensor,
                ks: Sequence[int] = RECALL_KS, block_size: int = 1024) -> dict[int, float]:
    """Recall@K (module docstring) of ``queries`` (Q, D) against ``candidates`` (M, D) by cosine similarity, for
    each K of ``ks``: the share of queries with a true partner among their K best candidates. The links (L,) say
    which candidate is a true partner of which query (``candidate_of_link[l]`` of ``query_of_link[l]``); every query
    needs one. Ties go to the lower candidate index. Computed in float64, ``block_size`` queries at a time (memory
    O(block_size M))."""
    q = F.normalize(queries.detach().cpu().double(), dim=1)  # (Q, D)
    c = F.normalize(candidates.detach().cpu().double(), dim=1)  # (M, D)
    q_of, c_of = query_of_link.cpu().long(), candidate_of_link.cpu().long()  # (L,), (L,)
    n_q, n_c = q.shape[0], c.shape[0]
    if q_of.numel() == 0 or bool((torch.bincount(q_of, minlength=n_q) == 0).any()):
        raise ValueError("recall_at_k: every query needs at least one true partner among the candidates")
    best = torch.full((n_q,), n_c, dtype=torch.int64)  # (Q,) the best rank of a true partner of each query
    columns = torch.arange(n_c)  # (M,)
    for start in range(0, n_q, block_size):
        scores = q[start:start + block_size] @ c.T  # (B, M)
        inside = (q_of >= start) & (q_of < start + scores.shape[0])
        rows, partner = q_of[inside] - start, c_of[inside]  # (L_B,), (L_B,)
        s = scores[rows]  # (L_B, M) the scores of each link's query
        own = s[torch.arange(len(rows)), partner][:, None]  # (L_B, 1) the partner's score
        rank = (s > own).sum(1) + ((s == own) & (columns[None] < partner[:, None])).sum(1)  # (L_B,)
        best.scatter_reduce_(0, rows + start, rank, reduce="amin")
    return {int(k): float((best < k).double().mean()) for k in ks}


def chance_at_k(partners: Sequence[int], candidates: int, k: int) -> float:
    """The expected Recall@K of a random ranking of ``candidates`` (module docstring), for queries with
    ``partners[q]`` true partners each: the mean of 1 - C(M - P, K) / C(M, K)."""
    total = math.comb(candidates, min(k, candidates))
    return sum((total - math.comb(candidates - p, min(k, candidates))) / total for p in partners) / len(partners)


def cross_modal_recall(a: Tensor, b: Tensor, a_of_pair: Tensor, b_of_pair: Tensor,
                       ks: Sequence[int] = RECALL_KS) -> dict[str, Any]:
    """Recall@K of paired data in both directions (module docstring): ``a`` (M_a, D) and ``b`` (M_b, D) are the
    embeddings of the distinct items of the two fields, and pair i of the held-out split joins item
    ``a_of_pair[i]`` of ``a`` with item ``b_of_pair[i]`` of ``b`` (N,) each (:func:`distinct_items` gives them).

    Returns ``{"a_to_b": {"r1", "r5", "r10", "queries", "candidates", "chance": {"r1", ...}}, "b_to_a": {...},
    "pairs": N}``; ``a_to_b`` queries with the items of ``a`` among the candidates of ``b``; ``chance`` is a random
    ranking's expected Recall@K (:func:`chance_at_k`)."""
    for name, emb in (("a", a), ("b", b)):
        if not isinstance(emb, Tensor) or emb.ndim != 2 or emb.shape[0] == 0:
            raise ValueError(f"cross_modal_recall: `{name}` must be a non-empty (M, D) tensor of embeddings, got "
                             f"{getattr(emb, 'shape', type(emb).__name__)}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"cross_modal_recall: `a` and `b` must share the embedding size, got {a.shape[1]} and "
                         f"{b.shape[1]}")
    a_of_pair, b_of_pair = torch.as_tensor(a_of_pair).long(), torch.as_tensor(b_of_pair).long()
    if a_of_pair.ndim != 1 or a_of_pair.shape != b_of_pair.shape:
        raise ValueError(f"cross_modal_recall: `a_of_pair` and `b_of_pair` must be (N,) each, got "
                         f"{tuple(a_of_pair.shape)} and {tuple(b_of_pair.shape)}")
    for name, of, m in (("a_of_pair", a_of_pair, a.shape[0]), ("b_of_pair", b_of_pair, b.shape[0])):
        if of.numel() and (int(of.min()) < 0 or int(of.max()) >= m):
            raise ValueError(f"cross_modal_recall: `{name}` must hold item indices in [0, {m}), got "
                             f"[{int(of.min())}, {int(of.max())}]")
    links = torch.unique(torch.stack([a_of_pair, b_of_pair]), dim=1)  # (2, L) each distinct (a item, b item) link

    def direction(queries: Tensor, candidates: Tensor, q_of: Tensor, c_of: Tensor) -> dict[str, Any]:
        recall = recall_at_k(queries, candidates, q_of, c_of, ks)
        m = candidates.shape[0]
        partners = torch.bincount(q_of, minlength=queries.shape[0]).tolist()  # P_q of each query
        return {**{f"r{k}": value for k, value in recall.items()}, "queries": int(queries.shape[0]),
                "candidates": int(m), "chance": {f"r{k}": chance_at_k(partners, m, k) for k in ks}}

    return {"a_to_b": direction(a, b, links[0], links[1]), "b_to_a": direction(b, a, links[1], links[0]),
            "pairs": int(a_of_pair.shape[0])}
