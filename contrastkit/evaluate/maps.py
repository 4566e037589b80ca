r"""How well a learned low-dimensional map (DrLIM's 2-D map) keeps the neighbourhoods of the inputs, against PCA.

Trustworthiness (Venna & Kaski 2001; :func:`sklearn.manifold.trustworthiness`) of held-out points: with
:math:`U_k(i)` the points among the k nearest of i in the map but not in input space, and :math:`r(i, j)` the
rank of j among i's neighbours in input space,

.. math::  T(k) = 1 - \frac{2}{n k (2n - 3k - 1)} \sum_i \sum_{j \in U_k(i)} \big(r(i, j) - k\big)

(1: every map neighbour is an input-space neighbour). Input space is the raw inputs, flattened (pixels in [0, 1]);
the baseline is PCA to the same dimension, fitted on the training inputs (the same data the map was trained on)
and applied to the held-out inputs. Both are scored on the same held-out points with the same k.

Neighbourhoods need points that differ: held-out inputs that are all one point (constant inputs) have none to keep,
a map that puts every point at one place keeps none (its ties would score as perfect), and PCA cannot be fitted to
training inputs that are all one point. Such a score is None, with a note that says why
(:func:`~contrastkit.evaluate.degenerate.is_collapsed`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from contrastkit.evaluate.degenerate import is_collapsed
from contrastkit.evaluate.features import raw_features

__all__ = ["MAP_NEIGHBOURS", "map_trustworthiness"]

#: k of the trustworthiness score
MAP_NEIGHBOURS = 10


def map_trustworthiness(train_x: Tensor, test_x: Tensor, test_map: Tensor | np.ndarray,
                        n_neighbors: int = MAP_NEIGHBOURS) -> dict[str, Any]:
    """``{"trustworthiness", "pca_trustworthiness", "trustworthiness_k", "notes"}`` of the map ``test_map`` (n, d)
    of the held-out inputs ``test_x`` (n, ...) and of PCA to d dimensions fitted on ``train_x`` (see the module
    docstring). k is lowered to the largest sklearn accepts (``k < n / 2``) for small test sets. A score that
    measures nothing (points all at one place) is None, and ``notes`` says why."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import trustworthiness

    inputs = raw_features(test_x).double().numpy()  # (n, D)
    mapped = np.asarray(test_map.detach().cpu() if isinstance(test_map, Tensor) else test_map, dtype=np.float64)
    n = inputs.shape[0]
    if mapped.ndim != 2 or mapped.shape[0] != n:
        raise ValueError(f"map_trustworthiness: `test_map` must be ({n}, d) for the {n} held-out inputs, got "
                         f"shape {mapped.shape}")
    k = min(int(n_neighbors), (n - 1) // 2)
    if k < 1:
        raise ValueError(f"map_trustworthiness: {n} held-out points are too few for a neighbourhood score")
    if not np.isfinite(mapped).all():
        raise ValueError("map_trustworthiness: the map holds NaN/Inf values")
    result: dict[str, Any] = {"trustworthiness": None, "pca_trustworthiness": None, "trustworthiness_k": k,
                              "notes": []}
    if is_collapsed(inputs):
        result["notes"].append(f"trustworthiness skipped: the {n} held-out inputs are all one point, so there are "
                               f"no neighbourhoods to keep")
        return result
    if is_collapsed(mapped):
        result["notes"].append(f"trustworthiness of the map skipped: it puts all {n} held-out points at one place "
                               f"(its neighbours are ties)")
    else:
        result["trustworthiness"] = round(float(trustworthiness(inputs, mapped, n_neighbors=k)), 4)
    train_inputs = raw_features(train_x).double().numpy()  # (N, D)
    if is_collapsed(train_inputs):
        result["notes"].append("PCA trustworthiness skipped: the training inputs are all one point (no PCA to fit)")
    else:
        pca = PCA(n_components=mapped.shape[1], svd_solver="full").fit(train_inputs)
        result["pca_trustworthiness"] = round(float(trustworthiness(inputs, pca.transform(inputs), n_neighbors=k)), 4)
    return result
