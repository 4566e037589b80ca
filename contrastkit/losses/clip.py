r"""CLIP's symmetric InfoNCE (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision", fig. 3).

For a batch of N pairs :math:`(a_i, b_i)` (e.g. image and caption embeddings, unit-normalised here) and a learned
log logit scale :math:`t`,

.. math::

    L_{ij} = e^{t} \, a_i^\top b_j, \qquad
    L = \frac{1}{2} \Big( \mathrm{CE}(L, [0..N)) + \mathrm{CE}(L^\top, [0..N)) \Big),

the mean of the InfoNCE losses in both directions: each :math:`a_i` picks its :math:`b_i` among all :math:`b_j`,
and each :math:`b_i` its :math:`a_i`. :math:`e^{t}` is clamped at 100 as in CLIP, so the logits cannot blow up; the
gradient of :math:`t` is zero beyond the clamp.

Both directions are the library's one InfoNCE core, :func:`~contrastkit.losses.infonce.info_nce` with in-batch
negatives, cosine score and temperature :math:`e^{-t}` (its row log-sum-exp, direct or blockwise), so the
memory-efficient mode never holds the N x N logits.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from contrastkit._checks import check_tensor, checks_enabled
from contrastkit.losses.infonce import info_nce
from contrastkit.precision import full_precision
from contrastkit.similarity import cosine

__all__ = ["LOGIT_SCALE_INIT", "MAX_LOGIT_SCALE", "LogitScale", "check_pairs", "check_scalar", "clip_loss",
           "clip_temperature"]

_WHERE = "clip_loss"
#: CLIP's cap on the logit scale exp(t)
MAX_LOGIT_SCALE = 100.0
#: CLIP's initial logit scale, 1 / 0.07 (the log of it is the parameter)
LOGIT_SCALE_INIT = 1.0 / 0.07


def check_scalar(value: float | Tensor, name: str, where: str) -> float | Tensor:
    """A finite float, or a finite floating 0-dim tensor (a learnable parameter); one-line error otherwise."""
    if isinstance(value, Tensor):
        if value.dim() != 0:
            raise ValueError(f"{where}: `{name}` must be a number or a 0-dimensional tensor, "
                             f"got shape {tuple(value.shape)}")
        if not value.is_floating_point():
            raise TypeError(f"{where}: `{name}` must be a floating-point tensor, got dtype {value.dtype}")
        if checks_enabled("values") and not bool(torch.isfinite(value.detach())):
            raise ValueError(f"{where}: `{name}` must be finite, got {float(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}: `{name}` must be a number or a 0-dimensional tensor, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{where}: `{name}` must be finite, got {value!r}")
    return float(value)


def check_pairs(a: Tensor, b: Tensor, where: str) -> None:
    """``a`` and ``b`` are (N, D) float tensors of one shape with N >= 1."""
    check_tensor(a, "a", where, ndim=2)
    check_tensor(b, "b", where, ndim=2)
    if a.shape != b.shape:
        raise ValueError(f"{where}: `a` and `b` must have the same shape (N, D), got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    if a.shape[0] == 0:
        raise ValueError(f"{where}: empty batch (`a` has 0 rows)")


def clip_temperature(logit_scale: float | Tensor, where: str) -> float | Tensor:
    """InfoNCE's temperature ``1 / min(exp(t), 100)`` for the log logit scale ``t`` (checked: a finite float or
    0-dim tensor; a tensor keeps its gradient, zero beyond the clamp)."""
    t = check_scalar(logit_scale, "logit_scale", where)
    if isinstance(t, Tensor):
        return t.clamp(max=math.log(MAX_LOGIT_SCALE)).neg().exp()  # 1 / min(exp(t), 100), 0-dim
    # below exp(-700) every logit is 0 in float64 already; the floor only keeps 1 / scale finite
    return math.exp(-max(min(t, math.log(MAX_LOGIT_SCALE)), -700.0))


@full_precision
def clip_loss(
    a: Tensor,
    b: Tensor,
    logit_scale: float | Tensor,
    *,
    memory_efficient: bool = False,
    block_size: int | None = None,
) -> Tensor:
    """CLIP's symmetric InfoNCE of ``a`` (N, D) against ``b`` (N, D); see the module docstring.

    Args:
        a, b: the two towers' embeddings of N pairs; row i of ``a`` pairs with row i of ``b``. Normalised
            to unit length inside (the cosine score), so raw projections can be passed.
        logit_scale: :math:`t`, the *log* of the logit scale (a float or a 0-dim tensor, e.g.
            :class:`LogitScale`'s output); the logits are ``min(exp(t), 100) * a_i . b_j``.
        memory_efficient: blockwise log-sum-exp recomputed in the backward; never holds the N x N logits.
        block_size: rows per block in the memory-efficient mode (default: about 128 MiB of scores).

    Returns:
        the scalar loss, float32 (float64 for float64 inputs), also under bf16 autocast. N = 1 gives 0.
    """
    check_pairs(a, b, _WHERE)
    temperature = clip_temperature(logit_scale, _WHERE)
    options = {"score": cosine, "memory_efficient": memory_efficient, "block_size": block_size}
    a_to_b = info_nce(a, b, None, temperature, **options)  # rows: each a_i among all b_j
    b_to_a = info_nce(b, a, None, temperature, **options)  # columns: each b_i among all a_j
    return 0.5 * (a_to_b + b_to_a)


class LogitScale(nn.Module):
    r"""CLIP's learnable log logit scale :math:`t` (init :math:`\log(1/0.07)`).

    The forward returns :math:`\min(t, \log 100)` -- the clamp CLIP applies so :math:`e^{t} \le 100`; beyond it
    the gradient of :math:`t` is zero. Pass the output to :func:`clip_loss` as ``logit_scale``.

    (Not :class:`~contrastkit.losses.temperature.LearnableTemperature`: that one learns the temperature
    :math:`\tau`, clamped on both sides, while CLIP learns and reports the log scale :math:`t = -\log \tau`, the
    argument :func:`clip_loss` takes.)
    """

    def __init__(self, init: float = LOGIT_SCALE_INIT, max_value: float = MAX_LOGIT_SCALE) -> None:
        super().__init__()
        if not (isinstance(init, (int, float)) and 0 < init <= max_value and math.isfinite(max_value)):
            raise ValueError(f"LogitScale: need 0 < init <= max_value (finite), got init={init!r}, "
                             f"max_value={max_value!r}")
        self.log_scale = nn.Parameter(torch.tensor(math.log(init)))
        self.max_value = float(max_value)

    def forward(self) -> Tensor:
        return self.log_scale.clamp(max=math.log(self.max_value))

    def extra_repr(self) -> str:
        return f"scale={math.exp(float(self().detach())):.4g}, max={self.max_value}"
