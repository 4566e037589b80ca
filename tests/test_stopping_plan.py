"""The stop at the end of the schedule planned for the budget: its place among the reasons and the messages that
say which reason stopped the run."""

from __future__ import annotations

from pathlib import Path

from contrastkit.stopping import StopConditions


def test_the_planned_end_stops_the_run_before_the_minutes_say_so() -> None:
    stop = StopConditions(max_minutes=5.0, max_steps=100)
    assert stop.after_step(46, 250.0, planned_steps=47) is None
    assert stop.after_step(47, 250.0, planned_steps=47) == "the schedule planned for max_minutes=5 is done"
    assert stop.after_step(47, 300.0, planned_steps=47) == "the schedule planned for max_minutes=5 is done"
    assert stop.after_step(40, 300.0, planned_steps=47) == "max_minutes=5"  # a slower end: the minutes first
    assert stop.after_step(100, 10.0, planned_steps=None) == "max_steps=100"
    stop.signals.request("SIGINT")
    assert stop.after_step(47, 300.0, planned_steps=47) == "interrupted (SIGINT)"


def test_the_messages_say_whether_the_plan_or_the_minutes_ended_the_run() -> None:
    stop, out = StopConditions(max_minutes=5.0), Path("runs/x")
    assert stop.resume_message("the schedule planned for max_minutes=5 is done", 2345, 3000, 291.4, out, 2345) == (
        "stopped at step 2345 of 3000 after 291 s of training (the schedule planned for max_minutes=5 is done: the "
        "learning rate is at its end value); checkpoint saved in runs/x; to train longer, start a new run with more "
        "--max-minutes (a resume does not reopen an ended schedule)")
    assert stop.resume_message("max_minutes=5", 2300, 3000, 300.0, out, 2345) == (
        "stopped at step 2300 of 2345 planned (3000 in the epochs) after 300 s of training (max_minutes=5, before the "
        "end of the schedule planned for it); checkpoint saved in runs/x; continue with `contrastkit train --out "
        "runs/x --resume --max-minutes 10`")
    assert stop.resume_message("interrupted (SIGTERM)", 70, 3000, 9.0, out, 2345) == (
        "stopped at step 70 of 2345 planned (3000 in the epochs) after 9 s of training (interrupted (SIGTERM)); "
        "checkpoint saved in runs/x; continue with `contrastkit train --out runs/x --resume`")
