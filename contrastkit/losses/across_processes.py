r"""The two-tower losses of a global batch split over W processes: CLIP on gathered columns, SigLIP on a ring.

Process :math:`r` holds its share of the pairs, rows :math:`a_r, b_r` (n, D) of the global batch
:math:`A = [a_0; \dots; a_{W-1}]`, :math:`B = [b_0; \dots; b_{W-1}]` (N = W n pairs). Each process returns a loss
:math:`L_r` over its own n rows, normalised so that the mean over processes is the one-process loss of the global
batch, :math:`\frac1W \sum_r L_r = L(A, B)`; the exchanges below carry the gradient of every row back to the process
that owns it, so with DDP's gradient averaging (the :math:`\frac1W`) a step is exactly the one-process step on the
global batch -- no loss scaling by W anywhere.

**CLIP** (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision"), the "local
loss" form of open_clip: process r scores its rows against the gathered columns of the other tower, in both
directions,

.. math::

    L_r = \frac{1}{2n} \sum_{i \in r} \Big( \ell(a_i; B) + \ell(b_i; A) \Big), \qquad
    \ell(a_i; B) = -\log \frac{\exp(s\, a_i^\top b_i)}{\sum_{j=1}^{N} \exp(s\, a_i^\top b_j)},

with :math:`s = \min(e^{t}, 100)` and unit rows. :math:`A` and :math:`B` are gathered *with* gradient
(:meth:`~contrastkit.process_group.ProcessGroup.gather_with_grad`: the backward sums every process's gradient of the
gathered rows and keeps the own block). The softmax is the library's one InfoNCE core
(:func:`~contrastkit.losses.info_nce` with ``positive_offset``, direct or memory-efficient). Per process: (n, N)
scores, or (block, N) in the memory-efficient mode.

**SigLIP** (Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training", eq. 1 and its chunked
"neighbour exchange" implementation, section 3.3): the global loss is
:math:`L = -\frac1N \sum_{i=1}^{N} \sum_{j=1}^{N} \log \sigma\big(z_{ij} (e^{t} a_i^\top b_j + \beta)\big)`
with :math:`z_{ij} = +1` iff :math:`i = j`, and

.. math::

    L_r = -\frac1n \sum_{i \in r} \sum_{q=0}^{W-1} \sum_{j \in q} \log \sigma\big(z_{ij} (e^{t} a_i^\top b_j
    + \beta)\big).

Process r keeps its a-block; the b-blocks travel round the ring (:meth:`~contrastkit.process_group.ProcessGroup
.ring_pass`: point-to-point to rank + 1, from rank - 1), W - 1 hops, so after hop k process r holds the block of
process r - k and adds its (n, n) terms -- all negatives: the positives lie on the own block only (hop 0). Each
hop's terms run through :func:`~contrastkit.losses.siglip.sigmoid_pair_sum` in checkpointed row chunks, so a process
holds at most one (chunk, n) block of scores (chunk <= n), never its (n, N) rows of the gathered matrix nor the
N x N one; it does keep the W visiting (n, D) blocks of embeddings for the backward (N x D, what a gather holds).
The ring's backward passes each block's gradient the opposite way round, back to the process that owns it.

For one process (``group.world == 1``) both are exactly :func:`~contrastkit.losses.clip_loss` and
:func:`~contrastkit.losses.siglip_loss`.

Before exchanging anything, every process checks its own input and one small gather shares the outcome with the
batch shapes (n, D) and dtypes, so a bad input or a batch size that differs between processes stops *every*
process with a one-line error instead of leaving the others waiting in a collective.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import Tensor

from contrastkit.losses.clip import check_pairs, clip_loss, clip_temperature
from contrastkit.losses.infonce import info_nce
from contrastkit.losses.siglip import default_chunk_size, prepare_siglip, siglip_loss, sigmoid_pair_sum
from contrastkit.precision import full_precision
from contrastkit.similarity import cosine

if TYPE_CHECKING:  # a type only: contrastkit.process_group imports contrastkit.distributed, which imports losses
    from contrastkit.process_group import Processes

__all__ = ["agree_on_inputs", "clip_loss_across", "siglip_loss_ring"]

T = TypeVar("T")

#: the dtypes a loss may see after full_precision (bf16 / fp16 arrive as float32), coded for the shared check
_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _dtype_code(x: object) -> int:
    dtype = getattr(x, "dtype", None)
    return _DTYPES.index(dtype) if dtype in _DTYPES else -1


def _check_group(group: object, exchange: str, where: str) -> None:
    missing = [name for name in ("rank", "world", "gather", exchange) if not hasattr(group, name)]
    if missing:
        raise TypeError(f"{where}: `group` must be the run's processes (contrastkit.process_group.OneProcess() or "
                        f"ProcessGroup, what a method's forward gets), got {type(group).__name__} without "
                        f"{', '.join(missing)}")


def agree_on_inputs(a: object, group: Processes, where: str, local_checks: Callable[[], T]) -> T:
    """Run ``local_checks()`` on every process, then share its outcome with the batch shape (n, D) and dtype of
    ``a`` in one small gather: this process re-raises its own error; a process whose input was fine raises a
    one-line ``ValueError`` naming the process(es) that refused theirs, or the shapes / dtypes that differ.
    Returns what ``local_checks()`` returned."""
    error: Exception | None = None
    result = None
    try:
        result = local_checks()
    except (TypeError, ValueError) as exc:
        error = exc
    shape = tuple(a.shape) if isinstance(a, Tensor) and a.dim() == 2 else (-1, -1)
    device = a.device if isinstance(a, Tensor) else torch.device("cpu")
    facts = torch.tensor([[int(error is None), shape[0], shape[1], _dtype_code(a)]], dtype=torch.long,
                         device=device)
    everyone = group.gather(facts).tolist()  # (W, 4) in rank order
    if error is not None:
        raise error
    refused = [r for r, (ok, *_) in enumerate(everyone) if not ok]
    if refused:
        raise ValueError(f"{where}: process(es) {refused} of {group.world} refused their input (see their error); "
                         f"process {group.rank} stops with them")
    shapes = [(n, d) for _, n, d, _ in everyone]
    if len(set(shapes)) > 1:
        raise ValueError(f"{where}: the processes hold batches of different shapes (n, D) = {shapes} (rank order); "
                         f"every process needs the same number of pairs n = B_local and the same D (a global batch "
                         f"that splits evenly)")
    codes = {code for *_, code in everyone}
    if len(codes) > 1:
        names = [str(_DTYPES[code]) if code >= 0 else "?" for *_, code in everyone]
        raise TypeError(f"{where}: the processes hold different dtypes {names} (rank order); use one dtype on every "
                        f"process")
    return result  # type: ignore[return-value]


@full_precision
def clip_loss_across(
    a: Tensor,
    b: Tensor,
    logit_scale: float | Tensor,
    group: Processes,
    *,
    memory_efficient: bool = False,
    block_size: int | None = None,
) -> Tensor:
    """CLIP's symmetric InfoNCE of this process's pairs ``a``, ``b`` (n, D) against the gathered columns of every
    process (the module docstring); the mean over processes is :func:`~contrastkit.losses.clip_loss` of the global
    batch, and so is the gradient after DDP's averaging.

    Args:
        a, b: this process's rows of the two towers (n, D), the same n and D on every process; normalised inside.
        logit_scale: the log logit scale ``t`` (a float or 0-dim tensor, e.g. :class:`~contrastkit.losses.LogitScale`'s
            output); the logits are ``min(exp(t), 100) * a_i . b_j``.
        group: the run's processes (:class:`~contrastkit.process_group.OneProcess` or ``ProcessGroup``, what a
            method's ``forward`` gets).
        memory_efficient, block_size: as :func:`~contrastkit.losses.clip_loss` (blockwise rows, never the (n, N)
            scores).

    Returns:
        this process's scalar loss (mean over its n rows, both directions); ``clip_loss(a, b, ...)`` for one process.
    """
    where = "clip_loss_across"
    _check_group(group, "gather_with_grad", where)
    if group.world == 1:
        return clip_loss(a, b, logit_scale, memory_efficient=memory_efficient, block_size=block_size)

    def local_checks() -> float | Tensor:
        check_pairs(a, b, where)
        return clip_temperature(logit_scale, where)

    temperature = agree_on_inputs(a, group, where, local_checks)  # 1 / min(exp(t), 100)
    n, d = a.shape
    both = group.gather_with_grad(torch.cat([a, b], dim=1), check_shapes=False)  # (N, 2D): one exchange for both
    all_a, all_b = both[:, :d], both[:, d:]  # (N, D) each, rank order
    options = {"score": cosine, "memory_efficient": memory_efficient, "block_size": block_size,
               "positive_offset": group.rank * n}  # row i's positive: column rank * n + i
    a_to_b = info_nce(a, all_b, None, temperature, **options)  # each local a_i among all N b_j
    b_to_a = info_nce(b, all_a, None, temperature, **options)  # each local b_i among all N a_j
    return 0.5 * (a_to_b + b_to_a)


@full_precision
def siglip_loss_ring(
    a: Tensor,
    b: Tensor,
    t: float | Tensor,
    bias: float | Tensor,
    group: Processes,
    *,
    chunk_size: int | None = None,
) -> Tensor:
    """SigLIP's sigmoid loss of this process's rows ``a`` (n, D) against every process's ``b`` (n, D), the b-blocks
    passed round a ring (the module docstring); the mean over processes is :func:`~contrastkit.losses.siglip_loss`
    of the global batch, and so is the gradient after DDP's averaging.

    Args:
        a, b: this process's rows of the two towers (n, D), the same n and D on every process; normalised inside.
        t: the log temperature (logits ``exp(t) * a_i . b_j + bias``), a float or 0-dim tensor.
        bias: the logit bias, a float or 0-dim tensor (:class:`~contrastkit.losses.SigmoidScaleBias` gives both).
        group: the run's processes (:class:`~contrastkit.process_group.OneProcess` or ``ProcessGroup``).
        chunk_size: rows of ``a`` per chunk of each hop's (n, n) block (default: about 64 MiB of logits, at most n);
            with gradients on, every chunk of every hop is checkpointed.

    Returns:
        this process's scalar loss: its terms against all N columns, summed, divided by n;
        ``siglip_loss(a, b, ...)`` for one process.
    """
    where = "siglip_loss_ring"
    _check_group(group, "ring_pass", where)
    if group.world == 1:
        return siglip_loss(a, b, t, bias, chunk_size=chunk_size)
    an, bn, scale, bias_value = agree_on_inputs(a, group, where, lambda: prepare_siglip(a, b, t, bias, chunk_size,
                                                                                       where))  # (n, D) unit rows
    n = an.shape[0]
    chunk = min(chunk_size or default_chunk_size(n, an.element_size()), n)
    options = {"chunk_size": chunk, "recompute": True}
    total = sigmoid_pair_sum(an, bn, scale, bias_value, positive_offset=0, **options)  # own block: the positives
    visiting = bn  # (n, D)
    for _ in range(group.world - 1):
        visiting = group.ring_pass(visiting, check_shapes=False)  # after hop k: the block of process rank - k
        total = total + sigmoid_pair_sum(an, visiting, scale, bias_value, positive_offset=None, **options)
    return total / n
