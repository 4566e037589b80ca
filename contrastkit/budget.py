"""A learning-rate schedule planned for a time budget: with ``max_minutes``, the schedule ends when the minutes do.

Without a budget the schedule (:class:`~contrastkit.optim.WarmupCosine`) spans ``epochs``; a run capped by
``max_minutes`` would stop mid-schedule, its rate far from annealed (on a slow machine at 11 % of its peak). The
:class:`BudgetPlanner` measures the step rate and re-plans the schedule to end at

    planned steps = min(epochs x steps per epoch, step + steps the remaining budget allows)

How, in numbers (the module constants):

* **Time** is the run's training seconds (``Progress.train_seconds``, over all its sessions): the same clock the
  ``max_minutes`` stop reads. It counts the steps, their logging and the wait for streamed batches; the checkpoint
  saves are outside it, so they neither shorten the plan nor spend the budget.
* **The first plan**: the first :data:`SKIP_STEPS` steps of a run are left out (first-call allocations, lazy
  imports: much slower than the rest); the rate is then measured over a window of at least
  :data:`MIN_WINDOW_STEPS` steps and at least :data:`MIN_WINDOW_SECONDS` s or :data:`MIN_WINDOW_SHARE` of the
  budget, whichever is longer. Until then the schedule runs as built (its warm-up is linear in steps anyway).
* **Re-estimates**: every :data:`REPLAN_SHARE` of the budget (and at least :data:`MIN_REPLAN_STEPS` steps) the
  rate is measured again over the steps since the last estimate and the remaining steps re-planned from the
  remaining budget, so a machine that slows down (or speeds up) after the first plan still ends its schedule with
  the budget.
* **Margin**: each plan takes :data:`MARGIN` of the remaining seconds off, for steps slower than the measured ones;
  as the re-estimates come closer to the end, the margin (a share of what remains) shrinks with it.
* **The warm-up** keeps its length in steps, but never more than its configured share of the schedule
  (``warmup_epochs / epochs``) of the planned steps; a plan made after that point ends the warm-up at the rate
  reached (:meth:`~contrastkit.optim.WarmupCosine.replan`: the rate never jumps).
* **Re-plans never raise the rate**: the remaining part of the cosine is stretched or squeezed from the progress
  reached (:meth:`~contrastkit.optim.WarmupCosine.replan`); a schedule that has ended stays ended.
* **The stop**: the run stops after the planned step (the rate at its end value) or when the minutes are spent,
  whichever comes first, and the stop message says which; the planned end may fall mid-epoch, where the final
  checkpoint is saved as at any stop. A resume after the planned end trains nothing, whatever its ``max_minutes``
  (the rate would stay at its end value), and says so.
* **What is shown**: the first plan, and each re-plan that moves the end by :data:`LOGGED_CHANGE` or more, is a
  line of the run's output (``schedule planned for the budget: 2,345 steps (5 min at 8.1 steps/s measured over
  steps 5-25)``); ``fit()``'s summary holds the last plan (``schedule_plan``) and the rate after the last step
  (``final_lr``); the checkpoint holds the plan as ``schedule_plan``.

Every input of a decision is recorded state: the step, the training seconds, the last estimate (its step and
seconds) and the plan -- all in the checkpoint (:meth:`BudgetPlanner.state_dict`), so a resumed run with the same
``max_minutes`` continues the same plan, and makes the same later re-estimates given the same step times. A resume
with another ``max_minutes`` (or ``epochs``) re-plans at once from the remaining budget at the last measured rate
(:meth:`BudgetPlanner.resumed`); one without ``max_minutes`` stretches the remaining cosine over the remaining
epochs. A resumed session's own first steps (slow again) fall in the next re-estimate's window: a slightly low
rate, i.e. a plan on the safe side, corrected by the re-estimate after it. Under several processes the seconds are
the slowest process's (an all-reduce), so every process makes the same plan at the same step.

Another schedule that must end with the rate (a momentum or temperature cosine: none exists yet) reads the same
plan through :class:`~contrastkit.optim.WarmupCosine` (the trainer's ``schedule``): ``schedule.progress(step)``
goes from 0 (end of the warm-up) to 1 (the planned end) and never falls, across every re-plan.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from contrastkit.optim import WarmupCosine
from contrastkit.process_group import ONE_PROCESS, Processes

__all__ = ["LOGGED_CHANGE", "MARGIN", "MIN_REPLAN_STEPS", "MIN_WINDOW_SECONDS", "MIN_WINDOW_SHARE", "MIN_WINDOW_STEPS",
           "REPLAN_SHARE", "SKIP_STEPS", "BudgetPlan", "BudgetPlanner"]

#: the first steps of a run, left out of the first measurement (they are much slower than the rest)
SKIP_STEPS = 5
#: the first measurement spans at least this many steps ...
MIN_WINDOW_STEPS = 20
#: ... and at least this many seconds ...
MIN_WINDOW_SECONDS = 1.0
#: ... or this share of the budget, when longer
MIN_WINDOW_SHARE = 0.01
#: the rate is measured again, and the rest re-planned, every this share of the budget ...
REPLAN_SHARE = 0.10
#: ... over at least this many steps
MIN_REPLAN_STEPS = 5
#: each plan leaves this share of the remaining seconds unplanned, for steps slower than measured
MARGIN = 0.03
#: a re-estimate that moves the planned end by less than this share is not logged (the plan changes all the same)
LOGGED_CHANGE = 0.01


@dataclass(frozen=True)
class BudgetPlan:
    """A plan: the schedule ends after ``total_steps`` optimizer steps; made after step ``made_at_step``
    (``made_at_seconds`` of training) for ``max_minutes``, from ``steps_per_s`` measured over steps
    ``measured_from``-``measured_to``; ``epoch_steps`` is the cap it was made under (epochs x steps per epoch)."""

    total_steps: int
    steps_per_s: float
    measured_from: int
    measured_to: int
    max_minutes: float
    made_at_step: int
    made_at_seconds: float
    epoch_steps: int

    @property
    def capped_by_epochs(self) -> bool:
        """The epochs end before the budget would: the schedule is the one the epochs give."""
        return self.total_steps >= self.epoch_steps

    def describe(self) -> str:
        """E.g. ``12,345 steps (5.0 min at 41.2 steps/s measured over steps 20-120)``."""
        limit = " (all the epochs' steps: the budget allows more)" if self.capped_by_epochs else ""
        return (f"{self.total_steps:,} steps{limit} ({self.max_minutes:g} min at {self.steps_per_s:.1f} steps/s "
                f"measured over steps {self.measured_from}-{self.measured_to})")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BudgetPlanner:
    """Plans ``schedule`` for ``max_minutes`` of training (module docstring); ``epoch_steps`` caps the plan.
    ``max_minutes=None``: no budget, nothing is planned (a plan loaded from a checkpoint is stretched back to the
    epochs by :meth:`resumed`).

    :meth:`after_step` is called after every optimizer step with the step and the run's training seconds; it is a
    collective under a process group (``processes``: the seconds are all-reduced)."""

    def __init__(self, schedule: WarmupCosine, max_minutes: float | None, epoch_steps: int,
                 processes: Processes = ONE_PROCESS) -> None:
        self.schedule, self.max_minutes, self.epoch_steps = schedule, max_minutes, int(epoch_steps)
        self.processes = processes
        self.plan: BudgetPlan | None = None
        self.window: tuple[int, float] | None = None  # (step, seconds) where the current measurement began

    # ------------------------------------------------------------------ what the loop asks
    @property
    def budget_seconds(self) -> float | None:
        return None if self.max_minutes is None else 60.0 * self.max_minutes

    @property
    def planned_steps(self) -> int | None:
        """The step the plan stops the run at, when it ends before the epochs (else None: the epochs end it)."""
        if self.plan is None or self.max_minutes is None or self.plan.capped_by_epochs:
            return None
        return self.schedule.total_steps

    def _ended(self, step: int) -> bool:
        """The planned schedule has run its course (its rate is at the end value): nothing is re-planned."""
        return self.plan is not None and self.schedule.progress(step) >= 1.0

    def after_step(self, step: int, seconds: float) -> str | None:
        """Measure and (re-)plan after optimizer step ``step`` at ``seconds`` of training; returns the line to log
        for the first plan and for a re-plan that moved the end by :data:`LOGGED_CHANGE` or more, else None."""
        if self.max_minutes is None:
            return None
        if self.processes.world > 1:
            seconds = self.processes.max(seconds)  # the slowest process's: every process plans alike
        if self._ended(step):
            return None
        if self.window is None:
            if step >= SKIP_STEPS or self.plan is not None:
                self.window = (step, seconds)
            return None
        first, start = self.window
        steps, spent = step - first, seconds - start
        if self.plan is None:
            due = steps >= MIN_WINDOW_STEPS and spent >= max(MIN_WINDOW_SECONDS, MIN_WINDOW_SHARE * self.budget_seconds)
        else:
            due = steps >= MIN_REPLAN_STEPS and spent >= REPLAN_SHARE * self.budget_seconds
        if not due or spent <= 0:
            return None
        before = self.plan
        plan = self._plan(step, seconds, steps / spent, first, step)
        if before is None:
            return f"schedule planned for the budget: {plan.describe()}"
        if abs(plan.total_steps - before.total_steps) >= max(1.0, LOGGED_CHANGE * before.total_steps):
            return (f"schedule re-planned at step {step:,} ({self.budget_seconds - seconds:.0f} s of the budget "
                    f"left): {plan.describe()}")
        return None

    def _plan(self, step: int, seconds: float, rate: float, measured_from: int, measured_to: int) -> BudgetPlan:
        """Plan the rest from ``step`` (``seconds`` of training spent) at ``rate`` steps/s, make the schedule
        end there (the warm-up keeps at most its configured share of the schedule: module docstring) and start
        the next measurement."""
        remaining = max(0.0, self.budget_seconds - seconds)
        allowed = step + math.floor(rate * remaining * (1.0 - MARGIN))
        total = max(step + 1, min(self.epoch_steps, allowed))
        share = self.schedule.base_warmup / max(1, self.schedule.base_total)
        self.schedule.replan(step, total, warmup_cap=round(share * total))
        self.plan = BudgetPlan(total_steps=self.schedule.total_steps, steps_per_s=rate, measured_from=measured_from,
                               measured_to=measured_to, max_minutes=float(self.max_minutes), made_at_step=step,
                               made_at_seconds=seconds, epoch_steps=self.epoch_steps)
        self.window = (step, seconds)
        return self.plan

    # ------------------------------------------------------------------ a session's start
    def finished(self, step: int) -> str | None:
        """Before a session's first step: the message when the planned schedule has already ended before the
        epochs (a longer budget does not reopen it: the rate would stay at its end), else None."""
        if not self._ended(step) or self.plan.capped_by_epochs:
            return None
        return (f"the schedule planned for max_minutes={self.plan.max_minutes:g} ended at step "
                f"{self.schedule.total_steps:,} (the learning rate is at its end value): nothing to train; a longer "
                f"budget does not reopen it: start a new run (another --out, or --overwrite) with more --max-minutes")

    def resumed(self, step: int, seconds: float) -> str | None:
        """After a checkpoint was loaded at ``step`` (``seconds`` of training): re-plan when the budget or the
        epochs changed since the plan was made -- from the remaining budget at the last measured rate; without a
        budget, over the remaining epochs. Returns the line to log, or None when the plan goes on as it was (or
        has ended: :meth:`finished`)."""
        if self._ended(step):
            return None
        if self.max_minutes is None:
            if self.schedule.segment is None:
                return None
            self.schedule.replan(step, self.epoch_steps)  # a plan of an earlier session: stretched to the epochs
            old, self.plan, self.window = self.plan, None, None
            was = f" planned for max_minutes={old.max_minutes:g}" if old is not None else ""
            return (f"no max_minutes now: the schedule{was} continues over the remaining epochs, to step "
                    f"{self.schedule.total_steps:,}")
        if self.plan is None or (self.plan.max_minutes, self.plan.epoch_steps) == (self.max_minutes, self.epoch_steps):
            return None
        old = self.plan
        plan = self._plan(step, seconds, old.steps_per_s, old.measured_from, old.measured_to)
        changed = f"max_minutes={self.max_minutes:g} (was {old.max_minutes:g})" if old.max_minutes != self.max_minutes \
            else f"{self.epoch_steps:,} epoch steps (was {old.epoch_steps:,})"
        return f"schedule re-planned for {changed} at step {step:,}: {plan.describe()}"

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        """Plain values for a checkpoint: the plan, the current measurement's start and the schedule's re-plan;
        empty when none of them exists (a run without a budget checkpoints nothing more)."""
        state: dict[str, Any] = {}
        if self.plan is not None:
            state["plan"] = self.plan.as_dict()
        if self.window is not None:
            state["window"] = [int(self.window[0]), float(self.window[1])]
        state.update(self.schedule.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        plan, window = state.get("plan"), state.get("window")
        self.plan = None if plan is None else BudgetPlan(
            total_steps=int(plan["total_steps"]), steps_per_s=float(plan["steps_per_s"]),
            measured_from=int(plan["measured_from"]), measured_to=int(plan["measured_to"]),
            max_minutes=float(plan["max_minutes"]), made_at_step=int(plan["made_at_step"]),
            made_at_seconds=float(plan["made_at_seconds"]), epoch_steps=int(plan["epoch_steps"]))
        self.window = None if window is None else (int(window[0]), float(window[1]))
        self.schedule.load_state_dict(state)
