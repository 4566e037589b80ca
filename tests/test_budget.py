"""The schedule planned for a time budget (contrastkit.budget), fed simulated step times: the planned step count
worked out by hand, re-estimates that follow a slowdown, the cap of the epochs, the slowest process's seconds, the
plan kept across a checkpoint, and re-plans for another budget that never raise the rate."""

from __future__ import annotations

import itertools
import math

import pytest

from contrastkit.budget import MARGIN, BudgetPlanner
from contrastkit.optim import WarmupCosine


def _run(planner: BudgetPlanner, step_time, first: int = 1, last: int | None = None, seconds: float = 0.0,
         stop_at: float | None = None) -> tuple[list[str], int, float]:
    """Steps ``first``, ``first + 1``, ... of ``step_time(step)`` seconds each, until the planned end, ``last`` or
    ``stop_at`` seconds; returns the lines logged, the last step and the seconds spent."""
    lines, step = [], first - 1
    while True:
        step += 1
        seconds += step_time(step)
        line = planner.after_step(step, seconds)
        if line is not None:
            lines.append(line)
        if planner.planned_steps is not None and step >= planner.planned_steps:
            return lines, step, seconds
        if (last is not None and step >= last) or (stop_at is not None and seconds >= stop_at):
            return lines, step, seconds


def test_the_planned_steps_at_a_steady_rate():
    """8 steps/s (0.125 s each), 6 s of budget, 120 steps in the epochs (warm-up 6). The measurement starts after
    step 5 (0.625 s) and spans 20 steps (2.5 s > 1 s): after step 25 (3.125 s) the rate is 20 / 2.5 = 8 steps/s,
    2.875 s remain, 8 x 2.875 x 0.97 = 22.31 -> 22 more steps: 47. The re-estimates every 0.6 s (5 steps) find
    47 again (e.g. after step 45: 45 + floor(8 x 0.375 x 0.97) = 47); the schedule ends at step 47, at 5.875 s."""
    assert MARGIN == 0.03
    schedule = WarmupCosine(120, 6)
    planner = BudgetPlanner(schedule, max_minutes=0.1, epoch_steps=120)
    lines, step, seconds = _run(planner, lambda step: 0.125)
    assert lines == ["schedule planned for the budget: 47 steps (0.1 min at 8.0 steps/s measured over steps 5-25)"]
    assert (step, seconds) == (47, 5.875) and schedule.total_steps == 47
    assert schedule(47) == 0.0  # the rate after the last step: its end value
    assert schedule(25) == pytest.approx(0.5 * (1 + math.cos(math.pi * 19 / 114)))  # unchanged up to the plan
    plan = planner.plan
    assert (plan.total_steps, plan.steps_per_s, plan.max_minutes) == (47, 8.0, 0.1)
    assert (plan.made_at_step, plan.measured_from, plan.measured_to) == (45, 40, 45)  # the last re-estimate


def test_a_machine_that_slows_down_after_the_plan_still_anneals():
    """As above, but from step 31 on each step takes 0.25 s. The re-estimate after step 35 (5 steps in 1.25 s:
    4 steps/s, 1 s left) plans 35 + floor(4 x 1 x 0.97) = 38 steps, done at 5.75 s, before the 6 s run out."""
    schedule = WarmupCosine(120, 6)
    planner = BudgetPlanner(schedule, max_minutes=0.1, epoch_steps=120)
    lines, step, seconds = _run(planner, lambda step: 0.125 if step <= 30 else 0.25, stop_at=6.0)
    assert lines[1] == ("schedule re-planned at step 35 (1 s of the budget left): 38 steps (0.1 min at 4.0 steps/s "
                        "measured over steps 30-35)")
    assert (step, seconds) == (38, 5.75) and schedule(38) == 0.0
    rates = [schedule(k) for k in range(6, 39)]
    assert all(b <= a for a, b in itertools.pairwise(rates))  # never up, though re-planned shorter


def test_the_epochs_cap_the_plan_and_then_the_schedule_is_unchanged():
    schedule = WarmupCosine(40, 6)
    planner = BudgetPlanner(schedule, max_minutes=0.1, epoch_steps=40)
    lines, _step, _ = _run(planner, lambda step: 0.125, last=40)
    assert lines == ["schedule planned for the budget: 40 steps (all the epochs' steps: the budget allows more) "
                     "(0.1 min at 8.0 steps/s measured over steps 5-25)"]
    assert planner.planned_steps is None and schedule.segments == []  # the epochs end the run, as without a budget
    assert planner.state_dict()["plan"]["total_steps"] == 40


def test_without_a_budget_nothing_is_planned():
    planner = BudgetPlanner(WarmupCosine(120, 6), max_minutes=None, epoch_steps=120)
    assert _run(planner, lambda step: 0.125, last=120) == ([], 120, 15.0)
    assert planner.plan is None and planner.state_dict() == {}


class _TwoProcesses:
    """This process and a slower one: ``max`` (the all-reduce) returns the other's seconds, 0.25 s a step."""

    rank, world = 0, 2

    def __init__(self) -> None:
        self.calls = 0

    def max(self, value: float) -> float:
        self.calls += 1
        return max(value, 0.25 * self.calls)


def test_under_several_processes_the_plan_is_the_slowest_processs():
    """The other process takes 0.25 s a step: measured after step 25 (20 steps in 5 s: 4 steps/s, 12 s budget,
    5.75 s left: 25 + floor(4 x 5.75 x 0.97) = 47); this process alone (8 steps/s) would have planned 93."""
    processes = _TwoProcesses()
    planner = BudgetPlanner(WarmupCosine(120, 6), max_minutes=0.2, epoch_steps=120, processes=processes)
    lines, step, _ = _run(planner, lambda step: 0.125)
    assert lines == ["schedule planned for the budget: 47 steps (0.2 min at 4.0 steps/s measured over steps 5-25)"]
    assert step == 47 and processes.calls == 47  # asked every step: a collective
    alone = BudgetPlanner(WarmupCosine(120, 6), max_minutes=0.2, epoch_steps=120)
    assert _run(alone, lambda step: 0.125, last=25)[0] == [
        "schedule planned for the budget: 93 steps (0.2 min at 8.0 steps/s measured over steps 5-25)"]


def test_a_checkpointed_planner_continues_the_same_plan():
    whole = BudgetPlanner(WarmupCosine(120, 6), max_minutes=0.1, epoch_steps=120)
    slow = lambda step: 0.125 if step <= 30 else 0.25  # noqa: E731
    expected = _run(whole, slow, stop_at=6.0)
    for cut in (3, 12, 27, 33):  # before the measurement, during it, after the plan, after a re-estimate
        first = BudgetPlanner(WarmupCosine(120, 6), max_minutes=0.1, epoch_steps=120)
        lines, _, seconds = _run(first, slow, last=cut)
        resumed = BudgetPlanner(WarmupCosine(120, 6), max_minutes=0.1, epoch_steps=120)
        resumed.load_state_dict(first.state_dict())
        assert resumed.resumed(cut, seconds) is None  # the same budget: the plan goes on as it was
        more, step, seconds = _run(resumed, slow, first=cut + 1, seconds=seconds, stop_at=6.0)
        assert (lines + more, step, seconds) == expected, cut
        assert [resumed.schedule(k) for k in range(60)] == [whole.schedule(k) for k in range(60)]
        assert resumed.plan == whole.plan


def test_a_resume_with_another_budget_replans_the_rest_without_raising_the_rate():
    """Stopped after step 33 (4.125 s) of a 6 s plan made at 8 steps/s. With 12 s: 33 + floor(8 x 7.875 x 0.97) =
    94 steps; with 4.8 s: 33 + floor(8 x 0.675 x 0.97) = 38; without a budget: the remaining epochs, to 120."""
    first = BudgetPlanner(WarmupCosine(120, 6), max_minutes=0.1, epoch_steps=120)
    _, _, seconds = _run(first, lambda step: 0.125, last=33)
    assert first.plan.total_steps == 47 and seconds == 4.125
    for minutes, total, line in (
            (0.2, 94, "schedule re-planned for max_minutes=0.2 (was 0.1) at step 33: 94 steps (0.2 min at 8.0 "
                      "steps/s measured over steps 25-30)"),
            (0.08, 38, "schedule re-planned for max_minutes=0.08 (was 0.1) at step 33: 38 steps (0.08 min at 8.0 "
                       "steps/s measured over steps 25-30)"),
            (None, 120, "no max_minutes now: the schedule planned for max_minutes=0.1 continues over the remaining "
                        "epochs, to step 120")):
        planner = BudgetPlanner(WarmupCosine(120, 6), max_minutes=minutes, epoch_steps=120)
        planner.load_state_dict(first.state_dict())
        rate_in_use = planner.schedule(33)
        assert planner.resumed(33, seconds) == line
        assert planner.schedule.total_steps == total and planner.schedule(33) == rate_in_use
        rates = [planner.schedule(k) for k in range(33, total + 1)]
        assert all(b <= a for a, b in itertools.pairwise(rates)) and rates[-1] == 0.0
    assert planner.plan is None and planner.planned_steps is None


def test_an_ended_plan_is_not_reopened_by_a_longer_budget():
    first = BudgetPlanner(WarmupCosine(120, 6), max_minutes=0.1, epoch_steps=120)
    _, step, seconds = _run(first, lambda step: 0.125)
    assert step == 47
    longer = BudgetPlanner(WarmupCosine(120, 6), max_minutes=1.0, epoch_steps=120)
    longer.load_state_dict(first.state_dict())
    assert longer.resumed(47, seconds) is None and longer.schedule.total_steps == 47
    assert longer.finished(47) == ("the schedule planned for max_minutes=0.1 ended at step 47 (the learning rate is "
                                   "at its end value): nothing to train; a longer budget does not reopen it: start a "
                                   "new run (another --out, or --overwrite) with more --max-minutes")
    assert first.finished(30) is None
