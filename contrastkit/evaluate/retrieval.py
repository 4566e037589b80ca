r"""Retrieval on held-out data: Recall@1 of an embedding.

.. math::  \mathrm{R@1} = \frac{1}{N} \sum_i \mathbb{1}\big[\, y_{j^*(i)} = y_i \,\big], \qquad
           j^*(i) = \arg\min_{j \ne i} \lVert f_i - f_j \rVert_2 ,

over the N held-out samples: is each sample's nearest *other* held-out sample of its class? (The retrieval
metric of deep metric learning, e.g. Oh Song et al. 2016; for a triplet embedding it reads the learned metric
directly, where kNN against the training split also rewards a larger reference set.) Ties go to the lowest
index. The distance is Euclidean; a method whose metric is another one returns features in which the Euclidean
distance ranks pairs the same way (:meth:`contrastkit.methods.triplet.TripletEmbedding.features`).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["recall_at_1"]


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
