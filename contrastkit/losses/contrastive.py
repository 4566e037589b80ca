r"""Hadsell, Chopra & LeCun's contrastive loss on pairs (CVPR 2006, "Dimensionality Reduction by Learning an
Invariant Mapping", DrLIM; survey section E.2).

.. math::  L = \frac{1}{P} \sum_{\text{pairs}} \Big( s \cdot \tfrac12 D^2
           + (1 - s) \cdot \tfrac12 \max(0, m - D)^2 \Big)

with ``D`` the distance between the two embeddings of a pair and ``s = 1`` for a similar pair. The paper
writes the label the other way round: its :math:`Y = 0` marks a similar pair and :math:`Y = 1` a dissimilar
one, :math:`L = (1 - Y)\,\tfrac12 D_W^2 + Y\,\tfrac12 \{\max(0, m - D_W)\}^2`; here ``similar = (Y == 0)``.
Similar pairs are pulled together, dissimilar pairs pushed apart until they are ``m`` apart.

The loss is defined on a non-negative distance. A :class:`~contrastkit.similarity.Similarity` is used
through ``measure.as_distance()`` (cosine becomes ``1 - cos``); unbounded similarities (dot, bilinear) have
no such distance and raise ``ValueError``.

Two forms:

* :func:`contrastive_loss` / :class:`PairedContrastiveLoss` -- explicit pairs ``(x1[i], x2[i])`` and a bool
  ``similar[i]``;
* :func:`contrastive_loss_from_labels` / :class:`ContrastiveLoss` -- all ``N (N - 1) / 2`` pairs ``i < j``
  of a labelled batch, similar when the labels agree, from the (N, N) distance matrix.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contrastkit._checks import check_labels, check_positive, check_tensor, zero_loss
from contrastkit.precision import full_precision
from contrastkit.similarity import Distance, Measure, euclidean, get_measure

__all__ = ["ContrastiveLoss", "PairedContrastiveLoss", "contrastive_loss", "contrastive_loss_from_labels"]


def _as_distance(distance: Measure | str) -> Distance:
    """The non-negative distance the loss is defined on (a bounded similarity through ``as_distance``)."""
    return get_measure(distance).as_distance()


def _pair_terms(d: Tensor, similar: Tensor, margin: float) -> Tensor:
    """Per-pair loss: similar -> D^2 / 2, dissimilar -> max(0, m - D)^2 / 2 (same shape as ``d``)."""
    pull = 0.5 * d.pow(2)
    push = 0.5 * torch.relu(margin - d).pow(2)
    return torch.where(similar, pull, push)


@full_precision
def contrastive_loss(
    x1: Tensor,
    x2: Tensor,
    similar: Tensor,
    margin: float = 1.0,
    distance: Measure | str = euclidean,
) -> Tensor:
    """Hadsell et al.'s loss averaged over explicit pairs ``(x1[i], x2[i])``.

    Args:
        x1, x2: (N, D) the two sides of each pair.
        similar: (N,) bool, True for a similar pair; the paper's label is ``Y = ~similar``
            (Y = 0 similar, Y = 1 dissimilar). A bool tensor is required so a 0/1 ``Y`` cannot be passed
            by mistake with the opposite meaning.
        margin: ``m > 0``, the distance beyond which dissimilar pairs cost nothing.
        distance: a distance, or a bounded similarity used through ``as_distance()`` (cosine -> 1 - cos).

    Returns:
        Scalar (float32, or float64 for float64 inputs; also under bf16 autocast); zero connected to the inputs
        when N = 0.
    """
    where = "contrastive_loss"
    check_tensor(x1, "x1", where, ndim=2)
    check_tensor(x2, "x2", where, ndim=2)
    if x1.shape != x2.shape:
        raise ValueError(f"{where}: `x1` and `x2` must have the same shape, got {tuple(x1.shape)} "
                         f"and {tuple(x2.shape)}")
    _check_similar(similar, x1.shape[0], where)
    margin = check_positive(margin, "margin", where)
    measure = _as_distance(distance)
    if x1.shape[0] == 0:
        return zero_loss(x1, x2)
    d = measure.paired(x1, x2)  # (N,)
    return _pair_terms(d, similar.to(d.device), margin).mean()


@full_precision
def contrastive_loss_from_labels(
    embeddings: Tensor,
    labels: Tensor,
    margin: float = 1.0,
    distance: Measure | str = euclidean,
) -> Tensor:
    """Hadsell et al.'s loss averaged over all ``N (N - 1) / 2`` pairs ``i < j`` of a labelled batch.

    A pair is similar when ``labels[i] == labels[j]``. Computed from the (N, N) distance matrix with a
    mask (no Python loop). A batch of one has no pair and gives a zero that still backpropagates.

    Args:
        embeddings: (N, D).
        labels: (N,) integer class ids.
        margin, distance: as in :func:`contrastive_loss`.
    """
    where = "contrastive_loss_from_labels"
    check_tensor(embeddings, "embeddings", where, ndim=2)
    labels = check_labels(labels, embeddings.shape[0], where)
    margin = check_positive(margin, "margin", where)
    return _labelled_loss(embeddings, labels, margin, _as_distance(distance))


def _labelled_loss(embeddings: Tensor, labels: Tensor, margin: float, measure: Distance) -> Tensor:
    n = embeddings.shape[0]
    if n < 2:
        return zero_loss(embeddings)
    d = measure.pairwise(embeddings, embeddings)  # (N, N)
    similar = labels[:, None] == labels[None, :]  # (N, N)
    upper = torch.ones(n, n, dtype=torch.bool, device=d.device).triu(1)  # pairs i < j
    terms = _pair_terms(d, similar.to(d.device), margin)  # (N, N)
    return terms[upper].sum() / (n * (n - 1) // 2)


def _check_similar(similar: object, n: int, where: str) -> None:
    if not isinstance(similar, Tensor):
        raise TypeError(f"{where}: `similar` must be a torch.Tensor, got {type(similar).__name__}")
    if similar.dtype != torch.bool:
        raise TypeError(f"{where}: `similar` must be a bool tensor (True = similar pair; the paper's Y is "
                        f"~similar), got dtype {similar.dtype}")
    if similar.shape != (n,):
        raise ValueError(f"{where}: `similar` must have shape ({n},) to match the pairs, "
                         f"got {tuple(similar.shape)}")


class ContrastiveLoss(nn.Module):
    """Hadsell et al.'s contrastive loss over all pairs of a labelled batch: ``loss(embeddings, labels)``.

    ``embeddings`` (N, D), ``labels`` (N,); every pair ``i < j`` counts once, similar when the labels agree
    (see :func:`contrastive_loss_from_labels`). For explicit pairs use :class:`PairedContrastiveLoss`.
    """

    def __init__(self, margin: float = 1.0, distance: Measure | str = euclidean) -> None:
        super().__init__()
        self.margin = check_positive(margin, "margin", "ContrastiveLoss")
        self.distance = _as_distance(distance)

    @full_precision
    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        where = "ContrastiveLoss"
        check_tensor(embeddings, "embeddings", where, ndim=2)
        labels = check_labels(labels, embeddings.shape[0], where)
        return _labelled_loss(embeddings, labels, self.margin, self.distance)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


class PairedContrastiveLoss(nn.Module):
    """Hadsell et al.'s contrastive loss on explicit pairs: ``loss(x1, x2, similar)``.

    ``x1``, ``x2`` (N, D), ``similar`` (N,) bool (the paper's ``Y == 0``); see :func:`contrastive_loss`.
    This is DrLIM's original training form (pairs drawn from a neighbourhood graph).
    """

    def __init__(self, margin: float = 1.0, distance: Measure | str = euclidean) -> None:
        super().__init__()
        self.margin = check_positive(margin, "margin", "PairedContrastiveLoss")
        self.distance = _as_distance(distance)

    def forward(self, x1: Tensor, x2: Tensor, similar: Tensor) -> Tensor:
        return contrastive_loss(x1, x2, similar, self.margin, self.distance)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"
