"""The training state a checkpoint holds, and its writes and reads for one run folder.

:class:`Checkpointer` knows the parts whose state makes a run resumable -- the method (encoder, head, queue or
bank, momentum copy), the optimizer, the schedule, the augmentation generator, every process's RNG states and
the :class:`Progress` (optimizer steps, seconds of training), the schedule planned for a time budget (when there is
one: :class:`~contrastkit.budget.BudgetPlanner`, saved as ``schedule_plan``) -- and the run's settings and data
fingerprint, which a resume must match. It writes ``checkpoint.pt`` (rank 0 writes, every process takes part:
the RNG states of all processes are gathered), keeps ``keep_checkpoints`` step-numbered copies of the periodic
saves, and loads a checkpoint only into the run that wrote it (same settings but those in
:data:`~contrastkit.config.RESUMABLE_CHANGES`, same data, a step within the run). The file format and its safe
reading are :mod:`contrastkit.checkpoint`'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from contrastkit.checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from contrastkit.config import RESUMABLE_CHANGES, TrainConfig
from contrastkit.data.fingerprint import describe_change
from contrastkit.process_group import Processes
from contrastkit.runfolder import CHECKPOINT_NAME, check_config_yaml
from contrastkit.settings import SettingsError

__all__ = ["Checkpointer", "Progress", "StatePart"]


class StatePart(Protocol):
    """A part whose state is plain values (numbers, strings, lists, dicts): :class:`~contrastkit.budget.BudgetPlanner`.
    An empty ``state_dict()`` is not saved."""

    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class Progress:
    """How far a run is: optimizer steps done, and seconds spent in training steps over all its sessions."""

    step: int = 0
    train_seconds: float = 0.0


class Checkpointer:
    """Checkpoints of one run in ``folder`` (``checkpoint.pt``), for process ``processes.rank``; a checkpoint is
    read onto ``device``.

    ``step`` is the step of ``folder/checkpoint.pt`` as this checkpointer last wrote or read it (None: none yet).
    Under a process group :meth:`state`, :meth:`save` and :meth:`save_periodic` are collectives: every process
    calls them. ``schedule_plan`` (optional) is the plan of the schedule for a time budget: saved as
    ``schedule_plan`` when it holds anything, and restored (or cleared, for a checkpoint without one) by
    :meth:`load`."""

    def __init__(self, folder: Path, *, method: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator, progress: Progress,
                 config: TrainConfig, fingerprint: dict[str, Any], processes: Processes, total_steps: int,
                 device: torch.device, schedule_plan: StatePart | None = None) -> None:
        self.folder, self.method, self.optimizer, self.scheduler = folder, method, optimizer, scheduler
        self.schedule_plan = schedule_plan  # the budget's plan: saved when it holds anything
        self.generator, self.progress, self.config, self.fingerprint = generator, progress, config, fingerprint
        self.processes, self.total_steps, self.device = processes, total_steps, device
        self.step: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / CHECKPOINT_NAME

    def state(self) -> dict[str, Any]:
        """Everything a checkpoint holds. Under W processes also ``rank_rng``: the RNG states of every process,
        rank order (a collective: every process must call this); with a plan for a time budget, ``schedule_plan``."""
        rng = capture_rng(self.generator)
        state = {
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng,
            "progress": {"step": self.progress.step, "train_seconds": self.progress.train_seconds},
            "config": self.config.to_dict(),
            "data": self.fingerprint,
        }
        plan = self.schedule_plan.state_dict() if self.schedule_plan is not None else {}
        if plan:
            state["schedule_plan"] = plan
        if self.processes.world > 1:
            states: list[Any] = [None] * self.processes.world
            dist.all_gather_object(states, rng)
            state["rank_rng"] = states
        return state

    def save(self, path: Path | None = None) -> Path:
        """Write the checkpoint to ``path`` (default: the run's ``checkpoint.pt``); rank 0 writes."""
        path = Path(path or self.path)
        state = self.state()
        self.processes.on_rank0(lambda: save_checkpoint(path, state), "save the checkpoint")
        if path == self.path:
            self.step = self.progress.step
        return path

    def save_periodic(self) -> None:
        """Write ``checkpoint.pt`` and, with ``keep_checkpoints`` > 0, a copy ``checkpoint_stepNNNNNNNN.pt`` of
        it, deleting all but the newest ``keep_checkpoints`` copies."""
        state = self.state()  # a collective under a process group; rank 0 writes
        self.processes.on_rank0(lambda: self._write_periodic(state), "save the checkpoint")
        self.step = self.progress.step

    def _write_periodic(self, state: dict[str, Any]) -> None:
        path = save_checkpoint(self.path, state)
        keep = self.config.keep_checkpoints
        if keep <= 0:
            return
        copy = self.folder / f"checkpoint_step{self.progress.step:08d}.pt"
        copy.unlink(missing_ok=True)
        try:
            os.link(path, copy)  # the same bytes, no second write; the next os.replace leaves this name intact
        except OSError:
            save_checkpoint(copy, state)
        for old in sorted(self.folder.glob("checkpoint_step*.pt"))[:-keep]:
            old.unlink(missing_ok=True)

    def load(self, path: Path | None = None) -> list[str]:
        """Restore every piece of state from a checkpoint of the same configuration and data (by default the
        run folder's, whose ``config.yaml`` must then agree with it:
        :func:`~contrastkit.runfolder.check_config_yaml`). Returns notes for the user (a resume on another
        number of processes is not bit-exact)."""
        own = path is None
        path = path or self.path
        ckpt = load_checkpoint(path, map_location=self.device)
        if own:
            check_config_yaml(self.folder, dict(ckpt["config"]))
        saved, current = dict(ckpt["config"]), self.config.to_dict()
        diff = sorted(k for k in set(saved) | set(current)
                      if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k))
        if diff:
            shown = "; ".join(f"{k}: {saved.get(k)!r} in the run, {current.get(k)!r} now" for k in diff)
            raise SettingsError(f"cannot resume {path}: settings differ from the run's ({shown}). Only "
                                f"{', '.join(RESUMABLE_CHANGES)} may change on resume; start a new run elsewhere")
        change = describe_change(ckpt.get("data") or {}, self.fingerprint)
        if change:
            raise SettingsError(f"cannot resume {path}: {change}. Resume needs the same data; start a new run")
        try:
            self.method.load_state_dict(ckpt["method"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.scheduler.load_state_dict(ckpt["scheduler"])
            if self.schedule_plan is not None:
                self.schedule_plan.load_state_dict(dict(ckpt.get("schedule_plan") or {}))
            self.progress.step = int(ckpt["progress"]["step"])
            notes = self.restore_rng(ckpt)
            self.progress.train_seconds = float(ckpt["progress"].get("train_seconds", 0.0))
        except (RuntimeError, KeyError, TypeError, IndexError, ValueError) as exc:
            raise CheckpointError(f"{path} does not fit this run: {type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0]}") from None
        if not 0 <= self.progress.step <= self.total_steps:
            raise CheckpointError(f"{path} is at step {self.progress.step}, beyond this run's {self.total_steps} "
                                  f"steps ({self.config.epochs} epochs); raise --epochs to continue it")
        if own:
            self.step = self.progress.step
        return notes

    def restore_rng(self, ckpt: dict[str, Any]) -> list[str]:
        """Rank r takes the RNG states saved for rank r (rank 0's are ``rng``, a single-process checkpoint's only
        ones). A rank the checkpoint has no state for (resumed on more processes than wrote it) takes rank 0's
        global states and reseeds its generator from (seed, rank, step): it runs, but not bit-exactly -- the
        returned note says so whenever the number of processes changed."""
        saved = ckpt.get("rank_rng")
        saved_world = len(saved) if saved is not None else 1
        rank, world = self.processes.rank, self.processes.world
        if rank == 0:
            restore_rng(ckpt["rng"], self.generator)
        elif saved is not None and rank < saved_world:
            restore_rng(saved[rank], self.generator)
        else:
            restore_rng(ckpt["rng"], None)
            seed = np.random.SeedSequence([self.config.seed, rank, self.progress.step]).generate_state(1, np.uint64)[0]
            self.generator.manual_seed(int(seed))
        if saved_world == world:
            return []
        return [f"resumed a checkpoint of {saved_world} process(es) on {world}: the global batches are the same, the "
                f"augmentation random numbers are not (this continuation is not bit-exact)"]
