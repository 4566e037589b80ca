r"""Mutual-information bounds: the InfoNCE and NWJ lower bounds and the CLUB upper bound (survey section E.5).

Contrastive learning maximises a *lower* bound on the mutual information between views; CLUB gives an
*upper* bound, used to minimise it (e.g. to remove information from a representation). Both are estimated
from a batch of N paired samples :math:`(x_i, y_i) \sim p(x, y)`, the pairs :math:`(x_i, y_j), j \ne i`
standing in for samples of :math:`p(x)p(y)`.

* InfoNCE (Oord et al. 2018, "Representation learning with contrastive predictive coding"; Poole et al.
  2019, "On variational bounds of mutual information"): for any critic :math:`f`, with each query scored
  against N candidates (its positive and N - 1 negatives),

  .. math::

      I(X; Y) \ge \log N - \mathcal{L}_N, \qquad
      \mathcal{L}_N = -\mathbb{E}\Bigl[\frac{1}{N}\sum_{i=1}^{N}
          \log \frac{e^{f(x_i, y_i)}}{\sum_{j=1}^{N} e^{f(x_i, y_j)}}\Bigr],

  and the estimate can never exceed :math:`\log N` (each log-softmax is :math:`\le 0`): with few
  candidates it saturates well below a large true MI.
* NWJ (Nguyen, Wainwright & Jordan 2010, "Estimating divergence functionals and the likelihood ratio by
  convex risk minimization"; the f-GAN KL form, Nowozin et al. 2016; Poole et al. 2019, eq. 10):

  .. math::

      I(X; Y) \ge \mathbb{E}_{p(x, y)}[f(x, y)] - e^{-1}\,\mathbb{E}_{p(x)p(y)}\bigl[e^{f(x, y)}\bigr],

  tight for :math:`f^* = 1 + \log p(y|x) / p(y)`. Not capped by :math:`\log N`, but its batch estimate has a
  variance that grows like :math:`e^{I}` (Poole et al. 2019; Song & Ermon 2020).
* Critics (Poole et al. 2019, section 4): *separable* :math:`f(x, y) = g(x)^\top h(y)` with two MLPs
  (:class:`SeparableCritic`, optionally with linear shortcuts; N + N network passes for N x N scores) or
  *concatenated* :math:`f([x; y])` (:class:`~contrastkit.similarity.MLPCritic`; N x N passes);
  :func:`make_critic` builds either by name.
* CLUB (Cheng et al. 2020, "CLUB: A Contrastive Log-ratio Upper Bound of Mutual Information", ICML):
  with a variational conditional :math:`q_\theta(y|x)` fitted by maximum likelihood,

  .. math::

      \hat I_{CLUB} = \frac{1}{N}\sum_{i=1}^{N} \log q_\theta(y_i | x_i)
          - \frac{1}{N^2}\sum_{i=1}^{N}\sum_{j=1}^{N} \log q_\theta(y_j | x_i),

  an upper bound on :math:`I(X; Y)` when :math:`q_\theta` is close enough to :math:`p(y|x)` (their
  Theorem 3.1 for the true conditional; Theorem 3.2 for a good variational one). The sampled variant
  replaces the inner mean over :math:`j` by one random :math:`j = \pi(i)` of a permutation :math:`\pi`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contrastkit._checks import check_positive, check_tensor, checks_enabled, compute_dtype, upcast
from contrastkit.precision import full_precision
from contrastkit.similarity import Measure, MLPCritic, Similarity, get_measure

__all__ = [
    "CLUB",
    "CRITICS",
    "InfoNCEEstimator",
    "NWJEstimator",
    "SeparableCritic",
    "infonce_estimate",
    "infonce_lower_bound",
    "make_critic",
    "nwj_estimate",
]

#: critic names accepted by :func:`make_critic`
CRITICS = ("separable", "concat")


def _check_pairs(x: object, y: object, where: str, min_rows: int = 1) -> tuple[Tensor, Tensor]:
    """Check paired batches x (N, Dx), y (N, Dy) with N >= min_rows."""
    x = check_tensor(x, "x", where, ndim=2)
    y = check_tensor(y, "y", where, ndim=2)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{where}: `x` and `y` must hold the same number of paired samples, "
                         f"got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{where}: needs at least {min_rows} paired sample(s), got {x.shape[0]}")
    return x, y


def infonce_lower_bound(loss: Tensor | float, num_candidates: int) -> Tensor:
    r"""The InfoNCE lower bound :math:`I(X; Y) \ge \log N - \mathcal{L}_N` (Oord et al. 2018; Poole et al. 2019).

    Args:
        loss: the InfoNCE loss :math:`\mathcal{L}_N` in nats -- the cross-entropy of picking the positive,
            averaged over queries (a scalar, or any tensor of such values; applied elementwise).
        num_candidates: N, how many candidates each query was scored against: 1 positive plus N - 1
            negatives (for in-batch negatives on a batch of N pairs, the batch size). Not the number of
            negatives: with K negatives pass K + 1.

    Returns:
        :math:`\log N - \mathcal{L}_N`, at most :math:`\log N` since the cross-entropy is non-negative.
    """
    where = "infonce_lower_bound"
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int) or num_candidates < 2:
        raise ValueError(f"{where}: `num_candidates` must be an integer >= 2 (1 positive + at least 1 "
                         f"negative), got {num_candidates!r}")
    if not isinstance(loss, Tensor):
        if isinstance(loss, bool) or not isinstance(loss, (int, float)):
            raise TypeError(f"{where}: `loss` must be a tensor or a number, got {type(loss).__name__}")
        loss = torch.tensor(float(loss), dtype=torch.float64)
    loss = check_tensor(loss, "loss", where)
    return math.log(num_candidates) - upcast(loss, compute_dtype(loss))


def infonce_estimate(x: Tensor, y: Tensor, critic: str | Measure = "dot", temperature: float = 1.0) -> Tensor:
    r"""InfoNCE estimate of :math:`I(X; Y)` from N paired samples, in nats; at most :math:`\log N`.

    Critic :math:`f(x, y) = \text{scores}(x, y) / \tau` from any :mod:`contrastkit.similarity` measure
    (``"dot"``, ``"cosine"``, a distance, :class:`~contrastkit.similarity.BilinearSimilarity`,
    :class:`~contrastkit.similarity.MLPCritic`, ...). Row ``i`` of the (N, N) score matrix scores query
    :math:`x_i` against all candidates :math:`y_j`; its positive is on the diagonal:

    .. math:: \hat I = \log N + \frac{1}{N}\sum_i \log \operatorname{softmax}_j f(x_i, y_j)\big|_{j=i}
       = \log N - \mathcal{L}_N.

    Differentiable: maximise it to train the critic (and encoders producing ``x``, ``y``).

    Args:
        x: (N, Dx) samples of X; y: (N, Dy) the paired samples of Y (``y[i]`` goes with ``x[i]``), N >= 2.
        critic: a measure or its name (see :func:`contrastkit.similarity.get_measure`).
        temperature: :math:`\tau > 0` dividing the scores.
    """
    where = "infonce_estimate"
    x, y = _check_pairs(x, y, where, min_rows=2)
    measure = get_measure(critic)
    tau = check_positive(temperature, "temperature", where)
    n = x.shape[0]
    logits = measure.scores(x, y)  # (N, N), row i: query x_i against candidates y_j
    logits = upcast(logits, compute_dtype(logits)) / tau
    log_prob_positive = torch.diagonal(F.log_softmax(logits, dim=1))  # (N,)
    return math.log(n) + log_prob_positive.mean()


class InfoNCEEstimator(nn.Module):
    """:func:`infonce_estimate` with its critic held as a submodule (so its parameters train with the module).

    ``forward(x, y)`` returns the estimate (maximise it); ``loss(x, y)`` its negation, the InfoNCE loss
    minus log N.
    """

    def __init__(self, critic: str | Measure = "dot", temperature: float = 1.0) -> None:
        super().__init__()
        self.critic = get_measure(critic)
        self.temperature = check_positive(temperature, "temperature", "InfoNCEEstimator")

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return infonce_estimate(x, y, self.critic, self.temperature)

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        return -self.forward(x, y)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


def _mlp(dim_in: int, hidden: int, layers: int, dim_out: int) -> nn.Sequential:
    """dim_in -> hidden (ReLU) -> ... (``layers`` hidden layers) -> dim_out."""
    modules: list[nn.Module] = [nn.Linear(dim_in, hidden), nn.ReLU()]
    for _ in range(layers - 1):
        modules += [nn.Linear(hidden, hidden), nn.ReLU()]
    modules.append(nn.Linear(hidden, dim_out))
    return nn.Sequential(*modules)


def _check_size(value: object, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}: `{name}` must be an integer >= 1, got {value!r}")
    return value


class SeparableCritic(Similarity):
    r"""The separable critic of Poole et al. 2019: :math:`f(x, y) = g(x)^\top h(y)`, two MLPs
    ``dim_x -> hidden x layers -> embed_dim`` and ``dim_y -> ... -> embed_dim`` (ReLU).

    With ``linear_skip=True`` each tower also gets a linear shortcut (no bias),
    :math:`g(x) = \mathrm{MLP}_g(x) + A x` and :math:`h(y) = \mathrm{MLP}_h(y) + B y`, so the critic holds
    every bilinear form :math:`x^\top A^\top B y` (rank up to ``embed_dim``) exactly rather than as a
    product of two piecewise-linear ReLU maps. For Gaussians this is the bulk of the optimal critic: with
    :math:`y = \rho x + \sqrt{1 - \rho^2}\,\varepsilon` per coordinate, :math:`\log p(y|x) / p(y) =
    \frac{\rho}{1 - \rho^2}\, x^\top y - \frac{\rho^2}{2(1 - \rho^2)} \lVert y\rVert^2 + c(x)`; the
    shortcut gives the first term, and the y-only second term is a constant output of g (its last layer's
    bias) times an output of h. It is off by default (the critic of the paper).

    All N x M scores cost N + M network passes and one matrix product. Inputs are cast to the parameters'
    dtype (call ``.double()`` on the critic for float64 work).
    """

    def __init__(self, dim_x: int, dim_y: int | None = None, hidden: int = 256, layers: int = 2,
                 embed_dim: int = 32, linear_skip: bool = False) -> None:
        super().__init__()
        dim_y = dim_x if dim_y is None else dim_y
        for name, value in (("dim_x", dim_x), ("dim_y", dim_y), ("hidden", hidden), ("layers", layers),
                            ("embed_dim", embed_dim)):
            _check_size(value, name, "SeparableCritic")
        if not isinstance(linear_skip, bool):
            raise TypeError(f"SeparableCritic: `linear_skip` must be a bool, got {linear_skip!r}")
        self.dim_x, self.dim_y = dim_x, dim_y
        self.linear_skip = linear_skip
        self.g = _mlp(dim_x, hidden, layers, embed_dim)
        self.h = _mlp(dim_y, hidden, layers, embed_dim)
        self.g_skip = nn.Linear(dim_x, embed_dim, bias=False) if linear_skip else None
        self.h_skip = nn.Linear(dim_y, embed_dim, bias=False) if linear_skip else None

    def _embed(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if x.dim() != 2 or y.dim() != 2 or x.shape[1] != self.dim_x or y.shape[1] != self.dim_y:
            raise ValueError(f"SeparableCritic: expected (N, {self.dim_x}) and (M, {self.dim_y}), "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")
        dtype = self.g[0].weight.dtype
        x, y = upcast(x, dtype), upcast(y, dtype)
        gx, hy = self.g(x), self.h(y)  # (N, E), (M, E)
        if self.g_skip is not None and self.h_skip is not None:
            gx, hy = gx + self.g_skip(x), hy + self.h_skip(y)
        return gx, hy

    def pairwise(self, x: Tensor, y: Tensor) -> Tensor:
        gx, hy = self._embed(x, y)
        return gx @ hy.T  # (N, M)

    def paired(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"paired form needs the same number of rows, got {x.shape[0]} and {y.shape[0]}")
        gx, hy = self._embed(x, y)
        return (gx * hy).sum(1)  # (N,)

    def score_factors(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        gx, hy = self._embed(x, y)
        return gx, hy, None

    def extra_repr(self) -> str:
        return f"dim_x={self.dim_x}, dim_y={self.dim_y}, linear_skip={self.linear_skip}"


def make_critic(name: str, dim_x: int, dim_y: int | None = None, hidden: int = 256, layers: int = 2,
                embed_dim: int = 32, linear_skip: bool = False) -> Similarity:
    """A learned critic by name: ``"separable"`` (:class:`SeparableCritic`, g(x)^T h(y)) or ``"concat"``
    (:class:`~contrastkit.similarity.MLPCritic`, an MLP on [x; y]); ``embed_dim`` and ``linear_skip`` (the
    towers' linear shortcuts) are used by the separable one."""
    where = "make_critic"
    dim_y = dim_x if dim_y is None else dim_y
    for size_name, value in (("dim_x", dim_x), ("dim_y", dim_y), ("hidden", hidden), ("layers", layers)):
        _check_size(value, size_name, where)
    if name == "separable":
        return SeparableCritic(dim_x, dim_y, hidden=hidden, layers=layers, embed_dim=embed_dim,
                               linear_skip=linear_skip)
    if name == "concat":
        return MLPCritic(dim_x, dim_y, hidden=hidden, layers=layers)
    raise ValueError(f"{where}: unknown critic {name!r}; expected one of {list(CRITICS)}")


def nwj_estimate(x: Tensor, y: Tensor, critic: str | Measure = "dot") -> Tensor:
    r"""NWJ estimate of :math:`I(X; Y)` from N paired samples, in nats (Nguyen, Wainwright & Jordan 2010;
    Poole et al. 2019, eq. 10):

    .. math:: \hat I_{NWJ} = \frac1N\sum_i f(x_i, y_i)
       - e^{-1}\,\frac{1}{N(N-1)}\sum_{i \ne j} e^{f(x_i, y_j)},

    the N(N - 1) off-diagonal pairs standing in for samples of :math:`p(x)p(y)`. For a fixed critic its
    expectation is at most :math:`I(X; Y)` (with equality at :math:`f^* = 1 + \log p(y|x)/p(y)`); one batch
    may exceed it by sampling noise, and nothing caps it at :math:`\log N`. The second term is formed as
    :math:`\exp(\operatorname{logmeanexp}_{i \ne j} f_{ij} - 1)` so large scores do not overflow early; if
    it still overflows, a ValueError (with the ``"values"`` checks on), not an infinite estimate.

    Args:
        x: (N, Dx) samples of X; y: (N, Dy) the paired samples of Y, N >= 2.
        critic: a measure or its name (:func:`contrastkit.similarity.get_measure`), e.g. a
            :class:`SeparableCritic` or :class:`~contrastkit.similarity.MLPCritic`; scores are its ``scores``.
    """
    where = "nwj_estimate"
    x, y = _check_pairs(x, y, where, min_rows=2)
    measure = get_measure(critic)
    n = x.shape[0]
    scores = measure.scores(x, y)  # (N, N), f(x_i, y_j)
    scores = upcast(scores, compute_dtype(scores))
    joint = torch.diagonal(scores).mean()  # E_p[f]
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=scores.device)  # (N, N)
    masked = scores.masked_fill(~off_diagonal, float("-inf"))  # (N, N)
    log_mean_exp = torch.logsumexp(masked.reshape(-1), dim=0) - math.log(n * (n - 1))
    marginal = torch.exp(log_mean_exp - 1.0)  # e^{-1} E_{p(x)p(y)}[e^f]
    if checks_enabled("values") and not bool(torch.isfinite(marginal)):
        raise ValueError(f"{where}: e^f overflowed {scores.dtype} on the pairs (x_i, y_j), i != j (largest score "
                         f"{float(scores.detach().max()):.4g}); the critic's scores are too large")
    return joint - marginal


class NWJEstimator(nn.Module):
    """:func:`nwj_estimate` with its critic held as a submodule. ``forward(x, y)`` is the estimate (maximise
    it); ``loss(x, y)`` its negation."""

    def __init__(self, critic: str | Measure = "dot") -> None:
        super().__init__()
        self.critic = get_measure(critic)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return nwj_estimate(x, y, self.critic)

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        return -self.forward(x, y)


class CLUB(nn.Module):
    r"""Contrastive Log-ratio Upper Bound of mutual information (Cheng et al. 2020) with a Gaussian
    variational conditional :math:`q_\theta(y|x) = \mathcal{N}\bigl(\mu(x), \operatorname{diag}\,\sigma^2(x)\bigr)`.

    :math:`\mu` and :math:`\log\sigma^2` are two MLPs (``dim_x -> hidden -> dim_y``, ReLU);
    :math:`\log\sigma^2` passes through :math:`b \tanh(\cdot / b)` with ``b = log_var_bound`` so the
    variance stays in :math:`[e^{-b}, e^{b}]` without a hard clamp.

    The bounds need N >= 2 pairs (one pair gives an identically zero, meaningless estimate: a ValueError);
    fitting q (:meth:`learning_loss`) takes N >= 1.

    Use: alternate a step on :meth:`learning_loss` (fit q by maximum likelihood, with ``x``, ``y``
    detached if they come from encoders) and a step using :meth:`upper_bound` (the estimate, or a
    penalty to minimise MI).

    The all-pairs term needs no (N, N, D) or even (N, N) tensor: for a Gaussian,
    :math:`\frac1N\sum_j (y_{jd} - \mu_{id})^2 = (\mu_{id} - \bar y_d)^2 + v_d` with :math:`\bar y`, :math:`v`
    the per-dimension mean and (biased) variance of the batch of y -- O(N D) time and memory. The terms
    :math:`-\frac12\log\sigma^2_{id} - \frac12\log 2\pi` are the same in both sums and cancel.

    Args:
        dim_x, dim_y: dimensions of x and y.
        hidden: width of the hidden layer of both MLPs.
        sampled: ``forward`` uses :meth:`sampled_upper_bound` (CLUB-sample) instead of the all-pairs form.
        log_var_bound: b > 0 above.
    """

    def __init__(self, dim_x: int, dim_y: int, hidden: int = 64, sampled: bool = False,
                 log_var_bound: float = 10.0) -> None:
        super().__init__()
        for name, value in (("dim_x", dim_x), ("dim_y", dim_y), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CLUB: `{name}` must be an integer >= 1, got {value!r}")
        self.dim_x, self.dim_y = dim_x, dim_y
        self.sampled = bool(sampled)
        self.log_var_bound = check_positive(log_var_bound, "log_var_bound", "CLUB")
        self.mean_net = nn.Sequential(nn.Linear(dim_x, hidden), nn.ReLU(), nn.Linear(hidden, dim_y))
        self.log_var_net = nn.Sequential(nn.Linear(dim_x, hidden), nn.ReLU(), nn.Linear(hidden, dim_y))

    def _inputs(self, x: object, y: object, where: str, min_rows: int = 1) -> tuple[Tensor, Tensor]:
        x, y = _check_pairs(x, y, where, min_rows=min_rows)
        if x.shape[1] != self.dim_x or y.shape[1] != self.dim_y:
            raise ValueError(f"{where}: expected x (N, {self.dim_x}) and y (N, {self.dim_y}), "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")
        return x, y

    @full_precision
    def conditional(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of :math:`q(y|x)`, each (N, dim_y), in at least float32 (also under autocast).

        ``x`` is cast to the parameters' dtype (call ``.double()`` on the module for float64 work).
        """
        x = x.to(self.mean_net[0].weight.dtype)
        mean = self.mean_net(x)  # (N, Dy)
        b = self.log_var_bound
        log_var = b * torch.tanh(self.log_var_net(x) / b)  # (N, Dy), in [-b, b]
        dtype = compute_dtype(mean)
        return upcast(mean, dtype), upcast(log_var, dtype)

    def _moments(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mean, log_var = self.conditional(x)
        dtype = compute_dtype(mean, y)
        return upcast(mean, dtype), upcast(log_var, dtype), upcast(y, dtype)

    def log_likelihood(self, x: Tensor, y: Tensor) -> Tensor:
        r""":math:`\log q_\theta(y_i | x_i)` for each pair, shape (N,) (the full Gaussian log-density)."""
        x, y = self._inputs(x, y, "CLUB.log_likelihood")
        mean, log_var, y = self._moments(x, y)
        squared = (y - mean).pow(2) * torch.exp(-log_var)  # (N, Dy)
        return -0.5 * (squared + log_var + math.log(2 * math.pi)).sum(1)

    def learning_loss(self, x: Tensor, y: Tensor) -> Tensor:
        """Negative mean log-likelihood of q on the pairs: minimise it to fit q(y|x)."""
        return -self.log_likelihood(x, y).mean()

    def upper_bound(self, x: Tensor, y: Tensor) -> Tensor:
        r"""All-pairs CLUB estimate :math:`\frac1N\sum_i \log q(y_i|x_i) - \frac1{N^2}\sum_{i,j}\log q(y_j|x_i)`."""
        x, y = self._inputs(x, y, "CLUB.upper_bound", min_rows=2)  # one pair has no (x_i, y_j), j != i
        mean, log_var, y = self._moments(x, y)
        precision = torch.exp(-log_var)  # (N, Dy)
        positive = -0.5 * ((y - mean).pow(2) * precision).sum(1)  # (N,)
        y_mean = y.mean(0)  # (Dy,)
        y_var = (y - y_mean).pow(2).mean(0)  # (Dy,), biased: (1/N) sum_j
        negative = -0.5 * (((mean - y_mean).pow(2) + y_var) * precision).sum(1)  # (N,) mean_j log q(y_j|x_i)
        return (positive - negative).mean()

    def sampled_upper_bound(self, x: Tensor, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""CLUB-sample: :math:`\frac1N\sum_i [\log q(y_i|x_i) - \log q(y_{\pi(i)}|x_i)]` for a uniformly
        random permutation :math:`\pi` (``torch.randperm`` with ``generator``, on ``y``'s device); its
        expectation over :math:`\pi` is :meth:`upper_bound`."""
        x, y = self._inputs(x, y, "CLUB.sampled_upper_bound", min_rows=2)  # one pair has no (x_i, y_j), j != i
        mean, log_var, y = self._moments(x, y)
        precision = torch.exp(-log_var)  # (N, Dy)
        permutation = torch.randperm(y.shape[0], generator=generator, device=y.device)  # (N,)
        positive = -0.5 * ((y - mean).pow(2) * precision).sum(1)  # (N,)
        negative = -0.5 * ((y[permutation] - mean).pow(2) * precision).sum(1)  # (N,)
        return (positive - negative).mean()

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.sampled_upper_bound(x, y) if self.sampled else self.upper_bound(x, y)

    def extra_repr(self) -> str:
        return f"dim_x={self.dim_x}, dim_y={self.dim_y}, sampled={self.sampled}"
