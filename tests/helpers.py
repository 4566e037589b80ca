"""Assertions several test modules share."""

from __future__ import annotations

from collections.abc import Callable

import torch

from contrastkit.train import Trainer


def assert_same_state(expected: torch.nn.Module, got: torch.nn.Module) -> None:
    """Every entry of the two modules' state dicts (parameters, buffers, queues) is bit-identical, in order."""
    for (name, a), b in zip(expected.state_dict().items(), got.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def train_in_two_sessions(make_trainer: Callable[[], Trainer], stop_after: int) -> Trainer:
    """A run stopped after ``stop_after`` steps, then resumed to its end by a new trainer (returned)."""
    make_trainer().fit(max_steps=stop_after)
    resumed = make_trainer()
    resumed.fit(resume=True)
    return resumed
