"""The trainer with ``max_minutes``: its learning-rate schedule is planned to end with the budget. A simulated clock
makes every step take a known time (tests never read the wall clock), so the planned step counts are worked out by
hand (the same cases as tests/test_budget.py, through the real loop): the rate reaches its end value at the last
step, also when the machine slows down after the plan; a resumed run continues the same plan exactly; a resume
with another budget re-plans the rest without raising the rate."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from contrastkit.checkpoint import load_checkpoint
from contrastkit.config import TrainConfig
from contrastkit.train import Trainer
from tests.helpers import write_quadrant_npz


def _slowing(step: int) -> float:
    return 0.125 if step <= 30 else 0.25



@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    """64 grey 8x8 images in 4 classes (bright quadrant = class), with noise: 51 train images, 3 steps of 16."""
    return write_quadrant_npz(tmp_path_factory.mktemp("data"))


class _SimulatedClock:
    """The trainer's clock, where optimizer step k takes ``step_time(k)`` seconds and nothing else takes any."""

    def __init__(self, trainer: Trainer, step_time: Callable[[int], float]) -> None:
        self.now = 0.0
        original = trainer.train_step

        def timed(*args):
            logs = original(*args)
            self.now += step_time(trainer.step)
            return logs

        trainer.train_step = timed
        trainer.clock = self

    def __call__(self) -> float:
        return self.now


def _trainer(data: Path, out: Path, step_time: Callable[[int], float] = lambda step: 0.125,
             **settings: object) -> Trainer:
    """120 steps in the epochs (40 x 3), a warm-up of 6; 6 s of budget unless told. One thread in fp32: the steps
    of so small a network are many times faster so on a busy machine."""
    values = dict(method="simclr", data=str(data), out=str(out), epochs=40, batch_size=16, lr=1e-3,
                  warmup_epochs=2.0, progress=False, log_every=1, seed=7, max_minutes=0.1, num_threads=1,
                  precision="fp32")
    values.update(settings)
    trainer = Trainer.from_config(TrainConfig(**values))
    _SimulatedClock(trainer, step_time)
    return trainer


def _rows(out: Path) -> list[tuple[int, float, float]]:
    """(step, loss, lr) of every row of the run's log."""
    with (out / "train_log.csv").open() as f:
        return [(int(r["step"]), float(r["loss"]), float(r["lr"])) for r in csv.DictReader(f)]


def _never_up(rates: list[float]) -> bool:
    return all(b <= a for a, b in itertools.pairwise(rates))


def test_a_capped_run_ends_its_schedule_with_the_budget(tiny_npz, tmp_path, capsys):
    """8 steps/s, 6 s: measured over steps 5-25 (8 steps/s), 2.875 s left: 25 + floor(8 x 2.875 x 0.97) = 47."""
    out = tmp_path / "run"
    summary = _trainer(tiny_npz, out).fit()
    assert summary["steps"] == 47 and summary["train_seconds"] == 5.875  # the budget is 6 s
    assert summary["stop_reason"] == "the schedule planned for max_minutes=0.1 is done"
    assert summary["final_lr"] == 0.0
    plan = summary["schedule_plan"]
    assert (plan["total_steps"], plan["steps_per_s"], plan["max_minutes"], plan["epoch_steps"]) == (47, 8.0, 0.1, 120)
    rows = _rows(out)
    assert [r[0] for r in rows] == list(range(1, 48)) and rows[-1][2] == 0.0  # the rate after the last step
    assert _never_up([r[2] for r in rows[6:]])
    saved = load_checkpoint(out / "checkpoint.pt")
    assert saved["progress"]["step"] == 47 and saved["schedule_plan"]["plan"]["total_steps"] == 47
    printed = capsys.readouterr().out
    assert "schedule planned for the budget: 47 steps (0.1 min at 8.0 steps/s measured over steps 5-25)" in printed
    assert (f"stopped at step 47 of 120 after 6 s of training (the schedule planned for max_minutes=0.1 is done: the "
            f"learning rate is at its end value); checkpoint saved in {out}") in printed


def test_a_machine_that_slows_down_after_the_plan_still_anneals(tiny_npz, tmp_path):
    """From step 31 on a step takes 0.25 s: the re-estimate after step 35 plans 38 steps (tests/test_budget.py);
    with the plan of step 25 alone (47 steps) the 6 s would run out after step 39 with the rate far from 0."""
    summary = _trainer(tiny_npz, tmp_path / "run", _slowing).fit()
    assert summary["steps"] == 38 and summary["final_lr"] == 0.0
    assert summary["stop_reason"] == "the schedule planned for max_minutes=0.1 is done"
    rows = _rows(tmp_path / "run")
    assert rows[-1][:1] == (38,) and rows[-1][2] == 0.0 and _never_up([r[2] for r in rows[6:]])


@pytest.mark.parametrize("cut", [12, 33])  # during the first measurement; after the plan and a re-estimate
def test_a_resumed_run_continues_the_same_plan_exactly(tiny_npz, tmp_path, cut):
    whole = _trainer(tiny_npz, tmp_path / "whole", _slowing).fit()
    first = _trainer(tiny_npz, tmp_path / "cut", _slowing, checkpoint_every=3)
    assert first.fit(max_steps=cut)["steps"] == cut
    resumed = _trainer(tiny_npz, tmp_path / "cut", _slowing, checkpoint_every=3)
    summary = resumed.fit(resume=True)
    assert _rows(tmp_path / "cut") == _rows(tmp_path / "whole")  # losses and rates, bit for bit on the CPU
    assert summary["steps"] == whole["steps"] == 38 and summary["schedule_plan"] == whole["schedule_plan"]
    assert summary["train_seconds"] == whole["train_seconds"]


def test_a_resume_with_another_budget_replans_the_rest_and_never_raises_the_rate(tiny_npz, tmp_path, capsys):
    """Stopped after step 33 (4.125 s); resumed with 12 s: 33 + floor(8 x 7.875 x 0.97) = 94 steps, and the
    re-estimate after step 63 (8 steps/s, 4.125 s left) finds 63 + floor(8 x 4.125 x 0.97) = 95."""
    out = tmp_path / "run"
    _trainer(tiny_npz, out).fit(max_steps=33)
    rate_at_stop = _rows(out)[-1][2]
    summary = _trainer(tiny_npz, out, max_minutes=0.2).fit(resume=True)
    assert ("schedule re-planned for max_minutes=0.2 (was 0.1) at step 33: 94 steps (0.2 min at 8.0 steps/s "
            "measured over steps 25-30)") in capsys.readouterr().out
    assert summary["steps"] == 95 and summary["final_lr"] == 0.0
    assert summary["schedule_plan"]["max_minutes"] == 0.2
    later = [r[2] for r in _rows(out)[32:]]  # from step 33 on
    assert later[0] == rate_at_stop and _never_up(later) and later[-1] == 0.0

    shorter = tmp_path / "shorter"  # 4.8 s: 33 + floor(8 x 0.675 x 0.97) = 38
    _trainer(tiny_npz, shorter).fit(max_steps=33)
    assert _trainer(tiny_npz, shorter, max_minutes=0.08).fit(resume=True)["steps"] == 38
    later = [r[2] for r in _rows(shorter)[32:]]
    assert later[0] == rate_at_stop and _never_up(later) and later[-1] == 0.0


def test_without_max_minutes_the_schedule_spans_the_epochs_and_nothing_is_planned(tiny_npz, tmp_path):
    out = tmp_path / "run"
    summary = _trainer(tiny_npz, out, epochs=4, max_minutes=None).fit()
    assert summary["steps"] == 12 and summary["schedule_plan"] is None and summary["stop_reason"] is None
    assert "schedule_plan" not in load_checkpoint(out / "checkpoint.pt")


def test_a_resume_after_the_planned_end_trains_nothing(tiny_npz, tmp_path, capsys):
    out = tmp_path / "run"
    _trainer(tiny_npz, out).fit()
    summary = _trainer(tiny_npz, out, max_minutes=1.0).fit(resume=True)
    assert summary["steps"] == 47 and summary["images"] == 0
    assert "the schedule planned for max_minutes=0.1 ended at step 47" in capsys.readouterr().out
