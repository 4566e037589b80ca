"""Distances and similarity scores between embeddings (survey section C; CPC's bilinear score; MLP critics).

Every measure is an ``nn.Module`` with two forms:

* ``pairwise(x, y)``: ``x`` (N, D), ``y`` (M, D) -> (N, M) matrix of all pairs;
* ``paired(x, y)``: ``x`` (N, D), ``y`` (N, D) -> (N,) row ``i`` against row ``i``.

Calling a measure is ``pairwise``. Whether it is a **distance** (smaller = closer) or a **similarity**
(larger = closer) is its type: subclasses of :class:`Distance` or :class:`Similarity`. Losses never
ask for a flag; they read the orientation from the type through two views that are the same for
every measure:

* ``scores(x, y)`` -- closeness, larger = closer: a similarity as is, a distance negated (logits of
  InfoNCE / NT-Xent are ``scores / temperature``);
* ``dissimilarities(x, y)`` -- the negation of ``scores``: a distance as is, a similarity negated
  (margin losses compare these, so the triplet loss ``[d(a,p) - d(a,n) + m]_+`` is the same code for both).

Measures computed from inner products also expose :meth:`Measure.score_factors`, which the
memory-efficient (blockwise) InfoNCE / NT-Xent use to never form the full score matrix.

Inputs in bf16 / fp16 are computed in float32 (normalisation and square roots are unstable in
half precision), also under ``torch.autocast``: every measure's ``pairwise``, ``paired`` and ``score_factors``,
a user's own subclass included, run through :func:`~contrastkit.precision.full_precision`; float64 stays float64.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit._checks import compute_dtype, upcast
from contrastkit.precision import full_precision

__all__ = [
    "BilinearSimilarity",
    "CosineDistance",
    "CosineSimilarity",
    "Distance",
    "DotProductSimilarity",
    "EuclideanDistance",
    "MLPCritic",
    "MahalanobisDistance",
    "Measure",
    "Similarity",
    "SquaredEuclideanDistance",
    "cosine",
    "cosine_distance",
    "dot",
    "euclidean",
    "get_measure",
    "squared_euclidean",
]


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Upcast a pair of (N, D) / (M, D) inputs to the compute dtype after checking their shapes."""
    if x.dim() != 2 or y.dim() != 2:
        raise ValueError(f"measures take 2-D (batch, dim) inputs, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]} "
                         f"(shapes {tuple(x.shape)} and {tuple(y.shape)})")
    dtype = compute_dtype(x, y)
    return upcast(x, dtype), upcast(y, dtype)


def _paired_check(x: Tensor, y: Tensor) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"paired form needs the same number of rows, got {x.shape[0]} and {y.shape[0]}")


def safe_sqrt(squared: Tensor) -> Tensor:
    """sqrt with a zero (not infinite) gradient at 0, so identical points never produce NaN gradients."""
    positive = squared > 0
    tiny = torch.finfo(squared.dtype).tiny
    return torch.where(positive, squared.clamp_min(tiny).sqrt(), torch.zeros_like(squared))


def normalize(x: Tensor) -> Tensor:
    """L2-normalise rows in (at least) float32; zero rows stay zero (their cosine with anything is 0)."""
    x = upcast(x, compute_dtype(x))
    return F.normalize(x, dim=-1, eps=1e-12 if x.dtype == torch.float64 else 1e-8)


class Measure(nn.Module, ABC):
    """A pairwise comparison of embeddings; see the module docstring for the two forms and views."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        """A subclass's own ``pairwise`` / ``paired`` / ``score_factors`` compute in float32 under autocast."""
        super().__init_subclass__(**kwargs)
        for name in ("pairwise", "paired", "score_factors"):
            if name in cls.__dict__:
                setattr(cls, name, full_precision(cls.__dict__[name]))

    @abstractmethod
    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        """(N, D), (M, D) -> (N, M)."""

    @abstractmethod
    def paired(self, x: Tensor, y: Tensor) -> Tensor:
        """(N, D), (N, D) -> (N,)."""

    @abstractmethod
    def scores(self, x: Tensor, y: Tensor) -> Tensor:
        """Pairwise closeness (N, M): larger means closer."""

    def dissimilarities(self, x: Tensor, y: Tensor) -> Tensor:
        """Pairwise dissimilarity (N, M): smaller means closer; ``-scores``."""
        return -self.scores(x, y)

    @abstractmethod
    def paired_scores(self, x: Tensor, y: Tensor) -> Tensor:
        """Paired closeness (N,): larger means closer."""

    def score_factors(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor | None] | None:
        """Factors ``(x', y', row_offset)`` with ``scores(x, y) = x' y'^T + row_offset[:, None]``.

        ``None`` when the measure is not an inner product of transformed inputs (then the blockwise
        memory-efficient losses cannot use it). ``row_offset`` is ``None`` when it is zero.
        """
        return None

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.pairwise(x, y)


class Distance(Measure):
    """A measure where smaller means closer; ``scores = -distance``."""

    def scores(self, x: Tensor, y: Tensor) -> Tensor:
        return -self.pairwise(x, y)

    def dissimilarities(self, x: Tensor, y: Tensor) -> Tensor:
        return self.pairwise(x, y)

    def paired_scores(self, x: Tensor, y: Tensor) -> Tensor:
        return -self.paired(x, y)

    def as_distance(self) -> Distance:
        return self


class Similarity(Measure):
    """A measure where larger means closer; ``scores = similarity``."""

    def scores(self, x: Tensor, y: Tensor) -> Tensor:
        return self.pairwise(x, y)

    def paired_scores(self, x: Tensor, y: Tensor) -> Tensor:
        return self.paired(x, y)

    def as_distance(self) -> Distance:
        """A non-negative distance with the same ordering, for losses defined on distances (Hadsell's).

        Only bounded similarities have one (cosine: ``1 - cos``); unbounded scores raise.
        """
        raise ValueError(
            f"{type(self).__name__} is an unbounded similarity with no non-negative distance of the same "
            "ordering; losses defined on distances (the contrastive margin loss) need a Distance or "
            "CosineSimilarity (used as 1 - cos)"
        )


class EuclideanDistance(Distance):
    r"""Euclidean distance :math:`d(x, y) = \lVert x - y \rVert_2` (gradient 0, not NaN, at x = y)."""

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        return safe_sqrt(squared_euclidean.pairwise(x, y))

    def paired(self, x: Tensor, y: Tensor) -> Tensor:
        return safe_sqrt(squared_euclidean.paired(x, y))


class SquaredEuclideanDistance(Distance):
    r"""Squared Euclidean distance :math:`d(x, y) = \lVert x - y \rVert_2^2`.

    Pairwise form uses :math:`\lVert x\rVert^2 + \lVert y\rVert^2 - 2 x^\top y` (one matrix product),
    clamped at 0 against round-off.
    """

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        x, y = _pair(x, y)
        x2 = x.pow(2).sum(1)  # (N,)
        y2 = y.pow(2).sum(1)  # (M,)
        d2 = torch.addmm(x2[:, None] + y2[None, :], x, y.T, alpha=-2.0)  # (N, M)
        return d2.clamp_min(0.0)

    def paired(self, x: Tensor, y: Tensor) -> Tensor:
        x, y = _pair(x, y)
        _paired_check(x, y)
        return (x - y).pow(2).sum(1)

    def score_factors(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        # -|x - y|^2 = [2x, -1] . [y, |y|^2] - |x|^2
        x, y = _pair(x, y)
        xf = torch.cat([2.0 * x, -torch.ones_like(x[:, :1])], dim=1)  # (N, D+1)
        yf = torch.cat([y, y.pow(2).sum(1, keepdim=True)], dim=1)  # (M, D+1)
        return xf, yf, -x.pow(2).sum(1)


class CosineSimilarity(Similarity):
    r"""Cosine similarity :math:`x^\top y / (\lVert x\rVert \lVert y\rVert)` in [-1, 1]; a zero vector scores 0."""

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        x, y = _pair(x, y)
        return normalize(x) @ normalize(y).T

    def paired(self, x: Tensor, y: Tensor) -> Tensor:
        x, y = _pair(x, y)
        _paired_check(x, y)
        return (normalize(x) * normalize(y)).sum(1)

    def score_factors(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        x, y = _pair(x, y)
        return normalize(x), normalize(y), None

    def as_distance(self) -> Distance:
        return cosine_distance


class CosineDistance(Distance):
    r"""Cosine distance :math:`1 - \cos(x, y)` in [0, 2]."""

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        return 1.0 - cosine.pairwise(x, y)

    def paired(self, x: Tensor, y: Tensor) -> Tensor:
        return 1.0 - cosine.paired(x, y)

    def score_factors(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        # -(1 - cos) = cos - 1
        xn, yn, _ = cosine.score_factors(x, y)
        return xn, yn, -torch.ones_like(xn[:, 0])


class DotProductSimilarity(Similarity):
    r"""Inner product :math:`x^\top y` (unbounded)."""

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        x, y = _pair(x, y)
        return x @ y.T

    def paired(self, x: Tensor, y: Tensor) -> Tensor:
        x, y = _pair(x, y)
        _paired_check(x, y)
        return (x * y).sum(1)

    def score_factors(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        return (*_pair(x, y), None)


class MahalanobisDistance(Distance):
    r"""Learnable Mahalanobis distance :math:`d(x, y) = \sqrt{(x - y)^\top M (x - y)}`, :math:`M = L L^\top`.

    Parameterising :math:`M` by its factor :math:`L \in \mathbb{R}^{D \times r}` keeps it positive
    semi-definite by construction for any value of the parameter (no projection step). With
    ``rank = r < D`` it is a low-rank metric (a learned linear projection to r dimensions followed by
    the Euclidean distance). Initialised at :math:`L = I` (the Euclidean distance) unless ``init="random"``.
    Survey section C notes the Mahalanobis distance as an untried choice for contrastive losses.
    """

    def __init__(self, dim: int, rank: int | None = None, init: str = "identity") -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"MahalanobisDistance: dim must be >= 1, got {dim}")
        rank = dim if rank is None else rank
        if not 1 <= rank <= dim:
            raise ValueError(f"MahalanobisDistance: rank must be in [1, {dim}], got {rank}")
        if init == "identity":
            factor = torch.eye(dim, rank)
        elif init == "random":
            factor = torch.randn(dim, rank) / math.sqrt(dim)
        else:
            raise ValueError(f"MahalanobisDistance: init must be 'identity' or 'random', got {init!r}")
        self.dim, self.rank = dim, rank
        self.factor = nn.Parameter(factor)  # L: (D, r)

    @property
    def metric(self) -> Tensor:
        """M = L L^T, (D, D), positive semi-definite."""
        return self.factor @ self.factor.T

    @full_precision
    def project(self, x: Tensor) -> Tensor:
        """x -> x L, so that d(x, y) = |x L - y L| (in float32 for bf16 / fp16 inputs, also under autocast)."""
        if x.shape[-1] != self.dim:
            raise ValueError(f"MahalanobisDistance: expected feature dim {self.dim}, got shape {tuple(x.shape)}")
        x = upcast(x, compute_dtype(x, self.factor))
        return x @ upcast(self.factor, x.dtype)

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        return euclidean.pairwise(self.project(x), self.project(y))

    def paired(self, x: Tensor, y: Tensor) -> Tensor:
        return euclidean.paired(self.project(x), self.project(y))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, rank={self.rank}"


class BilinearSimilarity(Similarity):
    r"""Bilinear score :math:`s(x, c) = x^\top W c` (CPC's :math:`z_{t+k}^\top W_k c_t`, Oord et al. 2018).

    ``W`` is (dim_x, dim_y); initialised to the identity when square (the dot product), else Xavier.
    """

    def __init__(self, dim_x: int, dim_y: int | None = None, bias: bool = False) -> None:
        super().__init__()
        dim_y = dim_x if dim_y is None else dim_y
        if dim_x < 1 or dim_y < 1:
            raise ValueError(f"BilinearSimilarity: dims must be >= 1, got {dim_x}, {dim_y}")
        weight = torch.eye(dim_x, dim_y) if dim_x == dim_y else nn.init.xavier_uniform_(torch.empty(dim_x, dim_y))
        self.dim_x, self.dim_y = dim_x, dim_y
        self.weight = nn.Parameter(weight)  # W: (Dx, Dy)
        self.bias = nn.Parameter(torch.zeros(())) if bias else None

    def _transform(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() != 2 or y.dim() != 2 or x.shape[1] != self.dim_x or y.shape[1] != self.dim_y:
            raise ValueError(f"BilinearSimilarity: expected (N, {self.dim_x}) and (M, {self.dim_y}), "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")
        dtype = compute_dtype(x, y, self.weight)
        x, y = upcast(x, dtype), upcast(y, dtype)
        return x @ upcast(self.weight, dtype), y  # (N, Dy), (M, Dy)

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        xw, y = self._transform(x, y)
        s = xw @ y.T
        return s if self.bias is None else s + self.bias

    def paired(self, x: Tensor, y: Tensor) -> Tensor:
        _paired_check(x, y)
        xw, y = self._transform(x, y)
        s = (xw * y).sum(1)
        return s if self.bias is None else s + self.bias

    def score_factors(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        xw, y = self._transform(x, y)
        offset = None if self.bias is None else self.bias.expand(xw.shape[0])
        return xw, y, offset

    def extra_repr(self) -> str:
        return f"dim_x={self.dim_x}, dim_y={self.dim_y}, bias={self.bias is not None}"


class MLPCritic(Similarity):
    r"""A learned critic :math:`f([x; y])` -- an MLP on the concatenated pair returning one score.

    The "concatenated critic" of Poole et al. 2019 ("On variational bounds of mutual information");
    the survey (E.6) notes InfoNCE's score may be an MLP. The pairwise form evaluates the first layer
    separably, :math:`W_1 [x; y] = W_x x + W_y y`, so the (N, M, hidden) activations are formed once
    without copying inputs N x M times.
    """

    def __init__(self, dim_x: int, dim_y: int | None = None, hidden: int = 128, layers: int = 2) -> None:
        super().__init__()
        dim_y = dim_x if dim_y is None else dim_y
        if layers < 1:
            raise ValueError(f"MLPCritic: layers must be >= 1, got {layers}")
        self.dim_x, self.dim_y = dim_x, dim_y
        self.first_x = nn.Linear(dim_x, hidden)
        self.first_y = nn.Linear(dim_y, hidden, bias=False)
        rest: list[nn.Module] = [nn.ReLU()]
        for _ in range(layers - 1):
            rest += [nn.Linear(hidden, hidden), nn.ReLU()]
        rest.append(nn.Linear(hidden, 1))
        self.rest = nn.Sequential(*rest)

    def _check(self, x: Tensor, y: Tensor) -> None:
        if x.dim() != 2 or y.dim() != 2 or x.shape[1] != self.dim_x or y.shape[1] != self.dim_y:
            raise ValueError(f"MLPCritic: expected (N, {self.dim_x}) and (M, {self.dim_y}), "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")

    def _cast(self, x: Tensor) -> Tensor:
        return upcast(x, self.first_x.weight.dtype if x.dtype != torch.float64 else x.dtype)

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        self._check(x, y)
        hx = self.first_x(self._cast(x))  # (N, H)
        hy = self.first_y(self._cast(y))  # (M, H)
        return self.rest(hx[:, None, :] + hy[None, :, :]).squeeze(-1)  # (N, M)

    def paired(self, x: Tensor, y: Tensor) -> Tensor:
        self._check(x, y)
        _paired_check(x, y)
        return self.rest(self.first_x(self._cast(x)) + self.first_y(self._cast(y))).squeeze(-1)  # (N,)

    def extra_repr(self) -> str:
        return f"dim_x={self.dim_x}, dim_y={self.dim_y}"


euclidean = EuclideanDistance()
squared_euclidean = SquaredEuclideanDistance()
cosine = CosineSimilarity()
cosine_distance = CosineDistance()
dot = DotProductSimilarity()

_BY_NAME: dict[str, Measure] = {
    "euclidean": euclidean,
    "squared_euclidean": squared_euclidean,
    "cosine": cosine,
    "cosine_distance": cosine_distance,
    "dot": dot,
}


def get_measure(measure: str | Measure) -> Measure:
    """A measure from its name (``euclidean``, ``squared_euclidean``, ``cosine``, ``cosine_distance``, ``dot``)
    or the measure itself."""
    if isinstance(measure, Measure):
        return measure
    if isinstance(measure, str) and measure in _BY_NAME:
        return _BY_NAME[measure]
    raise ValueError(f"unknown measure {measure!r}; expected a Measure or one of {sorted(_BY_NAME)}")
