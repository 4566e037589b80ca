r"""Noise-contrastive estimation as density estimation (survey section E.4; Gutmann & Hyvärinen 2010, 2012).

An unnormalised model with a *free* log-normaliser :math:`c`,

.. math::

    \log p_m(u; \theta, c) = \log \varphi(u; \theta) + c,

is fitted by telling the :math:`T_d` data samples :math:`x_t` apart from :math:`T_n = \nu T_d` samples
:math:`y_t` of a known noise density :math:`p_n` with logistic regression (Gutmann & Hyvärinen 2010,
"Noise-contrastive estimation: A new estimation principle for unnormalized statistical models", AISTATS;
2012, "Noise-contrastive estimation of unnormalized statistical models, with applications to natural image
statistics", JMLR 13):

.. math::

    G(u) = \log p_m(u) - \log p_n(u), \qquad h(u) = \frac{1}{1 + \nu\, e^{-G(u)}},

    J_T(\theta, c) = \frac{1}{T_d}\Bigl[\sum_{t=1}^{T_d} \log h(x_t)
                     + \sum_{t=1}^{T_n} \log\bigl(1 - h(y_t)\bigr)\Bigr].

:math:`c` is not imposed: at the maximiser, :math:`c \to -\log Z(\theta)` with
:math:`Z(\theta) = \int \varphi(u; \theta)\,du`, and the estimator's variance falls towards that of maximum
likelihood as :math:`\nu` grows, for any noise whose support covers the data's (2012, Corollary 7).

The objective is :func:`contrastkit.losses.nce.nce_loss` (through :class:`~contrastkit.losses.nce.NCELoss`,
:math:`\text{loss} = -J_T`); this module adds the models whose :math:`Z(\theta)` has a closed form, so the
learned :math:`c` can be checked against :math:`-\log Z`, and :func:`fit_nce`, the paper's setting: one
fixed noise sample, full-batch L-BFGS.

* :class:`UnnormalisedGaussian` -- :math:`\log\varphi(u) = \eta^\top u - \tfrac12 u^\top \Lambda u`
  (natural parameters: :math:`J_T` is concave), :math:`\log Z = \tfrac{D}{2}\log 2\pi
  - \tfrac12\log\det\Lambda + \tfrac12 \eta^\top \Lambda^{-1}\eta`;
* :class:`UnnormalisedGaussianMixture` -- :math:`\varphi(u) = \sum_j \pi_j
  \exp\bigl(-\tfrac12 \sum_d (u_d - \mu_{jd})^2 / s_{jd}^2\bigr)`, :math:`\pi = \mathrm{softmax}(a)`,
  :math:`Z = \sum_j \pi_j \prod_d \sqrt{2\pi}\, s_{jd}`.

Example::

    model = UnnormalisedGaussian(dim=1)
    noise = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(1, dtype=torch.float64),
                                                                       torch.full((1,), 2.0, dtype=torch.float64)), 1)
    fit = fit_nce(model, data, noise, num_noise=10, seed=0)   # data: (N, 1) float64
    fit.log_c, fit.neg_log_z                                  # learned c and the true -log Z(theta_hat)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from contrastkit._checks import check_tensor
from contrastkit.losses.nce import NCELoss

__all__ = ["NCEFit", "UnnormalisedGaussian", "UnnormalisedGaussianMixture", "fit_nce", "nce_objective"]

_LOG_2PI = math.log(2.0 * math.pi)


class _Unnormalised(nn.Module, ABC):
    """Shared part: ``forward(u) = log_unnormalised(u) + log_c``; subclasses give ``log Z`` in closed form."""

    dim: int
    log_c: nn.Parameter

    @abstractmethod
    def log_unnormalised(self, u: Tensor) -> Tensor:  # (B, D) -> (B,)
        """:math:`\\log\\varphi(u; \\theta)`, the model's log-density up to its normaliser."""

    @abstractmethod
    def log_normaliser(self) -> Tensor:
        """:math:`\\log Z(\\theta)`, a scalar (differentiable in the parameters)."""

    def forward(self, u: Tensor) -> Tensor:
        """:math:`\\log p_m(u) = \\log\\varphi(u;\\theta) + c`: (B, D) -> (B,)."""
        if u.dim() != 2 or u.shape[1] != self.dim:
            raise ValueError(f"{type(self).__name__}: input must have shape (B, {self.dim}), got {tuple(u.shape)}")
        return self.log_unnormalised(u) + self.log_c

    def log_prob(self, u: Tensor) -> Tensor:
        """The normalised model density :math:`\\log\\varphi(u) - \\log Z`: (B, D) -> (B,)."""
        return self.log_unnormalised(u) - self.log_normaliser()


class UnnormalisedGaussian(_Unnormalised):
    r"""D-dim Gaussian without its normaliser, in natural parameters:
    :math:`\log\varphi(u) = \eta^\top u - \tfrac12 u^\top \Lambda u`, :math:`\Lambda = (P + P^\top)/2`.

    Parameters: ``eta`` (D,), ``raw_precision`` :math:`P` (D, D) and ``log_c`` (), the free log-normaliser.
    :math:`\log p_m` is linear in :math:`(\eta, P, c)`, so :math:`J_T` is concave (a logistic regression on
    the features :math:`u, u u^\top, 1`) and L-BFGS reaches its unique maximiser from the start
    :math:`\mathcal N(0, I)`, :math:`c = 0` (a Cholesky parameterisation of :math:`\Lambda` has plateaus
    where a fit can stall). Mean :math:`\mu = \Lambda^{-1}\eta`, covariance :math:`\Lambda^{-1}`; for a
    positive-definite :math:`\Lambda = C C^\top`,
    :math:`\log Z = \tfrac{D}{2}\log 2\pi - \sum_d \log C_{dd} + \tfrac12 \eta^\top\Lambda^{-1}\eta`,
    otherwise :math:`Z = \infty` (the fit is not a density; it happens only with very few samples).
    """

    def __init__(self, dim: int, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"UnnormalisedGaussian: `dim` must be an integer >= 1, got {dim!r}")
        self.dim = dim
        self.eta = nn.Parameter(torch.zeros(dim, dtype=dtype))  # (D,)
        self.raw_precision = nn.Parameter(torch.eye(dim, dtype=dtype))  # (D, D), symmetrised
        self.log_c = nn.Parameter(torch.zeros((), dtype=dtype))  # ()

    @torch.no_grad()
    def set_moments(self, mean: Tensor, covariance: Tensor) -> UnnormalisedGaussian:
        """Set the parameters to the Gaussian of ``mean`` (D,) and ``covariance`` (D, D); c is left alone."""
        precision = torch.linalg.inv(covariance.to(self.eta.dtype))  # (D, D)
        self.raw_precision.copy_(0.5 * (precision + precision.T))
        self.eta.copy_(precision @ mean.to(self.eta.dtype))
        return self

    def precision(self) -> Tensor:
        r""":math:`\Lambda` (D, D), symmetric."""
        return 0.5 * (self.raw_precision + self.raw_precision.T)

    def log_unnormalised(self, u: Tensor) -> Tensor:
        quadratic = ((u @ self.precision()) * u).sum(dim=1)  # (B,): u^T Lambda u
        return u @ self.eta - 0.5 * quadratic  # (B,)

    def log_normaliser(self) -> Tensor:
        chol, info = torch.linalg.cholesky_ex(self.precision())  # (D, D), Lambda = C C^T
        if int(info) != 0:
            return torch.full((), math.inf, dtype=self.eta.dtype, device=self.eta.device)
        mean = torch.cholesky_solve(self.eta[:, None], chol)[:, 0]  # (D,): Lambda^{-1} eta
        return 0.5 * self.dim * _LOG_2PI - chol.diagonal().log().sum() + 0.5 * (self.eta @ mean)

    def covariance(self) -> Tensor:
        r""":math:`\Sigma = \Lambda^{-1}` (D, D)."""
        return torch.linalg.inv(self.precision())

    def mean(self) -> Tensor:
        r""":math:`\mu = \Lambda^{-1}\eta` (D,)."""
        return torch.linalg.solve(self.precision(), self.eta)

    def parameters_vector(self) -> Tensor:
        """(mean, lower triangle of the covariance, row-major): (D + D(D+1)/2,), for parameter errors."""
        rows, cols = torch.tril_indices(self.dim, self.dim)
        return torch.cat([self.mean(), self.covariance()[rows, cols]]).detach()


class UnnormalisedGaussianMixture(_Unnormalised):
    r"""Mixture of J axis-aligned Gaussians without the normaliser (weights sum to 1, the scale is left to c).

    :math:`\log\varphi(u) = \log\sum_j \pi_j \exp\bigl(-\tfrac12 \sum_d (u_d - \mu_{jd})^2 / s_{jd}^2\bigr)`,
    :math:`\pi = \mathrm{softmax}(a)`; parameters ``logits`` (J,), ``means`` (J, D), ``log_stds`` (J, D),
    ``log_c`` (). True :math:`\log Z = \log\sum_j \pi_j \prod_d \sqrt{2\pi}\,s_{jd}`. NCE's objective is not
    concave here: start from :meth:`init_from_data`.
    """

    def __init__(self, num_components: int, dim: int = 1, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        for name, value in (("num_components", num_components), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"UnnormalisedGaussianMixture: `{name}` must be an integer >= 1, got {value!r}")
        self.dim = dim
        self.num_components = num_components
        self.logits = nn.Parameter(torch.zeros(num_components, dtype=dtype))  # (J,)
        self.means = nn.Parameter(torch.zeros(num_components, dim, dtype=dtype))  # (J, D)
        self.log_stds = nn.Parameter(torch.zeros(num_components, dim, dtype=dtype))  # (J, D)
        self.log_c = nn.Parameter(torch.zeros((), dtype=dtype))  # ()

    @torch.no_grad()
    def init_from_data(self, data: Tensor) -> UnnormalisedGaussianMixture:
        """Deterministic start: equal weights, means at the (j + 1/2)/J quantiles of the data along its first
        coordinate, every std the data's std, c = 0. ``data``: (N, D)."""
        data = _check_data(data, self.dim, "UnnormalisedGaussianMixture.init_from_data")
        order = data[:, 0].argsort()
        picks = ((torch.arange(self.num_components, dtype=torch.float64) + 0.5) / self.num_components
                 * data.shape[0]).long()
        self.logits.zero_()
        self.means.copy_(data[order[picks]])
        std = data.std(dim=0) if data.shape[0] > 1 else torch.ones(self.dim, dtype=data.dtype)
        self.log_stds.copy_(std.clamp_min(1e-6).log().expand(self.num_components, -1))
        self.log_c.zero_()
        return self

    def weights(self) -> Tensor:
        """The weights of the *normalised* mixture, :math:`w_j = \\pi_j \\prod_d s_{jd} / \\sum_k \\pi_k
        \\prod_d s_{kd}` (the components of :math:`\\varphi` are unnormalised, so :math:`w \\ne \\pi`): (J,)."""
        return (self.logits + self.log_stds.sum(dim=1)).softmax(dim=0)

    def log_unnormalised(self, u: Tensor) -> Tensor:
        z = (u[:, None, :] - self.means) / self.log_stds.exp()  # (B, J, D)
        per_component = self.logits.log_softmax(dim=0) - 0.5 * (z * z).sum(dim=2)  # (B, J)
        return per_component.logsumexp(dim=1)  # (B,)

    def log_normaliser(self) -> Tensor:
        per_component = 0.5 * self.dim * _LOG_2PI + self.log_stds.sum(dim=1)  # (J,)
        return (self.logits.log_softmax(dim=0) + per_component).logsumexp(dim=0)

    def parameters_vector(self) -> Tensor:
        """(normalised weights, means, stds) with components sorted by their first mean coordinate (label switching):
        (J + 2 J D,), for parameter errors."""
        order = self.means[:, 0].argsort()
        return torch.cat([self.weights()[order], self.means[order].flatten(),
                          self.log_stds[order].exp().flatten()]).detach()


@dataclass(frozen=True)
class NCEFit:
    """The result of :func:`fit_nce`: learned and true log-normaliser at the fitted parameters."""

    log_c: float  # learned c
    neg_log_z: float  # -log Z(theta_hat), the value c should take (-inf if the fit has no finite Z)
    c_error: float  # |c - (-log Z(theta_hat))| (inf if the fit has no finite Z)
    loss: float  # -J_T at the end
    evaluations: int  # objective evaluations used by L-BFGS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_data(data: object, dim: int, where: str) -> Tensor:
    data = check_tensor(data, "data", where, ndim=2)  # NaN/Inf -> ValueError
    if data.shape[0] == 0:
        raise ValueError(f"{where}: `data` has no samples (shape {tuple(data.shape)})")
    if data.shape[1] != dim:
        raise ValueError(f"{where}: `data` must have shape (N, {dim}), got {tuple(data.shape)}")
    return data


def _check_noise(noise: object, dim: int, where: str) -> Distribution:
    if not isinstance(noise, Distribution):
        raise TypeError(f"{where}: `noise` must be a torch.distributions.Distribution, got {type(noise).__name__}")
    if tuple(noise.event_shape) != (dim,):
        raise ValueError(f"{where}: the noise distribution must have event shape ({dim},) to match the model "
                         f"(for independent coordinates wrap it in Independent(..., 1)), "
                         f"got {tuple(noise.event_shape)}")
    return noise


def _check_num_noise(num_noise: object, where: str) -> int:
    if isinstance(num_noise, bool) or not isinstance(num_noise, int) or num_noise < 1:
        raise ValueError(f"{where}: `num_noise` (K, noise samples per data sample) must be an integer >= 1, "
                         f"got {num_noise!r}")
    return num_noise


def nce_objective(model: _Unnormalised, data: Tensor, noise: Distribution, noise_samples: Tensor) -> Tensor:
    """:math:`-J_T(\\theta, c)` of the module docstring for ``model`` on ``data`` (N, D) against the fixed
    ``noise_samples`` (N, K, D) of ``noise``; K = ``noise_samples.shape[1]`` is the noise ratio :math:`\\nu`."""
    where = "nce_objective"
    data = _check_data(data, model.dim, where)
    noise = _check_noise(noise, model.dim, where)
    noise_samples = check_tensor(noise_samples, "noise_samples", where, ndim=3)
    num_noise = _check_num_noise(noise_samples.shape[1], where)
    return NCELoss(noise, num_noise)(model, data, noise_samples)


def fit_nce(
    model: _Unnormalised,
    data: Tensor,
    noise: Distribution,
    num_noise: int,
    *,
    seed: int = 0,
    noise_samples: Tensor | None = None,
    max_evaluations: int = 2000,
) -> NCEFit:
    """Maximise :math:`J_T` over ``model``'s parameters (in place) with full-batch L-BFGS on one fixed noise
    sample, the setting of Gutmann & Hyvärinen; returns the learned c against :math:`-\\log Z(\\hat\\theta)`.

    Args:
        model: an :class:`UnnormalisedGaussian` or :class:`UnnormalisedGaussianMixture` (or any module with
            ``forward`` (B, D) -> (B,), ``log_normaliser()``, ``log_c``, ``dim``), fitted in its own dtype.
        data: (N, D) data samples, finite, N >= 1.
        noise: the noise density :math:`p_n`, a distribution with event shape (D,) and empty batch shape.
        num_noise: K >= 1, noise samples per data sample (the noise ratio :math:`\\nu`).
        seed: seeds the noise draw (the global RNG state is left as it was).
        noise_samples: (N, K, D) to use instead of drawing them.
        max_evaluations: cap on L-BFGS's objective evaluations.
    """
    where = "fit_nce"
    num_noise = _check_num_noise(num_noise, where)
    data = _check_data(data, model.dim, where)
    noise = _check_noise(noise, model.dim, where)
    dtype = model.log_c.dtype
    data = data.to(dtype)
    criterion = NCELoss(noise, num_noise)
    if noise_samples is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            noise_samples = criterion.sample_noise(data.shape[0])  # (N, K, D)
    noise_samples = check_tensor(noise_samples, "noise_samples", where).to(dtype)

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=max_evaluations, max_eval=max_evaluations,
                            tolerance_grad=1e-10, tolerance_change=1e-14, history_size=50,
                            line_search_fn="strong_wolfe")

    evaluations = 0

    def closure() -> Tensor:
        nonlocal evaluations
        evaluations += 1
        opt.zero_grad()
        loss = criterion(model, data, noise_samples)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        loss = float(criterion(model, data, noise_samples))
        log_c = float(model.log_c)
        neg_log_z = -float(model.log_normaliser())
    if not math.isfinite(loss) or not math.isfinite(log_c):
        raise RuntimeError(f"{where}: the fit diverged (loss {loss}, c {log_c}); check that the noise covers "
                           "the data")
    return NCEFit(log_c=log_c, neg_log_z=neg_log_z, c_error=abs(log_c - neg_log_z), loss=loss,
                  evaluations=evaluations)
