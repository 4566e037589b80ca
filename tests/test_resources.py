"""Resource use of training: memory stays flat over 1,000 CPU steps (nothing per step is kept alive: log rows,
queue copies, loss graphs) and a run folder stays bounded (one checkpoint, config.yaml and the CSV log, plus
``keep_checkpoints`` step-numbered copies only when asked for).

``benchmarks/memory_steps.py`` prints the same measurement for every method with more samples.
"""

from __future__ import annotations

import gc
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from contrastkit.checkpoint import load_checkpoint
from contrastkit.config import TrainConfig
from contrastkit.train import Trainer

SIZE = 8  # px
BATCH = 16
TRAIN_IMAGES = 640  # of 800: the loader holds out a fifth for testing -> 40 steps per epoch
STEPS = 1000
BASELINE_STEP = 200  # after warm-up: allocator pools, optimizer state and a full queue exist by then
MAX_GROWTH = 0.05
MAX_NEW_TENSORS = 20  # slack for lazily created state; one tensor kept per step would add 800
RUN_FILES = {"checkpoint.pt", "config.yaml", "train_log.csv"}
OPTIONS = {"simclr": {}, "moco": {"queue_size": 256}, "membank": {}}


def _rss_mib() -> float:
    """This process's resident set size in MiB (VmRSS of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmRSS in /proc/self/status")


def _live_tensors() -> int:
    """How many tensors Python can reach now (after a collection)."""
    gc.collect()
    return sum(issubclass(type(obj), torch.Tensor) for obj in gc.get_objects())  # type(): no proxy's __class__


class _SampledTrainer(Trainer):
    """The trainer with its resident set sampled every 100 steps, and its live tensors counted at two steps."""

    rss: dict[int, float]
    tensors: dict[int, int]

    def train_step(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        logs = super().train_step(index)
        if self.step % 100 == 0:
            self.rss[self.step] = _rss_mib()
        if self.step in (BASELINE_STEP, STEPS):
            self.tensors[self.step] = _live_tensors()
        return logs


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """800 grey 8x8 images in 4 classes (a bright quadrant per class) with noise."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 200)
    images = rng.integers(0, 60, size=(800, SIZE, SIZE))
    half = SIZE // 2
    for i, y in enumerate(labels):
        r, c = divmod(int(y), 2)
        images[i, half * r:half * (r + 1), half * c:half * (c + 1)] += 180
    path = tmp_path_factory.mktemp("resources") / "small.npz"
    np.savez(path, x=images.astype(np.uint8), y=labels)
    return path


def _config(data: Path, out: Path, method: str = "simclr", **changes: object) -> TrainConfig:
    values: dict = dict(method=method, data=str(data), out=str(out), epochs=1, batch_size=BATCH, lr=1e-3,
                        progress=False, seed=0, num_threads=1, method_options=OPTIONS[method])
    values.update(changes)
    return TrainConfig(**values)


def _expected_files() -> set[str]:
    """What a run folder holds: the run files, and TensorBoard's folder where tensorboard is installed."""
    has_tensorboard = importlib.util.find_spec("tensorboard") is not None
    return RUN_FILES | ({"tensorboard"} if has_tensorboard else set())


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the resident set from /proc (Linux)")
@pytest.mark.parametrize("method", [
    "moco",
    pytest.param("simclr", marks=pytest.mark.slow),
    pytest.param("membank", marks=pytest.mark.slow),
])
def test_memory_stays_flat_over_1000_steps(small_npz: Path, tmp_path: Path, method: str) -> None:
    """From step 200 to step 1,000 of a real ``fit`` (CSV log, epoch checkpoints, queue / bank updates) the
    resident set grows by less than 5 % and the number of live tensors stays the same.

    The tensor count is the sharp half: ``backward`` frees a graph's saved activations, so a trainer that kept
    every step's loss (and with it its graph) leaks only ~50-150 KB a step here, a few per cent of the
    ~400 MiB a torch process holds -- the RSS bound catches large leaks (activations, queue or bank copies),
    the count catches any per-step tensor kept alive."""
    epochs = math.ceil(STEPS / (TRAIN_IMAGES // BATCH))
    trainer = _SampledTrainer.from_config(_config(small_npz, tmp_path / "run", method, epochs=epochs))
    trainer.rss, trainer.tensors = {}, {}
    summary = trainer.fit(max_steps=STEPS)
    assert summary["steps"] == STEPS
    base, last = trainer.rss[BASELINE_STEP], trainer.rss[STEPS]
    shown = ", ".join(f"{s}: {v:.1f}" for s, v in sorted(trainer.rss.items()))
    assert (last - base) / base < MAX_GROWTH, f"RSS grew from {base:.1f} to {last:.1f} MiB (MiB by step: {shown})"
    assert trainer.tensors[STEPS] - trainer.tensors[BASELINE_STEP] <= MAX_NEW_TENSORS, trainer.tensors


def test_run_folder_holds_one_checkpoint_config_and_log(small_npz: Path, tmp_path: Path) -> None:
    """Checkpointing every 5 steps without keeping copies leaves exactly checkpoint.pt, config.yaml and
    train_log.csv: each save replaces the last, and no temporary is left."""
    out = tmp_path / "run"
    Trainer.from_config(_config(small_npz, out, "moco", checkpoint_every=5, keep_checkpoints=0)).fit()
    assert {p.name for p in out.iterdir()} == _expected_files()
    assert load_checkpoint(out / "checkpoint.pt")["progress"]["step"] == TRAIN_IMAGES // BATCH


def test_kept_checkpoints_are_the_newest_two(small_npz: Path, tmp_path: Path) -> None:
    """``keep_checkpoints=2`` with a checkpoint every 5 steps keeps exactly two step-numbered copies, those of
    the two newest periodic saves, each holding its own step; nothing else is added to the folder."""
    out = tmp_path / "run"
    steps = TRAIN_IMAGES // BATCH  # 40: periodic saves at 5, 10, ..., 40
    Trainer.from_config(_config(small_npz, out, "membank", checkpoint_every=5, keep_checkpoints=2)).fit()
    copies = sorted(p.name for p in out.glob("checkpoint_step*.pt"))
    assert copies == [f"checkpoint_step{steps - 5:08d}.pt", f"checkpoint_step{steps:08d}.pt"]
    assert {p.name for p in out.iterdir()} == _expected_files() | set(copies)
    for name, step in zip(copies, (steps - 5, steps), strict=True):
        assert load_checkpoint(out / name)["progress"]["step"] == step
