"""The processes a training runs on, as one object: who this process is, and what the processes agree on.

The trainer needs a handful of collective acts, each in one place: rank 0 alone does something and the others
learn its outcome (:meth:`ProcessGroup.on_rank0`: prepare the folder, write a checkpoint), a flag raised on any
process holds for all (:meth:`ProcessGroup.any_process`: a stop request, a non-finite loss), logged scalars
averaged over processes (:meth:`ProcessGroup.mean`), the slowest process's time (:meth:`ProcessGroup.max`), and
the rows of every process without gradient (:meth:`ProcessGroup.gather`: what ``after_step`` stores in a queue or
a bank), and the two exchanges of the two-tower losses, with gradient (:meth:`ProcessGroup.gather_with_grad`:
CLIP's gathered columns; :meth:`ProcessGroup.ring_pass`: SigLIP's neighbour exchange). :func:`processes` gives
:class:`OneProcess` for a plain run -- every act is the identity and nothing calls ``torch.distributed`` -- and
:class:`ProcessGroup` under ``torchrun`` (W > 1), built on :mod:`contrastkit.distributed`. Both have ``rank``,
``world``, ``gather(x)``, ``gather_with_grad(x)`` and ``ring_pass(x)``: the trainer hands the same object to a
method's ``forward`` and ``after_step`` (:mod:`contrastkit.methods.base`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from contrastkit.distributed import DistributedError, all_gather_no_grad, all_gather_with_grad, ring_pass_with_grad

__all__ = ["ONE_PROCESS", "OneProcess", "ProcessGroup", "Processes", "processes"]

T = TypeVar("T")

#: words in the errors of a failed collective: gloo raises a plain RuntimeError ("Connection closed by peer",
#: "Timed out waiting ..."), NCCL and newer code a torch.distributed.DistError
_COLLECTIVE_FAILURE_WORDS = ("connection closed", "connection reset", "broken pipe", "timed out", "timeout", "gloo",
                             "nccl", "processgroup")


class Processes(Protocol):
    """What the trainer and a method (its ``forward`` / ``after_step``) ask of the processes of a run:
    :class:`OneProcess` or :class:`ProcessGroup`."""

    rank: int
    world: int

    def gather(self, x: Tensor) -> Tensor: ...
    def gather_with_grad(self, x: Tensor, check_shapes: bool = True) -> Tensor: ...
    def ring_pass(self, x: Tensor, check_shapes: bool = True) -> Tensor: ...
    def on_rank0(self, action: Callable[[], T], what: str) -> T: ...
    def any_process(self, flags: Tensor) -> Tensor: ...
    def mean(self, values: dict[str, Tensor]) -> dict[str, Tensor]: ...
    def max(self, value: float) -> float: ...
    def failure(self, exc: BaseException, step: int) -> DistributedError | None: ...


class OneProcess:
    """A run of one process: rank 0 of 1. Every collective act is the identity; nothing touches
    ``torch.distributed``."""

    rank = 0
    world = 1

    def gather(self, x: Tensor) -> Tensor:
        """The rows ``x`` (N, ...) of every process in rank order, (W N, ...), without gradient."""
        return x

    def gather_with_grad(self, x: Tensor, check_shapes: bool = True) -> Tensor:
        """The rows ``x`` (N, ...) of every process in rank order, (W N, ...), with gradient back to each process's
        own rows (CLIP's gathered columns)."""
        return x

    def ring_pass(self, x: Tensor, check_shapes: bool = True) -> Tensor:
        """One ring hop: ``x`` (N, ...) goes to the next process, the previous process's comes back, with gradient
        (SigLIP's neighbour exchange). One process is its own neighbour."""
        return x

    def on_rank0(self, action: Callable[[], T], what: str) -> T:
        """``action()`` run on rank 0, its result (or error) shared with every process; ``what`` names it in the
        others' error."""
        return action()

    def any_process(self, flags: Tensor) -> Tensor:
        """``flags`` (any shape, bool or int) true where they are true on any process."""
        return flags

    def mean(self, values: dict[str, Tensor]) -> dict[str, Tensor]:
        """Scalar tensors averaged over processes, key by key."""
        return values

    def max(self, value: float) -> float:
        """The largest ``value`` over processes."""
        return value

    def failure(self, exc: BaseException, step: int) -> DistributedError | None:
        """The :class:`DistributedError` that ``exc`` stands for when it is a failed collective (another process
        left or did not answer), else None. One process has no collectives to fail."""
        return None


#: the processes of a run of one process: what a method's ``forward`` / ``after_step`` get when called by hand
ONE_PROCESS = OneProcess()


class ProcessGroup:
    """Process ``rank`` of ``world`` (> 1) in the initialised default process group; ``device`` is where this
    process computes (small tensors for a collective go to it under NCCL, to the CPU under gloo). Building one
    makes no collective call."""

    def __init__(self, rank: int, world: int, device: torch.device) -> None:
        if world < 2 or not 0 <= rank < world:
            raise ValueError(f"ProcessGroup: needs 0 <= rank < world and world >= 2, got rank {rank} of {world}; "
                             f"one process is OneProcess()")
        self.rank, self.world, self.device = rank, world, device

    @property
    def collective_device(self) -> torch.device:
        """Where small tensors for a collective live: the GPU for NCCL, the CPU for gloo."""
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def gather(self, x: Tensor) -> Tensor:
        return all_gather_no_grad(x)

    def gather_with_grad(self, x: Tensor, check_shapes: bool = True) -> Tensor:
        """:func:`~contrastkit.distributed.all_gather_with_grad`: the gradient of the gathered rows, summed over
        processes, comes back to each process's own block."""
        return all_gather_with_grad(x, check_shapes)

    def ring_pass(self, x: Tensor, check_shapes: bool = True) -> Tensor:
        """:func:`~contrastkit.distributed.ring_pass_with_grad`: point-to-point to rank + 1, from rank - 1; the
        gradient goes the opposite way round."""
        return ring_pass_with_grad(x, check_shapes)

    def on_rank0(self, action: Callable[[], T], what: str) -> T:
        """Run ``action()`` on rank 0 only and share its outcome: the other processes get its result, or a
        :class:`DistributedError` naming rank 0's error (rank 0 re-raises the error itself). The broadcast is
        also the barrier that keeps the others from going on before rank 0 is done."""
        result, error, message = None, None, None
        if self.rank == 0:
            try:
                result = action()
            except Exception as exc:  # shared with the other processes, then raised here unchanged
                error, message = exc, f"{type(exc).__name__}: {exc}"
        shared = [message, result]
        dist.broadcast_object_list(shared, src=0)
        if error is not None:
            raise error
        if shared[0] is not None:
            raise DistributedError(f"rank 0 could not {what}: {shared[0]}")
        return shared[1]  # type: ignore[return-value]

    def any_process(self, flags: Tensor) -> Tensor:
        """All-reduce (MAX) of ``flags`` as int32 on the collective device."""
        flags = flags.to(device=self.collective_device, dtype=torch.int32)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return flags

    def mean(self, values: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each process's loss is the mean over its own anchors, so the average is the global batch's loss."""
        keys = list(values)
        stacked = torch.stack([values[key].detach().float().reshape(()) for key in keys])  # (K,)
        stacked = stacked.to(self.collective_device)
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        return dict(zip(keys, (stacked / self.world).cpu(), strict=True))

    def max(self, value: float) -> float:
        tensor = torch.tensor([value], dtype=torch.float64, device=self.collective_device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())

    def failure(self, exc: BaseException, step: int) -> DistributedError | None:
        text = str(exc).lower()
        if not (isinstance(exc, dist.DistError) or any(word in text for word in _COLLECTIVE_FAILURE_WORDS)):
            return None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return DistributedError(f"process {self.rank} of {self.world}: a collective operation failed at step {step} "
                                f"({first}); another process stopped (see its error) or did not answer within the "
                                f"timeout")


def processes(rank: int, world: int, device: torch.device) -> Processes:
    """:class:`OneProcess` for ``world == 1``, else this process's :class:`ProcessGroup` (``rank`` / ``world``
    from :func:`contrastkit.distributed.rank` / :func:`~contrastkit.distributed.world_size`)."""
    return ONE_PROCESS if world == 1 else ProcessGroup(rank, world, device)
