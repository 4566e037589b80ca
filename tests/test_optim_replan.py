"""The trainer's schedule re-planned mid-run (WarmupCosine.replan): the rate in use never changes at a re-plan,
the rest is stretched or squeezed to the new end (hand-computed values), the rate never rises after the warm-up,
an ended schedule stays ended, and without a re-plan the values are the unplanned schedule's, bit for bit."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from contrastkit.optim import WarmupCosine, lr_scheduler, warmup_cosine_schedule


def _unplanned(step: int, total: int, warmup: int, final: float = 0.0) -> float:
    """The schedule as it was written before re-plans existed (the reference)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _cos(progress: float, peak: float = 1.0) -> float:
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


@pytest.mark.parametrize(("total", "warmup", "final"), [(10, 2, 0.0), (120, 6, 0.0), (37, 0, 0.1), (5, 9, 0.0)])
def test_without_a_replan_the_values_are_the_unplanned_ones_exactly(total, warmup, final):
    schedule = WarmupCosine(total, warmup, final)
    assert [schedule(k) for k in range(total + 3)] == [_unplanned(k, total, min(warmup, total), final)
                                                       for k in range(total + 3)]
    assert schedule.total_steps == total and schedule.state_dict() == {}


def test_a_replan_in_the_cosine_keeps_the_current_rate_and_spreads_the_rest():
    schedule = WarmupCosine(100, 0)  # progress k / 100
    assert schedule.replan(50, 60)
    assert schedule(50) == _unplanned(50, 100, 0) == pytest.approx(0.5)  # the rate in use is unchanged
    # the remaining progress 0.5 -> 1 is spread over steps 50 -> 60
    assert schedule(55) == pytest.approx(_cos(0.75))
    assert schedule.progress(55) == pytest.approx(0.75)
    assert schedule(60) == 0.0 and schedule(70) == 0.0 and schedule.total_steps == 60
    longer = WarmupCosine(100, 0)
    longer.replan(50, 150)  # a longer plan: the same fall, slower
    assert longer(100) == pytest.approx(_cos(0.75)) and longer(150) == 0.0
    values = [longer(k) for k in range(151)]
    assert all(b <= a for a, b in itertools.pairwise(values))


def test_a_replan_in_the_warm_up_ramps_to_the_peak_by_the_capped_end():
    schedule = WarmupCosine(100, 40)
    assert schedule(9) == 10 / 40
    schedule.replan(9, 50, warmup_cap=20)  # warm-up ends at 20 (the cap) instead of 40
    assert schedule(9) == 0.25
    assert schedule(15) == pytest.approx(0.25 + 0.75 * 6 / 11)  # the straight ramp 0.25 at 9 -> 1 at 20
    assert schedule(20) == 1.0 and schedule.progress(20) == 0.0
    assert schedule(35) == pytest.approx(_cos(0.5))  # the cosine over steps 20 -> 50
    assert schedule(50) == 0.0 and schedule.warmup_end == 20


def test_a_replan_after_the_capped_warm_up_end_keeps_the_rate_reached_as_the_peak():
    schedule = WarmupCosine(100, 40)
    schedule.replan(30, 70, warmup_cap=10)  # step 30 is past the cap: no jump up to 1
    assert schedule(30) == 31 / 40
    assert schedule(50) == pytest.approx(_cos(0.5, peak=31 / 40))
    assert schedule(70) == 0.0
    values = [schedule(k) for k in range(30, 71)]
    assert max(values) == 31 / 40 and all(b <= a for a, b in itertools.pairwise(values))


def test_replans_never_raise_the_rate_and_an_ended_schedule_stays_ended():
    schedule = WarmupCosine(200, 10)
    values = [schedule(k) for k in range(0, 40)]
    for step, total in ((40, 120), (60, 180), (80, 90), (85, 300), (89, 89)):
        values += [schedule(k) for k in range(len(values), step)]
        before = schedule(step)
        schedule.replan(step, total)
        assert schedule(step) == before  # the rate in use is kept at every re-plan
    values += [schedule(k) for k in range(len(values), 100)]
    after_warmup = values[10:]
    assert all(b <= a for a, b in itertools.pairwise(after_warmup))
    assert schedule.total_steps == 90 and schedule(90) == 0.0  # (89, 89): at least one more step
    assert not schedule.replan(95, 400) and schedule(200) == 0.0  # ended: nothing to stretch


def test_the_replan_survives_a_state_dict_round_trip_and_drives_the_optimizer():
    schedule = WarmupCosine(100, 0)
    schedule.replan(50, 60)
    copy = WarmupCosine(100, 0)
    copy.load_state_dict(schedule.state_dict())
    assert [copy(k) for k in range(70)] == [schedule(k) for k in range(70)]
    copy.load_state_dict({})
    assert copy.total_steps == 100

    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=2.0)
    live = WarmupCosine(10, 0)
    scheduler = lr_scheduler(optimizer, live)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    live.replan(4, 6)  # applies from the next scheduler step
    rates = []
    for _ in range(2):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == [pytest.approx(2.0 * _cos(0.4 + 0.6 * 0.5)), 0.0]
    assert scheduler.state_dict()["lr_lambdas"] == [None]  # the plan is saved beside it, not inside
    assert isinstance(warmup_cosine_schedule(optimizer, 10, 2), torch.optim.lr_scheduler.LambdaLR)
