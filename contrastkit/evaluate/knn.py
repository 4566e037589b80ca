r"""Weighted k-nearest-neighbour classification of frozen features (Wu et al. 2018).

Protocol of "Unsupervised Feature Learning via Non-Parametric Instance Discrimination" (Wu, Xiong, Yu,
Lin, CVPR 2018), Sec. 3.4, used by most contrastive papers as a quick representation score:

* features are L2-normalised, the similarity is the cosine :math:`s_i = \hat f_{test}^\top \hat f_i`;
* the :math:`k` most similar training samples :math:`N_k` vote, neighbour :math:`i` with weight
  :math:`\alpha_i = \exp(s_i / \tau)`;
* the class score is :math:`w_c = \sum_{i \in N_k} \alpha_i \, [c_i = c]`, the prediction
  :math:`\arg\max_c w_c`. Defaults :math:`k = 20`, :math:`\tau = 0.07`.

Ties between class scores go to the smallest class id. Class ids may be any non-negative integers
(votes are kept only for the classes present in the train split, so memory does not grow with the
largest id). ``k`` must lie in [1, number of training samples]; this function never changes it
(:func:`~contrastkit.evaluate.features.evaluate_features` lowers its *default* k on a small train
split and records that it did). Weights are computed as
:math:`\exp((s_i - s_{max}) / \tau)` (the same ratios, so the same prediction) so that small
temperatures never overflow.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from contrastkit._checks import check_labels, check_positive, check_tensor, compute_dtype, upcast
from contrastkit.similarity import normalize

__all__ = ["DEFAULT_KNN_K", "knn_accuracy", "knn_predict"]

#: The protocol's k (see the module docstring).
DEFAULT_KNN_K = 20


def as_feature_tensor(x: object, name: str, where: str, allow_empty: bool = False) -> Tensor:
    """numpy or torch (N, F) floating features -> tensor, checked (2-D, floating, finite, non-empty)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    x = check_tensor(x, name, where, ndim=2)
    if x.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{where}: `{name}` has no rows")
    return x


def as_label_tensor(labels: object, n: int, name: str, where: str) -> Tensor:
    """numpy or torch integer labels of length ``n`` -> int64 tensor of non-negative class ids."""
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    labels = check_labels(labels, n, where, name)
    labels = labels.long()
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{where}: `{name}` must be non-negative class ids, got min {int(labels.min())}")
    return labels


def knn_predict(train_features: Tensor | np.ndarray, train_labels: Tensor | np.ndarray,
                test_features: Tensor | np.ndarray, k: int = DEFAULT_KNN_K, temperature: float = 0.07,
                chunk: int = 1024) -> Tensor:
    """Predicted class ids (M,) int64 for ``test_features`` (M, F) from ``train_features`` (N, F).

    Computed on the device of ``train_features`` in float32 (float64 if an input is float64),
    ``chunk`` test rows at a time (memory ``chunk x N``). ``k`` must not exceed N.
    """
    where = "knn_predict"
    train = as_feature_tensor(train_features, "train_features", where)
    test = as_feature_tensor(test_features, "test_features", where)
    labels = as_label_tensor(train_labels, train.shape[0], "train_labels", where).to(train.device)
    if train.shape[1] != test.shape[1]:
        raise ValueError(f"{where}: feature dimensions differ: train {train.shape[1]} vs test {test.shape[1]}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= train.shape[0]:
        raise ValueError(f"{where}: `k` must be an integer in [1, {train.shape[0]}] (the number of training "
                         f"samples), got {k!r}")
    tau = check_positive(temperature, "temperature", where)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"{where}: `chunk` must be an integer >= 1, got {chunk!r}")
    dtype = compute_dtype(train, test)
    train_n = normalize(upcast(train, dtype))  # (N, F), unit rows
    test = upcast(test, dtype).to(train.device)
    classes, labels = torch.unique(labels, sorted=True, return_inverse=True)  # (C,) ids, (N,) in 0..C-1
    num_classes = int(classes.numel())
    predictions = []
    for start in range(0, test.shape[0], chunk):
        sims = normalize(test[start:start + chunk]) @ train_n.T  # (b, N) cosine similarities
        top_sims, top_idx = sims.topk(k, dim=1)  # (b, k), sorted descending
        weights = torch.exp((top_sims - top_sims[:, :1]) / tau)  # (b, k), alpha_i / alpha_max
        votes = torch.zeros(sims.shape[0], num_classes, dtype=dtype, device=sims.device)
        votes.scatter_add_(1, labels[top_idx], weights)  # (b, C) class scores w_c
        predictions.append(classes[votes.argmax(dim=1)])  # first maximum: ties go to the smallest class id
    return torch.cat(predictions).cpu()


def knn_accuracy(train_features: Tensor | np.ndarray, train_labels: Tensor | np.ndarray,
                 test_features: Tensor | np.ndarray, test_labels: Tensor | np.ndarray, k: int = DEFAULT_KNN_K,
                 temperature: float = 0.07, chunk: int = 1024) -> float:
    """Fraction of ``test_labels`` (M,) predicted correctly by :func:`knn_predict`."""
    test = as_feature_tensor(test_features, "test_features", "knn_accuracy")
    truth = as_label_tensor(test_labels, test.shape[0], "test_labels", "knn_accuracy")
    predicted = knn_predict(train_features, train_labels, test, k=k, temperature=temperature, chunk=chunk)
    return float((predicted == truth.cpu()).double().mean())
