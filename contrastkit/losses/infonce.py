r"""InfoNCE (van den Oord, Li & Vinyals 2018, "Representation Learning with Contrastive Predictive Coding").

Each query :math:`q_i` has one positive :math:`k_i^+` and a set of negatives :math:`\{k_j^-\}`; with
score :math:`s` and temperature :math:`\tau`

.. math::

    \ell_i = -\log \frac{\exp(s(q_i, k_i^+) / \tau)}
                        {\exp(s(q_i, k_i^+) / \tau) + \sum_j \exp(s(q_i, k_j^-) / \tau)},
    \qquad L = \frac{1}{N} \sum_i \ell_i ,

the cross-entropy of picking the positive among the :math:`K + 1` candidates (CPC eq. 4; MoCo eq. 1
with a queue of negatives). It bounds the mutual information from below,
:math:`I(q; k) \ge \log(K + 1) - L` (CPC section 2.3), returned with ``return_bound=True``.

Negatives come in three shapes:

* ``None`` -- in-batch: the other queries' positives are the negatives (an N-way classification per
  query, the end-to-end case of the survey). ``labels`` (N,) drops same-label candidates other than
  the positive (false negatives).
* (M, D) -- shared by every query (a MoCo queue, memory-bank rows); ``labels`` (N,) with
  ``negative_labels`` (M,) drop negatives that share the query's label (e.g. its own bank entry).
* (N, M, D) -- per query (CPC's negatives drawn for each prediction).

The score defaults to the cosine similarity; a dot product, a bilinear :math:`z^\top W c` (CPC) or an
MLP critic work too (any :class:`~contrastkit.similarity.Measure`; distances enter negated).
"""

from __future__ import annotations

import math
from typing import Literal, overload

import torch
from torch import Tensor

from contrastkit._checks import check_labels, check_tensor
from contrastkit.losses.logsumexp import row_logsumexp
from contrastkit.losses.temperature import SoftmaxLossModule, check_temperature, default_block_size
from contrastkit.precision import full_precision
from contrastkit.similarity import Measure, cosine, get_measure

__all__ = ["InfoNCELoss", "info_nce"]

_WHERE = "info_nce"


def _check_inputs(query: Tensor, positive: Tensor, negatives: Tensor | None) -> None:
    check_tensor(query, "query", _WHERE, ndim=2)
    check_tensor(positive, "positive", _WHERE, ndim=2)
    if query.shape[0] != positive.shape[0]:
        raise ValueError(f"{_WHERE}: `query` and `positive` need the same number of rows, "
                         f"got {tuple(query.shape)} and {tuple(positive.shape)}")
    if query.shape[0] == 0:
        raise ValueError(f"{_WHERE}: empty batch (query has 0 rows)")
    if negatives is None:
        return
    check_tensor(negatives, "negatives", _WHERE)
    if negatives.dim() == 3 and negatives.shape[0] != query.shape[0]:
        raise ValueError(f"{_WHERE}: per-query `negatives` must be (N, M, D) with N = {query.shape[0]}, "
                         f"got {tuple(negatives.shape)}")
    if negatives.dim() not in (2, 3):
        raise ValueError(f"{_WHERE}: `negatives` must be (M, D) shared or (N, M, D) per query, "
                         f"got shape {tuple(negatives.shape)}")
    if negatives.shape[-2] == 0:
        raise ValueError(f"{_WHERE}: `negatives` is empty (M = 0); pass negatives=None for in-batch negatives")


def _per_query_negative_logits(score: Measure, query: Tensor, negatives: Tensor, temperature) -> Tensor:
    n, m, d = negatives.shape
    flat = negatives.reshape(n * m, d)
    factors = score.score_factors(query, flat)
    if factors is None:  # generic measure: paired scores of each query against its own M negatives
        return score.paired_scores(query.repeat_interleave(m, dim=0), flat).view(n, m) / temperature
    a, c, offset = factors
    logits = torch.einsum("nd,nmd->nm", a, c.view(n, m, -1))  # (N, M)
    if offset is not None:
        logits = logits + offset[:, None]
    return logits / temperature


@overload
def info_nce(query: Tensor, positive: Tensor, negatives: Tensor | None = ..., temperature: float | Tensor = ...,
             *, score: Measure | str = ..., labels: Tensor | None = ..., negative_labels: Tensor | None = ...,
             memory_efficient: bool = ..., block_size: int | None = ...,
             return_bound: Literal[False] = ..., positive_offset: int | None = ...) -> Tensor: ...


@overload
def info_nce(query: Tensor, positive: Tensor, negatives: Tensor | None = ..., temperature: float | Tensor = ...,
             *, score: Measure | str = ..., labels: Tensor | None = ..., negative_labels: Tensor | None = ...,
             memory_efficient: bool = ..., block_size: int | None = ...,
             return_bound: Literal[True], positive_offset: int | None = ...) -> tuple[Tensor, Tensor]: ...


@full_precision
def info_nce(
    query: Tensor,
    positive: Tensor,
    negatives: Tensor | None = None,
    temperature: float | Tensor = 0.1,
    *,
    score: Measure | str = cosine,
    labels: Tensor | None = None,
    negative_labels: Tensor | None = None,
    memory_efficient: bool = False,
    block_size: int | None = None,
    return_bound: bool = False,
    positive_offset: int | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """InfoNCE of ``query`` (N, D) against ``positive`` (N, D) and ``negatives``; see the module docstring.

    Args:
        negatives: ``None`` (in-batch), (M, D) shared, or (N, M, D) per query.
        temperature: :math:`\\tau` > 0, a float or a 0-dim tensor (learnable: :class:`InfoNCELoss`).
        score: the measure giving :math:`s` (cosine by default).
        labels: (N,) labels of the queries, to drop false negatives (see the module docstring).
        negative_labels: (M,) labels of shared negatives (with ``labels``).
        memory_efficient: for in-batch or shared negatives, never hold the (N, K) logits: blockwise
            log-sum-exp recomputed in the backward; needs an inner-product score. Per-query negatives
            already hold N x M x D inputs, so their N x M logits are computed directly.
        block_size: rows per block in the memory-efficient mode.
        return_bound: also return the mutual-information lower bound :math:`\\log(K+1) - L` (a tensor;
            detach it for logging).
        positive_offset: in-batch only: ``positive`` (S, D) holds the keys of a whole (gathered) batch and the
            queries are its rows ``positive_offset .. positive_offset + N``: query ``i``'s positive is
            ``positive[positive_offset + i]``, every other key a negative (``negative_labels`` (S,) then give
            the keys' labels for masking). The mean over all row blocks equals the one-process loss.

    Returns:
        the scalar loss, or ``(loss, mi_lower_bound)``; float32 (float64 for float64 inputs), also under bf16
        autocast.
    """
    key_offset = 0  # the column of query 0's positive among the in-batch keys
    if positive_offset is not None:
        if negatives is not None:
            raise ValueError(f"{_WHERE}: `positive_offset` is for in-batch negatives (negatives=None)")
        key_offset = int(positive_offset)
        if not 0 <= key_offset <= positive.shape[0] - query.shape[0]:
            raise ValueError(f"{_WHERE}: `positive_offset` {key_offset} does not place {query.shape[0]} queries "
                             f"inside {positive.shape[0]} keys")
        _check_inputs(query, positive[key_offset:key_offset + query.shape[0]], None)
    else:
        _check_inputs(query, positive, negatives)
    temperature = check_temperature(temperature, _WHERE)
    score = get_measure(score)
    n = query.shape[0]
    if labels is not None:
        check_labels(labels, n, _WHERE)
    gathered = positive_offset is not None
    if negative_labels is not None and not gathered and (labels is None or negatives is None or negatives.dim() != 2):
        raise ValueError(f"{_WHERE}: `negative_labels` needs `labels` and shared (M, D) `negatives`")
    if gathered and (labels is None) != (negative_labels is None):
        raise ValueError(f"{_WHERE}: with `positive_offset`, masking needs `labels` (N,) and the keys' "
                         f"`negative_labels` (S,)")
    if labels is not None and negatives is not None and negatives.dim() == 2 and negative_labels is None:
        raise ValueError(f"{_WHERE}: with shared negatives, masking by `labels` also needs `negative_labels` (M,)")
    if negatives is not None and negatives.dim() == 3 and labels is not None:
        raise ValueError(f"{_WHERE}: `labels` masking is not defined for per-query (N, M, D) negatives")

    if negatives is not None and negatives.dim() == 3:
        positive_logit = score.paired_scores(query, positive) / temperature  # (N,)
        negative_logits = _per_query_negative_logits(score, query, negatives, temperature)  # (N, M)
        lse = torch.logsumexp(torch.cat([positive_logit[:, None], negative_logits], dim=1), dim=1)
        num_candidates = negatives.shape[1] + 1
    else:
        candidates = positive if negatives is None else negatives  # (S, D)
        num_candidates = candidates.shape[0] if negatives is None else negatives.shape[0] + 1
        diagonal = "positive" if negatives is None else "plain"
        col_labels = negative_labels if (negatives is not None or gathered) else labels
        factors = score.score_factors(query, candidates)
        if factors is None:
            if memory_efficient:
                raise ValueError(f"{_WHERE}: memory_efficient=True needs an inner-product score (cosine, dot, "
                                 f"squared Euclidean, bilinear); {type(score).__name__} is not one")
            logits = score.scores(query, candidates) / temperature  # (N, S)
            rows = torch.arange(n, device=logits.device)
            if labels is not None:
                same = labels[:, None] == col_labels[None, :]
                if negatives is None:
                    same[rows, rows + key_offset] = False
                logits = logits.masked_fill(same, float("-inf"))
            lse = torch.logsumexp(logits, dim=1)
            positive_logit = (logits[rows, rows + key_offset] if negatives is None
                              else score.paired_scores(query, positive) / temperature)
        else:
            a, c, offset = factors
            a = a / temperature
            block = (block_size or default_block_size(c.shape[0])) if memory_efficient else None
            lse = row_logsumexp(a, c, diagonal=diagonal, row_labels=labels, col_labels=col_labels,
                                block_size=block, column_offset=key_offset)  # (N,)
            if negatives is None:
                positive_logit = (a * c[key_offset:key_offset + n]).sum(1)  # a_i . c_(key_offset + i)
            else:
                _, cp, _ = score.score_factors(query, positive)
                positive_logit = (a * cp).sum(1)
            if offset is not None:
                lse = lse + offset / temperature
                positive_logit = positive_logit + offset / temperature
        if negatives is not None:  # the positive is not among the shared candidates: add it
            lse = torch.logaddexp(lse, positive_logit)
    loss = (lse - positive_logit).mean()
    if return_bound:
        return loss, math.log(num_candidates) - loss
    return loss


class InfoNCELoss(SoftmaxLossModule):
    """:func:`info_nce` as a module; ``learnable_temperature=True`` learns :math:`\\tau` (starting at ``temperature``).

    Call as ``loss(query, positive)``, ``loss(query, positive, negatives)``; keyword arguments
    ``labels`` / ``negative_labels`` are passed through.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        *,
        score: Measure | str = cosine,
        learnable_temperature: bool = False,
        memory_efficient: bool = False,
        block_size: int | None = None,
    ) -> None:
        super().__init__(temperature, score, learnable_temperature, memory_efficient, block_size)

    def forward(self, query: Tensor, positive: Tensor, negatives: Tensor | None = None, *,
                labels: Tensor | None = None, negative_labels: Tensor | None = None) -> Tensor:
        return info_nce(query, positive, negatives, self.temperature(), score=self.score, labels=labels,
                        negative_labels=negative_labels, memory_efficient=self.memory_efficient,
                        block_size=self.block_size)
