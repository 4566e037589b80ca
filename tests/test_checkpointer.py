"""The checkpointer on its own: what a checkpoint holds, the round trip of every state, the periodic copies it
keeps, the checkpoints it refuses, and the RNG states each process takes back."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from contrastkit.checkpoint import CheckpointError, load_checkpoint
from contrastkit.checkpointer import Checkpointer, Progress
from contrastkit.config import TrainConfig
from contrastkit.process_group import OneProcess
from contrastkit.settings import SettingsError

FINGERPRINT = {"name": "rows", "train": 8, "sha256": "ab"}


class _Rank:
    """The rank and world of a process of a group, for the parts that read only those (no collective is made)."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world


def _checkpointer(folder: Path, processes: object = None, **config: object) -> Checkpointer:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    settings = dict(method="simclr", data="rows", out=str(folder), epochs=2, batch_size=4, seed=5,
                    keep_checkpoints=0)
    settings.update(config)
    return Checkpointer(folder, method=model, optimizer=optimizer, scheduler=scheduler,
                        generator=torch.Generator().manual_seed(11), progress=Progress(),
                        config=TrainConfig(**settings), fingerprint=dict(FINGERPRINT),
                        processes=processes or OneProcess(), total_steps=6, device=torch.device("cpu"))


def _train_one_step(ckpt: Checkpointer) -> None:
    loss = ckpt.method(torch.ones(4, 3)).square().sum()
    loss.backward()
    ckpt.optimizer.step()
    ckpt.scheduler.step()
    ckpt.progress.step += 1
    ckpt.progress.train_seconds += 1.5


def test_state_holds_every_part_and_the_progress(tmp_path: Path) -> None:
    ckpt = _checkpointer(tmp_path)
    _train_one_step(ckpt)
    state = ckpt.state()
    assert set(state) == {"method", "optimizer", "scheduler", "rng", "progress", "config", "data"}  # one process
    assert state["progress"] == {"step": 1, "train_seconds": 1.5}
    assert state["data"] == FINGERPRINT and state["config"]["seed"] == 5
    assert torch.equal(state["rng"]["generator"], ckpt.generator.get_state())
    assert state["scheduler"]["last_epoch"] == 1


def test_a_saved_checkpoint_restores_every_state(tmp_path: Path) -> None:
    first = _checkpointer(tmp_path)
    _train_one_step(first)
    assert first.step is None
    path = first.save()
    assert path == tmp_path / "checkpoint.pt" and first.step == 1
    expected_draw = torch.rand(3, generator=first.generator)
    expected_global = (torch.rand(2), random.random())
    first.save(tmp_path / "elsewhere.pt")  # another path does not move the step of checkpoint.pt
    assert first.step == 1

    second = _checkpointer(tmp_path)
    assert second.load(tmp_path / "checkpoint.pt") == [] and second.step is None  # not the run's own: step stays
    assert second.progress == Progress(1, 1.5)
    for a, b in zip(first.method.state_dict().values(), second.method.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert second.optimizer.state_dict()["state"][0]["momentum_buffer"].equal(
        first.optimizer.state_dict()["state"][0]["momentum_buffer"])
    assert second.scheduler.last_epoch == 1
    # the generator and the global RNGs continue where the saved ones stood
    assert torch.equal(torch.rand(3, generator=second.generator), expected_draw)
    assert torch.equal(torch.rand(2), expected_global[0]) and random.random() == expected_global[1]


def test_periodic_saves_keep_the_newest_copies(tmp_path: Path) -> None:
    ckpt = _checkpointer(tmp_path, keep_checkpoints=2)
    for _ in range(4):
        _train_one_step(ckpt)
        ckpt.save_periodic()
        assert ckpt.step == ckpt.progress.step
    copies = sorted(p.name for p in tmp_path.glob("checkpoint_step*.pt"))
    assert copies == ["checkpoint_step00000003.pt", "checkpoint_step00000004.pt"]
    assert [load_checkpoint(tmp_path / name)["progress"]["step"] for name in copies] == [3, 4]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["progress"]["step"] == 4
    none_kept = _checkpointer(tmp_path / "none")
    none_kept.save_periodic()
    assert sorted(p.name for p in (tmp_path / "none").iterdir()) == ["checkpoint.pt"]


def test_load_refuses_other_settings_other_data_and_a_step_beyond_the_run(tmp_path: Path) -> None:
    ckpt = _checkpointer(tmp_path)
    for _ in range(6):
        _train_one_step(ckpt)
    path = ckpt.save(tmp_path / "six.pt")
    with pytest.raises(SettingsError, match=r"^cannot resume .*six.pt: settings differ from the run's \(lr: "):
        _checkpointer(tmp_path, lr=0.5).load(path)
    other_data = _checkpointer(tmp_path)
    other_data.fingerprint = {**FINGERPRINT, "sha256": "cd"}
    with pytest.raises(SettingsError, match="Resume needs the same data"):
        other_data.load(path)
    shorter = _checkpointer(tmp_path)
    shorter.total_steps = 5
    with pytest.raises(CheckpointError, match=r"is at step 6, beyond this run's 5 steps \(2 epochs\); raise --epochs"):
        shorter.load(path)
    with pytest.raises(CheckpointError, match="does not fit this run: RuntimeError"):
        wider = _checkpointer(tmp_path)
        wider.method = nn.Linear(3, 4)
        wider.load(path)


def test_each_process_takes_its_own_rng_state_or_a_reseeded_one(tmp_path: Path) -> None:
    one = _checkpointer(tmp_path)
    for _ in range(2):
        _train_one_step(one)
    state = one.state()
    generators = [torch.Generator().manual_seed(100 + r) for r in range(2)]
    state["rank_rng"] = [{**state["rng"], "generator": g.get_state()} for g in generators]
    state_of_two = state

    rank1 = _checkpointer(tmp_path, processes=_Rank(1, 2))
    rank1.progress.step = 2
    assert rank1.restore_rng(state_of_two) == []  # same number of processes: exact
    assert torch.equal(rank1.generator.get_state(), generators[1].get_state())

    single = {k: v for k, v in state_of_two.items() if k != "rank_rng"}  # written by one process
    rank1 = _checkpointer(tmp_path, processes=_Rank(1, 2))
    rank1.progress.step = 2
    notes = rank1.restore_rng(single)
    assert notes == ["resumed a checkpoint of 1 process(es) on 2: the global batches are the same, the augmentation "
                     "random numbers are not (this continuation is not bit-exact)"]
    seed = int(np.random.SeedSequence([5, 1, 2]).generate_state(1, np.uint64)[0])  # (seed, rank, step)
    assert torch.equal(rank1.generator.get_state(), torch.Generator().manual_seed(seed).get_state())
