r"""NT-Xent, SimCLR's normalised temperature-scaled cross-entropy (Chen et al. 2020), and SupCon.

For a batch of N pairs of views the 2N embeddings :math:`z` are scored against each other; each anchor
:math:`i` has one positive :math:`p(i)` (its other view) and 2(N-1) negatives:

.. math::

    \ell_i = -\log \frac{\exp(s(z_i, z_{p(i)}) / \tau)}{\sum_{k \ne i} \exp(s(z_i, z_k) / \tau)},
    \qquad L = \frac{1}{2N} \sum_{i=1}^{2N} \ell_i .

With ``labels``, every other sample of the anchor's class is a positive -- the supervised contrastive
loss :math:`L^{sup}_{out}` of Khosla et al. 2020, eq. 2:

.. math::

    \ell_i = -\frac{1}{|P(i)|} \sum_{p \in P(i)} \log
    \frac{\exp(s_{ip}/\tau)}{\sum_{k \ne i} \exp(s_{ik}/\tau)} ,

mean over the anchors that have at least one positive. Same-class samples are then no longer treated
as negatives only: they are pulled together. Without labels it is exactly NT-Xent (each pair its own class).
The value equals lightly's and PyTorch Metric Learning's ``NTXentLoss`` for the same pairs.

The score :math:`s` defaults to the cosine similarity (SimCLR); any :class:`~contrastkit.similarity.Measure`
works (distances enter negated). Closed form: 2N identical embeddings give :math:`\log(2N-1)`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from contrastkit._checks import check_labels, check_same_shape, check_tensor
from contrastkit.losses.logsumexp import row_logsumexp
from contrastkit.losses.temperature import SoftmaxLossModule, check_temperature, default_block_size
from contrastkit.precision import full_precision
from contrastkit.similarity import Measure, cosine, get_measure

__all__ = ["NTXentLoss", "nt_xent", "nt_xent_rows"]

_WHERE = "nt_xent"


def _class_ids(labels: Tensor) -> tuple[Tensor, int]:
    """Remap arbitrary integer labels to 0..C-1."""
    _, ids = torch.unique(labels, return_inverse=True)
    return ids, int(ids.max()) + 1 if ids.numel() else 0


@full_precision
def nt_xent(
    z1: Tensor,
    z2: Tensor,
    temperature: float | Tensor = 0.5,
    *,
    labels: Tensor | None = None,
    score: Measure | str = cosine,
    memory_efficient: bool = False,
    block_size: int | None = None,
) -> Tensor:
    """NT-Xent over the 2N views ``z1`` (N, D), ``z2`` (N, D); see the module docstring.

    Args:
        temperature: :math:`\\tau` > 0, a float or a 0-dim tensor (learnable: :class:`NTXentLoss`).
        labels: (N,) class ids of the pairs (both views share them) for SupCon; ``None`` = NT-Xent.
        score: the measure giving :math:`s` (cosine by default).
        memory_efficient: never hold the (2N, 2N) score matrix: blockwise log-sum-exp, recomputed in the
            backward (same value and gradients). Needs a score that is an inner product of transformed
            inputs (cosine, dot, squared Euclidean, bilinear).
        block_size: rows per block in the memory-efficient mode (default: about 128 MiB of scores).

    Returns:
        scalar loss, float32 (float64 for float64 inputs), also under bf16 autocast. It is the mean of
        :func:`nt_xent_rows` over the 2N views, the form a row block of a batch gathered across processes uses.
    """
    check_tensor(z1, "z1", _WHERE, ndim=2)
    check_tensor(z2, "z2", _WHERE, ndim=2)
    check_same_shape(z1, z2, ("z1", "z2"), _WHERE)
    n = z1.shape[0]
    if n == 0:
        raise ValueError(f"{_WHERE}: empty batch (z1 has 0 rows)")
    z = torch.cat([z1, z2])  # (2N, D): views of pair i at rows i and N + i
    positive = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)  # (2N,) the other view's row
    ids = None
    if labels is not None:
        pair_ids, _ = _class_ids(check_labels(labels, n, _WHERE))
        ids = torch.cat([pair_ids, pair_ids])  # (2N,) class of every view
    return nt_xent_rows(z, z, positive, temperature, labels=ids, candidate_labels=ids, score=score,
                        memory_efficient=memory_efficient, block_size=block_size).mean()


@full_precision
def nt_xent_rows(
    anchors: Tensor,
    candidates: Tensor,
    positive_index: Tensor,
    temperature: float | Tensor = 0.5,
    *,
    offset: int = 0,
    labels: Tensor | None = None,
    candidate_labels: Tensor | None = None,
    score: Measure | str = cosine,
    memory_efficient: bool = False,
    block_size: int | None = None,
) -> Tensor:
    """Per-anchor NT-Xent (SupCon with labels) of a block of anchors against a whole batch of views: (R,).

    ``candidates`` (S, D) are all the views of the (global) batch; ``anchors`` (R, D) are rows
    ``offset .. offset + R`` of it (the same values: under ``torch.distributed`` the local views, while
    ``candidates`` is the all-gather that carries gradient back to them). Row ``i``'s own column
    ``offset + i`` is excluded from its denominator and ``positive_index[i]`` is the column of its other view.
    With ``labels`` (R,) and ``candidate_labels`` (S,), every candidate of the anchor's class except itself is
    a positive (Khosla et al. eq. 2) and ``positive_index`` is not used. The mean over all rows of all blocks
    equals :func:`nt_xent` on the global batch.
    """
    where = "nt_xent_rows"
    check_tensor(anchors, "anchors", where, ndim=2)
    check_tensor(candidates, "candidates", where, ndim=2)
    r, s = anchors.shape[0], candidates.shape[0]
    if not 0 <= offset <= s - r:
        raise ValueError(f"{where}: `offset` {offset} does not place {r} anchors inside {s} candidates")
    if (labels is None) != (candidate_labels is None):
        raise ValueError(f"{where}: give both `labels` and `candidate_labels`, or neither")
    temperature = check_temperature(temperature, where)
    score = get_measure(score)
    rows = torch.arange(r, device=anchors.device)
    own = rows + offset  # (R,) each anchor's own column
    if labels is not None:
        all_ids = torch.cat([labels, candidate_labels])
        _, inverse = torch.unique(all_ids, return_inverse=True)
        row_ids, col_ids = inverse[:r], inverse[r:]
        num_classes = int(inverse.max()) + 1
        num_pos = torch.bincount(col_ids, minlength=num_classes)[row_ids] - 1  # (R,) |P(i)|
    else:
        num_pos = torch.ones(r, dtype=torch.long, device=anchors.device)
    factors = score.score_factors(anchors, candidates)
    if factors is None:
        if memory_efficient:
            raise ValueError(f"{_WHERE}: memory_efficient=True needs an inner-product score (cosine, dot, "
                             f"squared Euclidean, bilinear); {type(score).__name__} is not one")
        logits = score.scores(anchors, candidates) / temperature  # (R, S)
        self_mask = torch.zeros_like(logits, dtype=torch.bool)
        self_mask[rows, own] = True
        lse = torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1)  # (R,)
        if labels is None:
            pos_sum = logits[rows, positive_index]
        else:
            positive = (row_ids[:, None] == col_ids[None, :]) & ~self_mask
            pos_sum = (logits * positive).sum(1)  # (R,) sum of positive logits
        return lse - pos_sum / num_pos
    a, c, extra = factors
    a = a / temperature  # (R, D')
    block = (block_size or default_block_size(s)) if memory_efficient else None
    lse = row_logsumexp(a, c, diagonal="exclude", block_size=block, column_offset=offset)  # (R,)
    if labels is None:  # the one positive of anchor i is its other view
        pos_sum = (a * c[positive_index]).sum(1)  # (R,)
    else:  # sum over p in P(i) of a_i . c_p = a_i . (class sum of c - c_own)
        class_sum = c.new_zeros(num_classes, c.shape[1]).index_add(0, col_ids, c)  # (C, D')
        pos_sum = (a * (class_sum[row_ids] - c[own])).sum(1)  # (R,)
    if extra is not None:  # a per-anchor additive term of the score (e.g. squared Euclidean)
        lse = lse + extra / temperature
        pos_sum = pos_sum + num_pos * extra / temperature
    return lse - pos_sum / num_pos


class NTXentLoss(SoftmaxLossModule):
    """:func:`nt_xent` as a module; ``learnable_temperature=True`` learns :math:`\\tau` (starting at ``temperature``).

    Call as ``loss(z1, z2)`` or ``loss(z1, z2, labels)`` (SupCon).
    """

    def __init__(
        self,
        temperature: float = 0.5,
        *,
        score: Measure | str = cosine,
        learnable_temperature: bool = False,
        memory_efficient: bool = False,
        block_size: int | None = None,
    ) -> None:
        super().__init__(temperature, score, learnable_temperature, memory_efficient, block_size)

    def forward(self, z1: Tensor, z2: Tensor, labels: Tensor | None = None) -> Tensor:
        return nt_xent(z1, z2, self.temperature(), labels=labels, score=self.score,
                       memory_efficient=self.memory_efficient, block_size=self.block_size)
