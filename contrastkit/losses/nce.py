r"""Noise-contrastive estimation (NCE) of unnormalised models (survey section E.4).

Gutmann & Hyvärinen 2010, "Noise-contrastive estimation: A new estimation principle for unnormalized
statistical models" (AISTATS). An unnormalised model :math:`\log p_m(u) = \log \tilde p_\theta(u) + c`,
with the log-normaliser :math:`c` learned as one more free parameter, is fitted by logistic regression
that tells the :math:`N` data samples :math:`x_i` apart from :math:`M = \nu N` samples :math:`y_t` of a
known noise density :math:`p_n`:

.. math::

    G(u) = \log p_m(u) - \log p_n(u), \qquad
    h(u) = \frac{1}{1 + \nu e^{-G(u)}} = \sigma\bigl(G(u) - \log \nu\bigr),

    J(\theta) = \frac{1}{N}\Bigl[\sum_{i=1}^{N} \log h(x_i) + \sum_{t=1}^{M} \log\bigl(1 - h(y_t)\bigr)\Bigr],
    \qquad \text{loss} = -J.

This is the objective :math:`J_T` with :math:`T_d = N` data and :math:`T_n = M` noise samples in the
form with a noise-to-data ratio :math:`\nu = T_n / T_d` (Gutmann & Hyvärinen 2012, JMLR 13; for
:math:`\nu = 1` the 2010 paper writes it with :math:`1/(2T)` in front, half of this value): per data
sample, its log-probability of being classified as data plus the summed terms of its :math:`\nu` noise
samples, averaged over the data samples -- equivalently
:math:`-\bigl(\mathbb{E}_{data}[\log h(x)] + \nu\,\mathbb{E}_{noise}[\log(1 - h(y))]\bigr)`.
Because :math:`1 - \sigma(a) = \sigma(-a)` it is computed with ``logsigmoid`` only, which stays finite
for any log-density ratio. Its maximiser makes :math:`p_m = p_d` as :math:`N \to \infty`, including the
normaliser: :math:`c \to -\log Z`. The estimate's variance falls as :math:`\nu` grows (more noise
samples, better estimate; with noise equal to the data density it tends to maximum likelihood).

Two parts:

* :func:`nce_loss` -- the loss from the four log-densities (model and noise, at data and at noise samples);
* :class:`NCELoss` -- draws ``num_noise`` samples per data sample from a ``torch.distributions``
  noise density and evaluates a callable unnormalised model on both sets::

      mean, log_scale, log_c = (nn.Parameter(torch.zeros(())) for _ in range(3))
      def log_model(u):  # unnormalised log-density, normaliser c learned
          return -0.5 * ((u - mean) / log_scale.exp()) ** 2 + log_c
      criterion = NCELoss(torch.distributions.Normal(0.0, 3.0), num_noise=10)
      opt = torch.optim.Adam([mean, log_scale, log_c], lr=0.05)
      for batch in batches:
          opt.zero_grad(); criterion(log_model, batch).backward(); opt.step()
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from contrastkit._checks import check_same_shape, check_tensor, compute_dtype, upcast
from contrastkit.precision import full_precision

__all__ = ["NCELoss", "nce_loss"]

_REDUCTIONS = ("mean", "sum")


@full_precision
def nce_loss(
    model_log_density_data: Tensor,
    model_log_density_noise: Tensor,
    noise_log_density_data: Tensor,
    noise_log_density_noise: Tensor,
    reduction: str = "mean",
) -> Tensor:
    r"""Noise-contrastive estimation loss :math:`-J` of Gutmann & Hyvärinen 2010 (see the module docstring).

    Args:
        model_log_density_data: (N,) :math:`\log p_m(x_i)`, the model's log-density (normaliser included)
            at the data samples.
        model_log_density_noise: :math:`\log p_m(y)` at the noise samples, either (N, K) -- ``K`` noise
            samples drawn for each data sample, so :math:`\nu = K` -- or (M,) -- one pool of noise samples
            for the whole batch, :math:`\nu = M / N` (need not be an integer). The objective only depends on
            the set of noise samples, so both layouts give the same value for the same samples.
        noise_log_density_data: (N,) :math:`\log p_n(x_i)`, the noise log-density at the data samples.
        noise_log_density_noise: :math:`\log p_n(y)` at the noise samples, same shape as
            ``model_log_density_noise``.
        reduction: ``"mean"`` (default) -- the paper's :math:`-J_T`, summed over each data sample's noise
            terms and averaged over the N data samples; ``"sum"`` -- :math:`N` times that.

    Returns:
        A scalar, in float32 for half-precision inputs (float64 stays float64), also under autocast.
    """
    where = "nce_loss"
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{where}: `reduction` must be one of {_REDUCTIONS}, got {reduction!r}")
    model_data = check_tensor(model_log_density_data, "model_log_density_data", where, ndim=1)
    noise_data = check_tensor(noise_log_density_data, "noise_log_density_data", where, ndim=1)
    model_noise = check_tensor(model_log_density_noise, "model_log_density_noise", where)
    noise_noise = check_tensor(noise_log_density_noise, "noise_log_density_noise", where)
    check_same_shape(model_data, noise_data, ("model_log_density_data", "noise_log_density_data"), where)
    check_same_shape(model_noise, noise_noise, ("model_log_density_noise", "noise_log_density_noise"), where)
    num_data = model_data.shape[0]
    if num_data == 0:
        raise ValueError(f"{where}: no data samples (`model_log_density_data` has shape (0,))")
    if model_noise.dim() == 2:
        if model_noise.shape[0] != num_data:
            raise ValueError(f"{where}: noise log-densities of shape (N, K) must have N = {num_data} rows "
                             f"(one per data sample), got shape {tuple(model_noise.shape)}")
    elif model_noise.dim() != 1:
        raise ValueError(f"{where}: noise log-densities must be (N, K) or (M,), "
                         f"got shape {tuple(model_noise.shape)}")
    num_noise = model_noise.numel()
    if num_noise == 0:
        raise ValueError(f"{where}: no noise samples "
                         f"(noise log-densities have shape {tuple(model_noise.shape)})")

    dtype = compute_dtype(model_data, model_noise, noise_data, noise_noise)
    log_nu = math.log(num_noise / num_data)  # log of the noise-to-data ratio
    # logit of h(u) = sigma(G(u) - log nu), G = log p_m - log p_n
    logit_data = upcast(model_data, dtype) - upcast(noise_data, dtype) - log_nu  # (N,)
    logit_noise = upcast(model_noise, dtype) - upcast(noise_noise, dtype) - log_nu  # (N, K) or (M,)
    # log h(x) = logsigmoid(logit);  log(1 - h(y)) = logsigmoid(-logit)
    total = F.logsigmoid(logit_data).sum() + F.logsigmoid(-logit_noise).sum()
    loss = -total
    return loss / num_data if reduction == "mean" else loss


class NCELoss(nn.Module):
    r"""NCE for a callable unnormalised model against a known noise distribution (Gutmann & Hyvärinen 2010).

    ``forward(log_model, data)`` draws ``num_noise`` samples per data sample from ``noise`` (no gradient
    flows through them), evaluates ``log_model`` -- the model's unnormalised log-density with its learned
    log-normaliser included, mapping a batch (B, *event_shape) to (B,) -- and ``noise.log_prob`` on the
    data and the noise samples, and returns :func:`nce_loss` with :math:`\nu` = ``num_noise``.

    The paper maximises :math:`J_T` over one fixed noise sample; pass ``noise_samples`` (e.g. from
    :meth:`sample_noise`) to do that (a full-batch optimiser such as L-BFGS needs the same noise at every
    evaluation). Without it, fresh noise is drawn at every call (stochastic-gradient training).

    Args:
        noise: the noise density :math:`p_n`, a ``torch.distributions.Distribution`` with empty batch shape
            that can both sample and evaluate ``log_prob`` (for D-dim noise with independent coordinates
            wrap it in ``torch.distributions.Independent(..., 1)``). Its samples are drawn on the device
            of its parameters, so build it on the data's device.
        num_noise: K, noise samples per data sample (:math:`\nu`); more give a better estimate.
        reduction: ``"mean"`` or ``"sum"``, as in :func:`nce_loss`.
    """

    def __init__(self, noise: Distribution, num_noise: int, reduction: str = "mean") -> None:
        super().__init__()
        where = "NCELoss"
        if not isinstance(noise, Distribution):
            raise TypeError(f"{where}: `noise` must be a torch.distributions.Distribution, "
                            f"got {type(noise).__name__}")
        if noise.batch_shape != torch.Size():
            raise ValueError(f"{where}: `noise` must be a single distribution (empty batch_shape), "
                             f"got batch_shape {tuple(noise.batch_shape)}; for independent coordinates use "
                             "torch.distributions.Independent(noise, 1)")
        if isinstance(num_noise, bool) or not isinstance(num_noise, int) or num_noise < 1:
            raise ValueError(f"{where}: `num_noise` must be an integer >= 1, got {num_noise!r}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{where}: `reduction` must be one of {_REDUCTIONS}, got {reduction!r}")
        self.noise = noise
        self.num_noise = num_noise
        self.reduction = reduction

    def sample_noise(self, num_data: int) -> Tensor:
        """``num_noise`` noise samples for each of ``num_data`` data samples: (num_data, K, *event_shape)."""
        if num_data < 1:
            raise ValueError(f"NCELoss.sample_noise: `num_data` must be >= 1, got {num_data}")
        with torch.no_grad():
            return self.noise.sample((num_data, self.num_noise))

    def forward(
        self,
        log_model: Callable[[Tensor], Tensor],
        data: Tensor,
        noise_samples: Tensor | None = None,
    ) -> Tensor:
        """The loss of ``log_model`` on ``data`` (N, *event_shape); ``noise_samples``: (N, K, *event_shape)."""
        where = "NCELoss"
        if not callable(log_model):
            raise TypeError(f"{where}: `log_model` must be callable (batch -> log-densities), "
                            f"got {type(log_model).__name__}")
        data = check_tensor(data, "data", where)
        event_shape = tuple(self.noise.event_shape)
        event_dims = len(event_shape)
        if data.dim() != 1 + event_dims or tuple(data.shape[1:]) != event_shape:
            raise ValueError(f"{where}: `data` must have shape (N, *{event_shape}) to match the noise "
                             f"distribution's event shape, got {tuple(data.shape)}")
        num_data = data.shape[0]
        if num_data == 0:
            raise ValueError(f"{where}: `data` has no samples (shape {tuple(data.shape)})")
        if noise_samples is None:
            noise_samples = self.sample_noise(num_data)
        else:
            noise_samples = check_tensor(noise_samples, "noise_samples", where)
            expected = (num_data, self.num_noise, *event_shape)
            if tuple(noise_samples.shape) != expected:
                raise ValueError(f"{where}: `noise_samples` must have shape (N, num_noise, *event_shape) = "
                                 f"{expected}, got {tuple(noise_samples.shape)}")
        flat_noise = noise_samples.reshape(num_data * self.num_noise, *event_shape)  # (N*K, *event)

        model_data = self._evaluate(log_model, data, "log_model(data)")  # (N,)
        model_noise = self._evaluate(log_model, flat_noise, "log_model(noise)")  # (N*K,)
        noise_data = self.noise.log_prob(data)  # (N,)
        noise_noise = self.noise.log_prob(flat_noise)  # (N*K,)
        shape = (num_data, self.num_noise)
        return nce_loss(model_data, model_noise.reshape(shape), noise_data, noise_noise.reshape(shape),
                        reduction=self.reduction)

    @staticmethod
    def _evaluate(log_model: Callable[[Tensor], Tensor], batch: Tensor, name: str) -> Tensor:
        out = log_model(batch)
        if not isinstance(out, Tensor) or tuple(out.shape) != (batch.shape[0],):
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"NCELoss: `{name}` must return one log-density per sample, shape "
                             f"({batch.shape[0]},), got {shape}")
        return out

    def extra_repr(self) -> str:
        return f"noise={self.noise}, num_noise={self.num_noise}, reduction={self.reduction!r}"
