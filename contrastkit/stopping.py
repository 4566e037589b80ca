"""When a loop stops early: on a signal (Ctrl-C, SIGTERM), out of minutes, or after a number of steps.

:class:`SignalStop` records a signal; :class:`StopConditions` is what a training loop asks after every step
("stop now? why?"), with the processes of a run agreeing on the answer, and the message that says how to resume.

Signals: Ctrl-C (SIGINT) or SIGTERM ask a loop to stop at its next safe point.

A signal handler that raises ``KeyboardInterrupt`` wherever the interpreter happens to be can land inside a
third-party import or cleanup that swallows it (torch imports ``torch._dynamo`` on the first optimizer step; a
Ctrl-C there was seen to be lost). :class:`SignalStop` only records the request; the loop asks
:attr:`SignalStop.requested` between steps. A second signal while one is pending raises ``KeyboardInterrupt`` at once,
so a loop that never reaches a safe point can still be stopped.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType, TracebackType

import torch

from contrastkit.process_group import OneProcess, Processes

#: the start of the reason a run stops at the end of the schedule planned for its ``max_minutes``
PLAN_DONE = "the schedule planned"


class SignalStop:
    """Context manager: while inside, ``signals`` set :attr:`reason` (the signal's name) instead of interrupting.

    Outside the main thread (where Python cannot install handlers) it does nothing: :attr:`reason` stays None.
    The previous handlers are restored on exit."""

    def __init__(self, signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self.signals = signals
        self.reason: str | None = None
        self._previous: dict[signal.Signals, object] = {}

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str) -> None:
        """Record a stop asked for by something other than a signal (e.g. another process of the group)."""
        if self.reason is None:
            self.reason = reason

    def clear(self) -> None:
        self.reason = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is not None:
            raise KeyboardInterrupt
        self.reason = signal.Signals(signum).name

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.signals}
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous = {}


class StopConditions:
    """The reasons a training stops before its last epoch, checked after each step: a signal (Ctrl-C / SIGTERM,
    :class:`SignalStop`), the end of the schedule planned for ``max_minutes`` (:mod:`contrastkit.budget`: the
    rate is at its end value), ``max_minutes`` of training spent (over all sessions of the run), ``max_steps``
    optimizer steps done (in all). Under a process group the signal and the minutes are agreed with an
    all-reduce every step (any process's says stop for all), so every process stops after the same step and none
    waits for one that left; ``max_steps`` is the same everywhere.

    A context manager: inside, signals are recorded instead of interrupting (and a previous request is cleared
    on entry)."""

    def __init__(self, max_minutes: float | None = None, max_steps: int | None = None,
                 processes: Processes | None = None, signals: SignalStop | None = None) -> None:
        self.max_minutes, self.max_steps = max_minutes, max_steps
        self.processes = processes if processes is not None else OneProcess()
        self.signals = signals if signals is not None else SignalStop()

    @property
    def interrupted(self) -> str | None:
        """The signal that stopped the run (or "a signal to another process"), None when none came."""
        return self.signals.reason

    def _out_of_time(self, train_seconds: float) -> bool:
        return self.max_minutes is not None and train_seconds >= 60 * self.max_minutes

    def already_spent(self, train_seconds: float, step: int, total_steps: int) -> str | None:
        """Before the first step of a session: the message when ``max_minutes`` is already spent by the earlier
        sessions of an unfinished run (nothing is to be trained), else None."""
        if not (self._out_of_time(train_seconds) and step < total_steps):
            return None
        return (f"max_minutes={self.max_minutes:g} already spent ({train_seconds:.0f} s of training at step {step}); "
                f"raise --max-minutes to continue")

    def after_step(self, step: int, train_seconds: float, planned_steps: int | None = None) -> str | None:
        """Why the run stops after optimizer step ``step`` (``interrupted (SIGINT)``, ``the schedule planned for
        max_minutes=M is done`` when ``step`` reaches ``planned_steps``, ``max_minutes=M``, ``max_steps=N``, in that
        order), or None to go on. A collective under a process group: every process calls it every step
        (``planned_steps`` is the same on every process: the plan is made from agreed numbers)."""
        out_of_time = self._out_of_time(train_seconds)
        if self.processes.world > 1:
            flags = self.processes.any_process(torch.tensor([self.signals.requested, out_of_time]))
            signalled, out_of_time = (bool(v) for v in flags.tolist())
            if signalled:
                self.signals.request("a signal to another process")
        if self.signals.requested:
            return f"interrupted ({self.signals.reason})"
        if planned_steps is not None and step >= planned_steps:
            return f"{PLAN_DONE} for max_minutes={self.max_minutes:g} is done"
        if out_of_time:
            return f"max_minutes={self.max_minutes:g}"
        if self.max_steps is not None and step >= self.max_steps:
            return f"max_steps={self.max_steps}"
        return None

    def resume_message(self, reason: str, step: int, total_steps: int, train_seconds: float, out: Path,
                       planned_steps: int | None = None) -> str:
        """What the user reads when the run stopped early for ``reason``: where it stopped and the command that
        continues it (with twice the minutes when they ran out). ``planned_steps``: where the schedule planned for
        the budget ends, when it ends before the epochs' ``total_steps``."""
        if reason.startswith(PLAN_DONE):
            return (f"stopped at step {step} of {total_steps} after {train_seconds:.0f} s of training ({reason}: the "
                    f"learning rate is at its end value); checkpoint saved in {out}; to train longer, start a new "
                    f"run with more --max-minutes (a resume does not reopen an ended schedule)")
        more = f" --max-minutes {2 * self.max_minutes:g}" if reason.startswith("max_minutes") else ""
        of = f"{total_steps}" if planned_steps is None else f"{planned_steps} planned ({total_steps} in the epochs)"
        early = ", before the end of the schedule planned for it" \
            if planned_steps is not None and reason.startswith("max_minutes") else ""
        return (f"stopped at step {step} of {of} after {train_seconds:.0f} s of training ({reason}{early}); "
                f"checkpoint saved in {out}; continue with `contrastkit train --out {out} --resume{more}`")

    def __enter__(self) -> StopConditions:
        self.signals.clear()
        self.signals.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.signals.__exit__(kind, exc, tb)
