r"""The triplet margin loss, on explicit triplets and with online mining in a labelled batch.

.. math::  \ell(a, p, n) = [\, d(a,p) - d(a,n) + m \,]_+

(Weinberger & Saul's LMNN margin; Schroff, Kalenichenko & Philbin 2015, "FaceNet"). ``d`` is
``measure.dissimilarities`` (smaller = closer), so a similarity measure (cosine, dot) is the same code
with its scores negated: ``[s(a,n) - s(a,p) + m]_+``.

:class:`TripletLoss` mines the triplets of a batch online (``a != p`` with the same label, ``n`` with
another label) with one of four strategies; see its docstring. The batch-all and semi-hard forms never
build an N x N x N tensor: :func:`contrastkit.mining.band_coefficients` counts, per anchor-positive pair,
the negatives in the pair's band and, per anchor-negative pair, the positives whose band contains it
(sort + ``searchsorted``), which makes the sum over triplets an exactly weighted sum of the (N, N)
dissimilarity matrix -- exact value, exact gradient, O(N^2 log N) time.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from contrastkit._checks import check_labels, check_positive, check_same_shape, check_tensor, zero_loss
from contrastkit.mining import band_coefficients, triplet_band
from contrastkit.precision import full_precision
from contrastkit.similarity import Measure, euclidean, get_measure

__all__ = ["MINING_STRATEGIES", "TripletLoss", "triplet_loss"]

MINING_STRATEGIES = ("all", "semi-hard", "hard", "easy")


@full_precision
def triplet_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 0.2,
    distance: Measure | str = euclidean,
) -> Tensor:
    r"""Mean over rows of :math:`[d(a_i, p_i) - d(a_i, n_i) + m]_+` for explicit triplets.

    Args:
        anchor, positive, negative: (N, D) each; row ``i`` is one triplet.
        margin: ``m > 0``.
        distance: a measure or its name; a similarity uses ``d = -score``.

    Returns:
        Scalar in float32 (float64 for float64 inputs), also under bf16 autocast. N = 0 gives a zero connected to
        the inputs.
    """
    where = "triplet_loss"
    for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
        check_tensor(t, name, where, ndim=2)
    check_same_shape(anchor, positive, ("anchor", "positive"), where)
    check_same_shape(anchor, negative, ("anchor", "negative"), where)
    margin = check_positive(margin, "margin", where)
    measure = get_measure(distance)
    if anchor.shape[0] == 0:
        return zero_loss(anchor, positive, negative)
    d_ap = -measure.paired_scores(anchor, positive)  # (N,)
    d_an = -measure.paired_scores(anchor, negative)  # (N,)
    return torch.relu(d_ap - d_an + margin).mean()


class TripletLoss(nn.Module):
    r"""Triplet margin loss with online mining: ``loss = TripletLoss(margin, mining)(embeddings, labels)``.

    Valid triplets of a batch: ``a != p`` with ``y_a == y_p`` and ``n`` with ``y_n != y_a``. With
    :math:`\ell = d(a,p) - d(a,n) + m` the strategies are

    * ``"all"`` -- batch-all (Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss for Person
      Re-Identification"): mean of :math:`[\ell]_+` over the triplets with :math:`\ell > 0` (the margin
      violators, :math:`d(a,n) < d(a,p) + m`); averaging only the non-zero terms keeps the loss from
      vanishing as most triplets become easy.
    * ``"semi-hard"`` -- FaceNet's semi-hard triplets (Schroff et al. 2015),
      :math:`d(a,p) \le d(a,n) < d(a,p) + m`: mean of :math:`\ell` over them. Same set and value as
      PyTorch Metric Learning's ``TripletMarginMiner("semihard")`` + ``TripletMarginLoss`` (up to ties).
    * ``"hard"`` -- batch-hard (Hermans et al. 2017): per anchor the hardest positive (largest d(a,p))
      and hardest negative (smallest d(a,n)); mean of :math:`[\max_p d(a,p) - \min_n d(a,n) + m]_+` over
      anchors that have at least one positive and one negative.
    * ``"easy"`` -- easy-positive mining (Xuan, Stylianou & Pless 2020, "Improved Embeddings with Easy
      Positive Triplet Mining"): per anchor the *closest* positive (smallest d(a,p)) with the hardest
      negative; mean of the hinge over anchors that have both. "Easy" names the **positive**: a loss
      averaged over easy *triplets* (:math:`d(a,n) \ge d(a,p) + m`) would be identically zero, since
      those are exactly the triplets with zero hinge. Pulling each sample only towards its nearest
      same-class neighbour lets a class spread over several clusters. (The paper itself pairs this
      selection with an NCA-style softmax; here it is the hinge, as in PML's
      ``BatchEasyHardMiner(pos_strategy="easy", neg_strategy="hard")`` + ``TripletMarginLoss``.)

    ``d`` is ``distance.dissimilarities`` (smaller = closer), so a similarity such as cosine works
    unchanged (``d = -cos``; then the margin is in cosine units).

    A batch with no triplet of the requested kind (one class, every sample its own class, a batch of one,
    or no semi-hard triplet) gives a finite zero that is still connected to the graph. bf16 / fp16
    embeddings are compared in float32, also under autocast.

    Shapes: ``embeddings`` (N, D), ``labels`` (N,) integer ids; returns a scalar.

    Args:
        margin: ``m > 0``.
        mining: ``"all"``, ``"semi-hard"``, ``"hard"`` or ``"easy"``.
        distance: a measure or its name (orientation from its type).
        chunk_size: anchors per block of the sort / search work of ``"all"`` / ``"semi-hard"`` (default
            about 2^18 / N); it bounds that working memory and never changes the result.
    """

    def __init__(
        self,
        margin: float = 0.2,
        mining: str = "semi-hard",
        distance: Measure | str = euclidean,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        self.margin = check_positive(margin, "margin", "TripletLoss")
        if mining not in MINING_STRATEGIES:
            raise ValueError(f"TripletLoss: `mining` must be one of {list(MINING_STRATEGIES)}, got {mining!r}")
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"TripletLoss: `chunk_size` must be >= 1, got {chunk_size!r}")
        self.mining = mining
        self.distance = get_measure(distance)
        self.chunk_size = chunk_size

    @full_precision
    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        where = "TripletLoss"
        check_tensor(embeddings, "embeddings", where, ndim=2)
        labels = check_labels(labels, embeddings.shape[0], where)
        if embeddings.shape[0] < 2:
            return zero_loss(embeddings)
        d = self.distance.dissimilarities(embeddings, embeddings)  # (N, N), smaller = closer
        if self.mining in ("all", "semi-hard"):
            return self._band_loss(d, labels)
        return self._per_anchor_loss(d, labels)

    def _band_loss(self, d: Tensor, labels: Tensor) -> Tensor:
        """Mean of d(a,p) - d(a,n) + m over the triplets of the band, as a weighted sum of d."""
        band = triplet_band("all" if self.mining == "all" else "semi-hard", self.margin)
        coefficients, n_triplets = band_coefficients(d, labels, band, self.chunk_size)  # (N, N), int
        if n_triplets == 0:
            return zero_loss(d)
        return ((coefficients * d).sum() + self.margin * n_triplets) / n_triplets

    def _per_anchor_loss(self, d: Tensor, labels: Tensor) -> Tensor:
        """Batch-hard or easy-positive: one (positive, negative) pair chosen per anchor."""
        same = labels[:, None] == labels[None, :]  # (N, N)
        eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
        positive, negative = same & ~eye, ~same
        has_both = positive.any(1) & negative.any(1)  # (N,)
        if not bool(has_both.any()):
            return zero_loss(d)
        inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
        if self.mining == "hard":
            d_ap = torch.where(positive, d, -inf).amax(1)  # (N,) hardest positive
        else:
            d_ap = torch.where(positive, d, inf).amin(1)  # (N,) easiest positive
        d_an = torch.where(negative, d, inf).amin(1)  # (N,) hardest negative
        return torch.relu(d_ap[has_both] - d_an[has_both] + self.margin).mean()

    def extra_repr(self) -> str:
        return f"margin={self.margin}, mining={self.mining!r}"
