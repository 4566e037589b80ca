r"""SigLIP's pairwise sigmoid loss (Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training", eq. 1).

For N pairs :math:`(a_i, b_i)`, unit-normalised here, a learned log temperature :math:`t` and a bias :math:`b`,

.. math::

    L = -\frac{1}{N} \sum_{i=1}^{N} \sum_{j=1}^{N} \log \sigma\big( z_{ij} (e^{t} \, a_i^\top b_j + b) \big),
    \qquad z_{ij} = \begin{cases} +1 & i = j \\ -1 & i \ne j \end{cases},

an independent binary classification of every pair (matching or not): no softmax, so no normaliser over the batch.
The paper starts at :math:`t = \log 10`, :math:`b = -10` (:class:`SigmoidScaleBias`), so the many negatives do not
dominate the first steps.

Computed in chunks of rows of ``a``: one chunk's (chunk, N) logits at a time, each term through
``F.logsigmoid`` (stable for huge scores). With gradients on, each chunk runs under
:func:`torch.utils.checkpoint.checkpoint`, so the backward keeps only the chunk's inputs and recomputes its
(chunk, N) block: the N x N matrix is never held, in the forward or the backward.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from contrastkit._checks import checks_enabled
from contrastkit.losses.clip import check_pairs, check_scalar
from contrastkit.precision import full_precision
from contrastkit.similarity import cosine

__all__ = ["SIGLIP_BIAS_INIT", "SIGLIP_LOG_SCALE_INIT", "SigmoidScaleBias", "default_chunk_size", "prepare_siglip",
           "siglip_loss", "sigmoid_pair_sum"]

_WHERE = "siglip_loss"
#: the paper's initial log temperature (t' = 10) and bias
SIGLIP_LOG_SCALE_INIT = math.log(10.0)
SIGLIP_BIAS_INIT = -10.0
#: bytes of one chunk's (chunk, N) logits in the default chunking
CHUNK_BYTES = 64 * 2**20


def default_chunk_size(n: int, element_size: int = 4) -> int:
    """Rows per chunk so one (chunk, n) block of logits takes at most about 64 MiB (at least one row)."""
    return max(1, CHUNK_BYTES // (element_size * max(1, n)))


def _exp_or_inf(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _chunk_loss(a_chunk: Tensor, b: Tensor, scale: Tensor | float, bias: Tensor | float,
                positive_column: int | None) -> Tensor:
    """``-sum log sigmoid(z_ij l_ij)`` of the chunk's rows against all columns of ``b`` (c, D) x (M, D); row ``i``'s
    positive is column ``positive_column + i`` (None: the chunk has no positive among these columns)."""
    signed = -(scale * (a_chunk @ b.T)) - bias  # (c, M): z_ij l_ij with z = -1 everywhere ...
    if positive_column is not None:
        rows = torch.arange(a_chunk.shape[0], device=a_chunk.device)
        signed[rows, rows + positive_column] = -signed[rows, rows + positive_column]  # ... and z = +1 on the pairs
    return -F.logsigmoid(signed).sum()


def sigmoid_pair_sum(
    an: Tensor,
    bn: Tensor,
    scale: Tensor | float,
    bias: Tensor | float,
    *,
    positive_offset: int | None,
    chunk_size: int,
    recompute: bool | None = None,
) -> Tensor:
    """``-sum_i sum_j log sigmoid(z_ij (scale an_i . bn_j + bias))`` of unit rows ``an`` (R, D) against ``bn`` (M, D),
    in chunks of ``chunk_size`` rows: one (chunk, M) block of logits at a time. Row ``i``'s positive (z = +1) is
    column ``positive_offset + i``; ``positive_offset=None``: every pair is a negative (a block of another process).

    ``recompute`` (default: when there is more than one chunk) checkpoints every chunk when gradients are on, so the
    backward keeps only the inputs and recomputes each block; the ring form sets it for single-chunk blocks too, so
    the W blocks it visits are not all held until the backward. Returns the sum (a 0-dim tensor), not a mean.
    """
    r = an.shape[0]
    needs_grad = torch.is_grad_enabled() and any(isinstance(x, Tensor) and x.requires_grad
                                                 for x in (an, bn, scale, bias))
    if recompute is None:
        recompute = chunk_size < r
    if chunk_size >= r and not (recompute and needs_grad):
        return _chunk_loss(an, bn, scale, bias, positive_offset)
    total = an.new_zeros(())
    for start in range(0, r, chunk_size):
        a_chunk = an[start:start + chunk_size]  # (c, D)
        column = None if positive_offset is None else positive_offset + start
        if needs_grad and recompute:
            total = total + checkpoint(_chunk_loss, a_chunk, bn, scale, bias, column, use_reentrant=False)
        else:
            total = total + _chunk_loss(a_chunk, bn, scale, bias, column)
    return total


def prepare_siglip(a: Tensor, b: Tensor, t: float | Tensor, bias: float | Tensor, chunk_size: int | None,
                   where: str) -> tuple[Tensor, Tensor, Tensor | float, Tensor | float]:
    """Check :func:`siglip_loss`'s arguments (one-line errors naming ``where``) and return the unit rows
    ``an``, ``bn`` (N, D), the scale ``exp(t)`` and the bias."""
    check_pairs(a, b, where)
    t = check_scalar(t, "t", where)
    bias = check_scalar(bias, "bias", where)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise ValueError(f"{where}: `chunk_size` must be an integer >= 1 or None, got {chunk_size!r}")
    an, bn, _ = cosine.score_factors(a, b)  # (N, D) unit rows
    scale = t.exp() if isinstance(t, Tensor) else _exp_or_inf(t)
    tensor_scale = isinstance(scale, Tensor)
    if (checks_enabled("values") or not tensor_scale) and not math.isfinite(float(scale.detach() if tensor_scale
                                                                                else scale)):
        t_value = float(t.detach()) if isinstance(t, Tensor) else t
        raise ValueError(f"{where}: `t` = {t_value:.6g} gives the scale exp(t) = inf; the loss would be NaN "
                         f"(exp overflows above t = 88.7 in float32, 709.8 in float64)")
    return an, bn, scale, bias


@full_precision
def siglip_loss(
    a: Tensor,
    b: Tensor,
    t: float | Tensor,
    bias: float | Tensor,
    *,
    chunk_size: int | None = None,
) -> Tensor:
    """SigLIP's sigmoid loss of ``a`` (N, D) against ``b`` (N, D); see the module docstring.

    Args:
        a, b: the two towers' embeddings of N pairs (row i of ``a`` pairs with row i of ``b``); normalised to unit
            length inside.
        t: the log temperature (the logits are ``exp(t) * a_i . b_j + bias``), a float or a 0-dim tensor.
        bias: the logit bias, a float or a 0-dim tensor.
        chunk_size: rows of ``a`` per chunk (default :func:`default_chunk_size`: about 64 MiB of logits per chunk).
            With gradients on and more than one chunk, each chunk is checkpointed (recomputed in the backward).

    Returns:
        the scalar loss (a sum over N columns, averaged over N rows), float32 (float64 for float64 inputs), also
        under bf16 autocast.
    """
    an, bn, scale, bias = prepare_siglip(a, b, t, bias, chunk_size, _WHERE)
    n = an.shape[0]
    chunk = chunk_size or default_chunk_size(n, an.element_size())
    return sigmoid_pair_sum(an, bn, scale, bias, positive_offset=0, chunk_size=chunk) / n


class SigmoidScaleBias(nn.Module):
    """SigLIP's learnable log temperature ``t`` (init log 10) and bias (init -10); the forward returns ``(t, bias)``
    for :func:`siglip_loss`."""

    def __init__(self, log_scale_init: float = SIGLIP_LOG_SCALE_INIT, bias_init: float = SIGLIP_BIAS_INIT) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(float(check_scalar(log_scale_init, "log_scale_init",
                                                                      "SigmoidScaleBias"))))
        self.bias = nn.Parameter(torch.tensor(float(check_scalar(bias_init, "bias_init", "SigmoidScaleBias"))))

    def forward(self) -> tuple[Tensor, Tensor]:
        return self.log_scale, self.bias

    def extra_repr(self) -> str:
        return f"scale={math.exp(float(self.log_scale.detach())):.4g}, bias={float(self.bias.detach()):.4g}"
