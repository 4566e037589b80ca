"""The mi-bench training loop applies its learning-rate schedule (contrastkit.mi_bench): every optimizer step of
every level uses the rate that :func:`level_lr` gives for that step of the level -- the SGDR restart at each
level's first step, then the half-cosine decay -- written out here from the formula, independently of level_lr."""

from __future__ import annotations

import math
from typing import ClassVar

import pytest
import torch

from contrastkit.mi_bench import LEARNING_RATES, BenchConfig, run_estimator


class _RecordingAdam(torch.optim.Adam):
    """Adam that records the rate of its first parameter group at every step."""

    rates: ClassVar[list[float]] = []

    def step(self, closure=None):
        _RecordingAdam.rates.append(self.param_groups[0]["lr"])
        return super().step(closure)


@pytest.mark.parametrize("name", ["infonce", "club"])
def test_each_step_of_each_level_uses_the_scheduled_rate(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(torch.optim, "Adam", _RecordingAdam)
    _RecordingAdam.rates = []
    T, phi, eta = 6, 0.1, LEARNING_RATES[name]
    config = BenchConfig(estimators=(name,), levels=(2.0, 4.0, 6.0), steps_per_level=T, final_lr_fraction=phi,
                         hidden=8, layers=1, embed_dim=4, batch_size=8, seed=1)
    run_estimator(name, config)
    per_level = [eta * (phi + (1 - phi) * 0.5 * (1 + math.cos(math.pi * t / T))) for t in range(T)]
    assert _RecordingAdam.rates == pytest.approx(per_level * 3, rel=1e-12)  # restarted at every level
    _RecordingAdam.rates = []
    run_estimator(name, BenchConfig(estimators=(name,), levels=(2.0, 4.0), steps_per_level=T, lr=1e-3,
                                    lr_schedule="constant", hidden=8, layers=1, embed_dim=4, batch_size=8))
    assert _RecordingAdam.rates == [1e-3] * (2 * T)
