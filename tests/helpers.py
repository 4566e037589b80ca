"""Assertions several test modules share."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
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


def start_training(args: list[str], cwd: Path, out: Path, log_lines: int) -> subprocess.Popen:
    """``contrastkit train ARGS`` in a child process, returned once its ``out/train_log.csv`` has ``log_lines``
    lines (header included), or after two minutes."""
    process = subprocess.Popen([sys.executable, "-m", "contrastkit", "train", *args, "--out", str(out)], cwd=cwd,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "train_log.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < log_lines):
        time.sleep(0.05)
    return process


def spy_block_sizes(monkeypatch, module: object) -> list[int | None]:
    """Record the ``block_size`` every call of ``module.row_logsumexp`` (the log-sum-exp kernel as a loss module
    imported it) gets: None is the direct mode. Returns the list the calls append to."""
    calls: list[int | None] = []
    original = module.row_logsumexp

    def spy(*args, **kwargs):
        calls.append(kwargs["block_size"])
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "row_logsumexp", spy)
    return calls


def write_quadrant_npz(folder: Path, per_class: int = 16) -> Path:
    """``folder/tiny.npz``: 4 x ``per_class`` grey 8x8 images in 4 classes (a bright quadrant is the class), with
    noise."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), per_class)
    images = rng.integers(0, 60, size=(len(labels), 8, 8))
    for i, y in enumerate(labels):
        r, c = divmod(int(y), 2)
        images[i, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 180
    path = folder / "tiny.npz"
    np.savez(path, x=images.astype(np.uint8), y=labels)
    return path
