r"""The pieces of ``torch.distributed`` that contrastive losses need: process facts, an all-gather that carries
gradient back to each process's own rows, and the losses of a batch gathered across processes.

**Gradient of a gathered batch.** Process :math:`r` holds rows :math:`x_r` (N, D) and computes its loss
:math:`L_r` on its own anchors against the candidates of every process, :math:`X = [x_0; \dots; x_{W-1}]`. The
objective of the global batch is the mean :math:`L = \frac{1}{W} \sum_r L_r` (equal N per process), so

.. math::

    \frac{\partial L}{\partial x_r} = \frac{1}{W} \sum_q \frac{\partial L_q}{\partial X}\Big|_{\text{rows of } r}.

:func:`all_gather_with_grad` sums the incoming gradients of ``X`` over processes in its backward pass and keeps
the block of the local rows (the :math:`\sum_q`); DDP's gradient averaging supplies the :math:`\frac1W`. Together
they give exactly the single-process gradient of the mean loss on the concatenated batch -- no loss scaling by
the world size anywhere.

Outside an initialised process group every function here is the single-process identity, so a method calls them
unconditionally.

**Starting a group.** :func:`init_from_environment` joins the group that ``torchrun`` describes in the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` / ``MASTER_PORT``): NCCL for
GPUs, gloo for CPUs, with a bounded collective timeout (:data:`DEFAULT_TIMEOUT_S`) so that a process that died
makes the others stop with an error instead of waiting forever.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor

from contrastkit.losses.infonce import info_nce
from contrastkit.losses.ntxent import nt_xent, nt_xent_rows
from contrastkit.similarity import Measure, cosine

__all__ = ["DEFAULT_TIMEOUT_S", "DistributedError", "all_gather_no_grad", "all_gather_with_grad",
           "encode_shuffled", "gathered_in_batch_info_nce", "gathered_nt_xent", "init_from_environment",
           "is_distributed", "local_rank", "local_world_size", "rank", "ring_pass_with_grad", "threads_per_process",
           "world_size"]

#: seconds a collective may wait for the other processes before it fails (``contrastkit train --dist-timeout``).
#: Long enough for a slow checkpoint write or evaluation on rank 0, short enough that a dead process is noticed
#: within minutes rather than the 30 minutes of torch's default.
DEFAULT_TIMEOUT_S = 300.0


class DistributedError(ConnectionError):
    """Another process of the group stopped or did not answer in time (a failed collective), or rank 0 could not
    prepare the run. A ``ConnectionError`` (an ``OSError``): the command line reports it in one line."""


def is_distributed() -> bool:
    """Whether a default process group is initialised (with more than one process or not)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the default group (0 outside one)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Processes in the default group (1 outside one)."""
    return dist.get_world_size() if is_distributed() else 1


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not an integer (torchrun sets it)") from None


def local_rank() -> int:
    """This process's index on its machine: ``LOCAL_RANK`` from torchrun (0 when unset)."""
    return _env_int("LOCAL_RANK", 0)


def local_world_size() -> int:
    """Processes of the group on this machine: ``LOCAL_WORLD_SIZE`` from torchrun (1 when unset)."""
    return _env_int("LOCAL_WORLD_SIZE", 1)


def init_from_environment(device_type: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Initialise the default process group from torchrun's environment; returns whether this call created it.

    Nothing happens (``False``) when ``WORLD_SIZE`` is unset or 1 (a plain single-process run) or when a group
    already exists (the caller made it and owns it). Otherwise the backend is NCCL for ``device_type == "cuda"``
    (after ``torch.cuda.set_device(LOCAL_RANK)``, so each process talks through its own GPU) and gloo for the CPU;
    ``timeout_s`` bounds every collective (see :data:`DEFAULT_TIMEOUT_S`). The caller destroys the group it
    created (``dist.destroy_process_group()``) when done.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1 or is_distributed():
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 asks for several processes, but this PyTorch build has no "
                           "torch.distributed")
    if not timeout_s > 0:
        raise ValueError(f"the collective timeout must be > 0 seconds, got {timeout_s!r}")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ValueError(f"WORLD_SIZE={world} but {name} is not set; start the processes with torchrun "
                             f"(e.g. torchrun --standalone --nproc_per_node={world} -m contrastkit train ...)")
    backend = "gloo"
    if device_type == "cuda":
        backend = "nccl"
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend, init_method="env://", timeout=datetime.timedelta(seconds=float(timeout_s)))
    return True


def _check_same_shape(x: Tensor, where: str) -> None:
    """Every process must gather a tensor of one shape (a ragged gather would silently misplace rows)."""
    shape = torch.tensor(list(x.shape), dtype=torch.long, device=x.device)
    shapes = [torch.empty_like(shape) for _ in range(world_size())]
    dist.all_gather(shapes, shape)
    if any(not torch.equal(s, shape) for s in shapes):
        raise ValueError(f"{where}: processes hold tensors of different shapes "
                         f"{[tuple(s.tolist()) for s in shapes]}; every process needs the same batch size")


class _GatherWithGrad(torch.autograd.Function):
    """Forward: the rows of all processes, rank order (W N, ...). Backward: the gradients of the gathered rows
    summed over processes, this process's block."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:
        parts = [torch.empty_like(x) for _ in range(world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = rank() * ctx.rows
        return grad[start:start + ctx.rows]


def all_gather_with_grad(x: Tensor, check_shapes: bool = True) -> Tensor:
    """The rows ``x`` (N, ...) of every process in rank order, (W N, ...), differentiable (module docstring).

    Every process must call it with the same shape (checked unless ``check_shapes=False``, which saves one small
    collective per call). Outside a process group: ``x`` itself.
    """
    if world_size() == 1:
        return x
    if check_shapes:
        _check_same_shape(x, "all_gather_with_grad")
    return _GatherWithGrad.apply(x)


def _ring_exchange(x: Tensor, send_to: int, receive_from: int) -> Tensor:
    """Send ``x`` to process ``send_to`` while receiving a tensor of its shape from ``receive_from``."""
    x = x.contiguous()
    received = torch.empty_like(x)
    ops = [dist.P2POp(dist.isend, x, send_to), dist.P2POp(dist.irecv, received, receive_from)]
    for work in dist.batch_isend_irecv(ops):
        work.wait()
    return received


class _RingPassWithGrad(torch.autograd.Function):
    """Forward: ``x`` goes to the next process (rank + 1 mod W), the previous process's ``x`` comes in. Backward:
    the opposite way round -- the gradient of what came in goes back to the process it came from, and the gradient
    of what this process sent comes in from the next one."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:
        r, w = rank(), world_size()
        return _ring_exchange(x, (r + 1) % w, (r - 1) % w)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        r, w = rank(), world_size()
        return _ring_exchange(grad, (r - 1) % w, (r + 1) % w)


def ring_pass_with_grad(x: Tensor, check_shapes: bool = True) -> Tensor:
    """One hop of a ring: this process's ``x`` (N, ...) goes to the next process (rank + 1 mod W) and the previous
    process's (rank - 1 mod W) comes back, by point-to-point send / receive; differentiable, the gradient travels
    the opposite way, back to the process whose rows they are.

    Called k times in a row, process r holds the rows of process r - k: W - 1 hops show every process every other
    process's rows while holding one block at a time (SigLIP's neighbour exchange,
    :func:`~contrastkit.losses.siglip_loss_ring`). Every process must pass the same shape (checked unless
    ``check_shapes=False``, which saves one small collective per call). Outside a process group: ``x`` itself.
    """
    if world_size() == 1:
        return x
    if check_shapes:
        _check_same_shape(x, "ring_pass_with_grad")
    return _RingPassWithGrad.apply(x)


@torch.no_grad()
def all_gather_no_grad(x: Tensor, check_shapes: bool = True) -> Tensor:
    """The rows ``x`` (N, ...) of every process in rank order (W N, ...), without gradient: keys for a MoCo
    queue, rows for a memory bank, sample ids. Outside a process group: ``x`` itself."""
    if world_size() == 1:
        return x
    if check_shapes:
        _check_same_shape(x, "all_gather_no_grad")
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def encode_shuffled(x: Tensor, encode: Callable[[Tensor], Tensor], generator: torch.Generator | None = None
                    ) -> Tensor:
    """MoCo's shuffling BatchNorm across processes (He et al. 2020, "Momentum Contrast ...", section 3.3): the
    keys (B, D) of this process's inputs ``x`` (B, ...), each encoded on a random process among a random share of
    the global batch.

    Every process's ``x`` is gathered (W B, ...); rank 0 draws a permutation of the W B rows (from ``generator``)
    and broadcasts it; process r encodes rows ``perm[r B : (r + 1) B]`` (so BatchNorm sees a random mix of every
    process's samples, never the batch its queries were normalised with); the W encoded shares are gathered and
    the permutation undone. No gradient flows (momentum keys). Needs a process group of two or more.
    """
    w = world_size()
    if w < 2:
        raise ValueError("encode_shuffled: shuffling BatchNorm across processes needs a process group of two or "
                         "more (torchrun); in one process use split BatchNorm (batchnorm: split)")
    _check_same_shape(x, "encode_shuffled")
    b, r = x.shape[0], dist.get_rank()
    everything = all_gather_no_grad(x, check_shapes=False)  # (W B, ...) in rank order
    if r == 0:
        device = generator.device if generator is not None else torch.device("cpu")
        order = torch.randperm(w * b, generator=generator, device=device).to(x.device)
    else:
        order = torch.empty(w * b, dtype=torch.int64, device=x.device)
    dist.broadcast(order, src=0)
    shuffled = all_gather_no_grad(encode(everything[order[r * b:(r + 1) * b]]), check_shapes=False)  # (W B, D)
    return shuffled[torch.argsort(order)][r * b:(r + 1) * b]


def gathered_nt_xent(z1: Tensor, z2: Tensor, temperature: float | Tensor = 0.5, *, labels: Tensor | None = None,
                     score: Measure | str = cosine, memory_efficient: bool = False,
                     block_size: int | None = None) -> Tensor:
    """NT-Xent of this process's pairs ``z1``, ``z2`` (N, D) against the views of every process.

    The local views ``[z1; z2]`` (2N, D) are anchors at rows ``rank * 2N ..`` of the gathered views (W 2N, D);
    a view's positive is its other view, every other gathered view a negative (with ``labels`` (N,): SupCon over
    the gathered labels). Returns the mean over the local anchors; averaged over processes (DDP's gradient
    averaging) it is :func:`~contrastkit.losses.nt_xent` of the concatenated global batch, gradients included.
    Outside a process group it is ``nt_xent`` itself.
    """
    if world_size() == 1:
        return nt_xent(z1, z2, temperature, labels=labels, score=score, memory_efficient=memory_efficient,
                       block_size=block_size)
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ValueError(f"gathered_nt_xent: `z1` and `z2` must both be (N, D), got {tuple(z1.shape)} and "
                         f"{tuple(z2.shape)}")
    n = z1.shape[0]
    local = torch.cat([z1, z2])  # (2N, D): pair i at rows i and N + i
    views = all_gather_with_grad(local)  # (W 2N, D)
    offset = rank() * 2 * n
    positive = offset + torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(local.device)  # (2N,)
    ids = all_ids = None
    if labels is not None:
        ids = torch.cat([labels, labels])  # (2N,)
        all_ids = all_gather_no_grad(ids)  # (W 2N,)
    return nt_xent_rows(local, views, positive, temperature, offset=offset, labels=ids, candidate_labels=all_ids,
                        score=score, memory_efficient=memory_efficient, block_size=block_size).mean()


def gathered_in_batch_info_nce(query: Tensor, keys: Tensor, temperature: float | Tensor = 0.1, *,
                               score: Measure | str = cosine, memory_efficient: bool = False,
                               block_size: int | None = None) -> Tensor:
    """In-batch InfoNCE of this process's queries (N, D) against the keys (N, D) of every process.

    Query i's positive is its own key, at row ``rank * N + i`` of the gathered keys (W N, D); every other
    gathered key is a negative. Returns the mean over the local queries; averaged over processes it is
    :func:`~contrastkit.losses.info_nce` (in-batch) of the concatenated global batch, gradients included (keys
    with gradient, e.g. end-to-end, get theirs through the gather). Outside a process group it is ``info_nce``.
    """
    if world_size() == 1:
        return info_nce(query, keys, None, temperature, score=score, memory_efficient=memory_efficient,
                        block_size=block_size)
    if query.shape != keys.shape or query.dim() != 2:
        raise ValueError(f"gathered_in_batch_info_nce: `query` and `keys` must both be (N, D), got "
                         f"{tuple(query.shape)} and {tuple(keys.shape)}")
    all_keys = all_gather_with_grad(keys)  # (W N, D)
    return info_nce(query, all_keys, None, temperature, score=score, memory_efficient=memory_efficient,
                    block_size=block_size, positive_offset=rank() * query.shape[0])


def threads_per_process(local_processes: int, cores: int | None = None) -> int:
    """CPU threads for each of ``local_processes`` processes on one machine: the cores this process may use
    (its CPU affinity, else ``os.cpu_count()``) divided among them, at least 1. Several processes each using
    every core oversubscribe the CPU and slow down."""
    if local_processes < 1:
        raise ValueError(f"threads_per_process: `local_processes` must be >= 1, got {local_processes}")
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // local_processes)
