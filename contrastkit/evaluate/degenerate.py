"""Features that no 2-D map, neighbour vote or probe can read, found before t-SNE / PCA / the probes run.

A run trained on constant inputs (all-ones vectors), or one whose representation collapsed, gives feature vectors
that are all one point. On such features scikit-learn's t-SNE divides its PCA initialisation by a spread of zero
and then dies natively (a segmentation fault, not an exception) on the NaN that results; so does it on features
whose squared distances underflow or overflow float32 (spreads below about 1e-22 or above 1e19). PCA warns and
returns zeros, kNN's cosine votes become ties and the linear probe sees no signal. The checks here name the
problem, so that a map is skipped with a note and a score carries a note that says it measures nothing.

"One point" means: every column's spread (max - min over the rows) is at most :data:`ROUNDING_STEPS` rounding
steps of the features' own precision at their largest magnitude (float32 features that differ only in their last
bits are one point). :func:`centred_unit_scale` gives t-SNE and PCA features of a safe scale: centred and divided
by their largest centred magnitude -- a shift and one common factor, which neither map depends on.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from contrastkit.evaluate._inputs import to_numpy
from contrastkit.similarity import normalize

__all__ = ["ROUNDING_STEPS", "DegenerateFeaturesError", "centred_unit_scale", "collapse_spread", "is_collapsed",
           "map_problem", "probe_notes", "rank_one_floor", "relative_precision", "undirected_rows"]

#: how many rounding steps (of the features' precision, at their largest magnitude) rows may differ by and still
#: count as one point
ROUNDING_STEPS = 16

#: the fewest points each 2-D map accepts
MIN_MAP_POINTS = {"tsne": 3, "pca": 3, "identity": 1}


class DegenerateFeaturesError(ValueError):
    """No 2-D map can be drawn from these features: a skipped map, not a failed run. ``reason`` says why, the
    message also says where and which map."""

    def __init__(self, where: str, method: str, reason: str) -> None:
        super().__init__(f"{where}: no {method} map: {reason}")
        self.reason = reason


def relative_precision(dtype: np.dtype) -> float:
    """One rounding step relative to the value (machine epsilon) of a floating dtype; float64's for any other."""
    dtype = np.dtype(dtype)
    return float(np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).eps)


def rank_one_floor(dtype: np.dtype) -> float:
    """The ratio of PCA's second to first variance at or below which features of ``dtype`` vary along a single
    direction: the larger of the solver's rounding (:data:`ROUNDING_STEPS` float64 steps on a variance) and the
    data's own (that many steps of ``dtype`` on a singular value, squared)."""
    return max(ROUNDING_STEPS * relative_precision(np.float64), (ROUNDING_STEPS * relative_precision(dtype)) ** 2)


def collapse_spread(x: np.ndarray) -> tuple[float, float]:
    """``(spread, tolerance)`` of the finite rows of ``x`` (N, F): the largest column spread (max - min) and what
    :func:`is_collapsed` allows (:data:`ROUNDING_STEPS` steps of ``x``'s precision at its largest magnitude)."""
    values = x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)
    if values.size == 0:
        return 0.0, 0.0
    magnitude = float(np.abs(values).max())
    spread = float((values.max(axis=0).astype(np.float64) - values.min(axis=0).astype(np.float64)).max())
    return spread, ROUNDING_STEPS * relative_precision(x.dtype) * magnitude


def is_collapsed(x: np.ndarray | Tensor) -> bool:
    """Whether the finite rows of ``x`` (N, F) are all one point up to rounding (see the module docstring)."""
    spread, tolerance = collapse_spread(to_numpy(x, "x", "is_collapsed"))
    return spread <= tolerance


def undirected_rows(x: Tensor, chunk: int = 8192) -> int:
    """How many rows of ``x`` (N, F) have no direction for a cosine similarity: :func:`contrastkit.similarity.normalize`
    does not make them unit vectors (norm 0 or below its epsilon, or a norm beyond the float range), so their
    cosine with every vector is 0. Counted ``chunk`` rows at a time."""
    count = 0
    for start in range(0, x.shape[0], chunk):
        norms = torch.linalg.vector_norm(normalize(x[start:start + chunk]), dim=1)  # (b,) 1 for a usable row
        count += int(((norms - 1).abs() > 1e-3).sum())
    return count


def probe_notes(train: Tensor, test: Tensor) -> list[str]:
    """Notes on features (train (N, F), test (M, F)) that kNN and the linear probe cannot read: train rows all one
    point (every neighbour a tie, no signal for the probe), test rows all one point (one prediction for all), rows
    without a direction (their cosine votes are ties)."""
    notes = []
    train_collapsed = train.shape[0] >= 2 and is_collapsed(train)
    test_collapsed = test.shape[0] >= 2 and is_collapsed(test)
    if train_collapsed:
        notes.append(f"the {train.shape[0]} train feature vectors are all one point (a collapsed representation, "
                     f"or constant inputs): kNN's neighbours are all ties and the linear probe sees no signal, so "
                     f"both scores are guesses")
    if test_collapsed:
        notes.append(f"the {test.shape[0]} test feature vectors are all one point: every test sample gets the same "
                     f"prediction")
    undirected = {name: undirected_rows(x) for name, x, collapsed in (("train", train, train_collapsed),
                                                                      ("test", test, test_collapsed)) if not collapsed}
    counted = [f"{count} of the {name} rows" for name, count in undirected.items() if count]
    if counted:
        notes.append(f"kNN: {' and '.join(counted)} have no direction (norm 0, or beyond the float range): their "
                     f"cosine similarity to every vector is 0, so their neighbours / votes are ties")
    return notes


def map_problem(features: np.ndarray, method: str) -> str | None:
    """Why no 2-D map of ``features`` (N, F) can be drawn by ``method`` (``"tsne"``, ``"pca"``, ``"identity"``),
    or None when it can. Checked: enough points, only finite values, at least 2 dimensions (t-SNE / PCA), and
    rows that are not all one point."""
    x = np.asarray(features)
    n = x.shape[0]
    least = MIN_MAP_POINTS.get(method, 3)
    if n < least:
        return f"{n} point(s): a {method} map needs at least {least}"
    if np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.complexfloating):
        bad = int((~np.isfinite(x)).sum())
        if bad:
            return f"the features hold {bad} NaN/Inf value(s)"
    if method != "identity" and x.shape[1] < 2:
        return f"the features have {x.shape[1]} dimension(s); a 2-D {method} map needs at least 2"
    if n >= 2:
        spread, tolerance = collapse_spread(x)
        if spread <= tolerance:
            same = "identical" if spread == 0 else f"one point up to rounding (they differ by at most {spread:.2g})"
            return (f"all {n} feature vectors are {same}: nothing to map (a collapsed representation, or constant "
                    f"inputs)")
    return None


def centred_unit_scale(features: np.ndarray) -> np.ndarray:
    """``(x - mean) / max |x - mean|`` in float64, computed without overflow or underflow; ``features`` (N, F) must
    be finite and not one point (:func:`map_problem`). t-SNE and PCA maps do not depend on the shift, and the
    common factor only scales the map; their own arithmetic (t-SNE's float32 squared distances) then stays in
    range for features of any magnitude."""
    x = np.asarray(features, dtype=np.float64)
    scaled = x / np.abs(x).max()  # (N, F) in [-1, 1]: its mean cannot overflow
    centred = scaled - scaled.mean(axis=0)
    spread = np.abs(centred).max()
    if not spread > 0:
        raise ValueError("centred_unit_scale: the features are one point; check them with map_problem first")
    return centred / spread
