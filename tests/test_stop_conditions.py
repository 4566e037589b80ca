"""Stop conditions on their own: why a run stops after a step (signal, minutes, steps, in that order), the
agreement of processes on a signal or the minutes, the message for minutes spent before a session, and the resume
message."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch

from contrastkit.stopping import SignalStop, StopConditions


class _OtherProcessSays:
    """Two processes where the other one raised ``flags``: any_process is the OR of both (as the all-reduce)."""

    rank, world = 0, 2

    def __init__(self, signalled: bool, out_of_time: bool) -> None:
        self.other = torch.tensor([signalled, out_of_time])
        self.calls = 0

    def any_process(self, flags: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return (flags | self.other).int()


def test_the_reasons_in_order() -> None:
    stop = StopConditions(max_minutes=1.0, max_steps=10)
    assert stop.after_step(9, 59.9) is None
    assert stop.after_step(10, 10.0) == "max_steps=10"
    assert stop.after_step(3, 60.0) == "max_minutes=1"  # minutes before steps
    assert stop.after_step(10, 60.0) == "max_minutes=1"
    stop.signals.request("SIGTERM")
    assert stop.after_step(10, 60.0) == "interrupted (SIGTERM)" and stop.interrupted == "SIGTERM"
    assert StopConditions().after_step(10**6, 10.0**6) is None  # no limits: only the epochs end the run


def test_a_signal_inside_is_recorded_and_the_request_cleared_on_entry() -> None:
    stop = StopConditions(max_steps=5)
    stop.signals.request("earlier")
    with stop:
        assert stop.interrupted is None
        os.kill(os.getpid(), signal.SIGINT)  # recorded, not raised
        assert stop.after_step(1, 0.0) == "interrupted (SIGINT)"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_processes_agree_on_a_signal_or_the_minutes_of_another_process() -> None:
    other = _OtherProcessSays(signalled=True, out_of_time=False)
    stop = StopConditions(max_minutes=5.0, processes=other, signals=SignalStop())
    assert stop.after_step(1, 0.0) == "interrupted (a signal to another process)" and other.calls == 1
    late = StopConditions(max_minutes=5.0, max_steps=1, processes=_OtherProcessSays(False, True))
    assert late.after_step(1, 0.0) == "max_minutes=5"  # the other process ran out of time: both stop for that
    assert late.interrupted is None
    calm = _OtherProcessSays(False, False)
    assert StopConditions(processes=calm).after_step(1, 0.0) is None and calm.calls == 1  # asked every step


def test_minutes_spent_before_the_session_and_the_resume_message() -> None:
    stop = StopConditions(max_minutes=2.0)
    assert stop.already_spent(119.0, 40, 100) is None
    assert stop.already_spent(120.0, 100, 100) is None  # the run is finished: nothing to say
    assert stop.already_spent(150.4, 40, 100) == ("max_minutes=2 already spent (150 s of training at step 40); raise "
                                                  "--max-minutes to continue")
    assert StopConditions().already_spent(10.0**6, 1, 2) is None
    out = Path("runs/x")
    assert stop.resume_message("max_minutes=2", 40, 100, 121.0, out) == (
        "stopped at step 40 of 100 after 121 s of training (max_minutes=2); checkpoint saved in runs/x; continue with "
        "`contrastkit train --out runs/x --resume --max-minutes 4`")
    assert stop.resume_message("interrupted (SIGINT)", 7, 100, 3.0, out) == (
        "stopped at step 7 of 100 after 3 s of training (interrupted (SIGINT)); checkpoint saved in runs/x; continue "
        "with `contrastkit train --out runs/x --resume`")
