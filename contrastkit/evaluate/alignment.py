r"""Alignment and uniformity of embeddings on the unit hypersphere (Wang & Isola 2020).

"Understanding Contrastive Representation Learning through Alignment and Uniformity on the
Hypersphere" (ICML 2020), Sec. 4.1, with :math:`f` the L2-normalised features:

* alignment (lower is better; 0 when positives coincide)

  .. math:: \mathcal{L}_{align}(f; \alpha) = \mathbb{E}_{(x, y) \sim p_{pos}} \lVert f(x) - f(y) \rVert_2^{\alpha}

* uniformity (lower is better; 0 when all points coincide, the minimum over the sphere is reached
  by a uniform spread)

  .. math:: \mathcal{L}_{uniform}(f; t) = \log \mathbb{E}_{x, y \sim p_{data}} e^{-t \lVert f(x) - f(y) \rVert_2^2}

  estimated over all distinct pairs :math:`i < j` of a batch (the paper's ``pdist`` form).

Both return differentiable 0-dim tensors (usable as losses), computed in float32 for half-precision
inputs (float64 stays float64). Uniformity is computed blockwise with a running log-sum-exp:
memory ``chunk x N``, so it also works for N well beyond a few thousand.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from contrastkit._checks import check_positive, check_same_shape, check_tensor, compute_dtype, upcast
from contrastkit.similarity import normalize, squared_euclidean

__all__ = ["alignment", "alignment_uniformity", "uniformity"]


def alignment(x: Tensor, y: Tensor, alpha: float = 2.0, normalized: bool = True) -> Tensor:
    """Mean ``||f(x_i) - f(y_i)||^alpha`` over positive pairs: rows of ``x`` (N, D) and ``y`` (N, D).

    Rows are L2-normalised first unless ``normalized=False`` (then used as given). The gradient is
    finite (zero) where a pair coincides, for every ``alpha > 0``.
    """
    where = "alignment"
    check_tensor(x, "x", where, ndim=2)
    check_tensor(y, "y", where, ndim=2)
    check_same_shape(x, y, ("x", "y"), where)
    if x.shape[0] == 0:
        raise ValueError(f"{where}: `x` and `y` have no rows (no positive pairs)")
    alpha = check_positive(alpha, "alpha", where)
    dtype = compute_dtype(x, y)
    x, y = upcast(x, dtype), upcast(y, dtype)
    if normalized:
        x, y = normalize(x), normalize(y)
    d2 = squared_euclidean.paired(x, y)  # (N,) ||f(x_i) - f(y_i)||^2
    if alpha == 2.0:
        return d2.mean()
    tiny = torch.finfo(d2.dtype).tiny
    powered = torch.where(d2 > 0, d2.clamp_min(tiny).pow(alpha / 2), torch.zeros_like(d2))  # (N,)
    return powered.mean()


def uniformity(x: Tensor, t: float = 2.0, normalized: bool = True, chunk: int = 2048) -> Tensor:
    """``log mean_{i<j} exp(-t ||f(x_i) - f(x_j)||^2)`` over all distinct pairs of rows of ``x`` (N, D), N >= 2.

    Rows are L2-normalised first unless ``normalized=False``. ``chunk`` rows are compared with all
    later rows at a time (memory ``chunk x N``).
    """
    where = "uniformity"
    check_tensor(x, "x", where, ndim=2)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"{where}: `x` needs at least 2 rows (one distinct pair), got {n}")
    t = check_positive(t, "t", where)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"{where}: `chunk` must be an integer >= 1, got {chunk!r}")
    x = upcast(x, compute_dtype(x))
    if normalized:
        x = normalize(x)
    columns = torch.arange(n, device=x.device)
    block_lse = []
    for start in range(0, n - 1, chunk):
        stop = min(start + chunk, n - 1)  # the last row has no later partner
        d2 = squared_euclidean.pairwise(x[start:stop], x)  # (b, N)
        later = columns[None, :] > columns[start:stop, None]  # (b, N): pair (i, j) with j > i
        block_lse.append(torch.logsumexp(-t * d2[later], dim=0))  # log sum over this block's pairs
    pairs = n * (n - 1) / 2
    return torch.logsumexp(torch.stack(block_lse), dim=0) - math.log(pairs)


def alignment_uniformity(view1: Tensor, view2: Tensor, alpha: float = 2.0, t: float = 2.0) -> dict[str, float]:
    """Both measures for two views' features (N, D): alignment over pairs ``(view1_i, view2_i)``,
    uniformity as the mean of each view's uniformity (the paper's ``(L_unif(x) + L_unif(y)) / 2``).

    Evaluated without gradients; returns plain floats ``{"alignment", "uniformity"}``.
    """
    with torch.no_grad():
        align = alignment(view1, view2, alpha=alpha)
        unif = (uniformity(view1, t=t) + uniformity(view2, t=t)) / 2
    return {"alignment": float(align), "uniformity": float(unif)}
