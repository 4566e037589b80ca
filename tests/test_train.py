"""The trainer: runs, checkpoints every piece of state, and a resumed CPU run repeats the same losses."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from contrastkit.checkpoint import load_checkpoint, save_checkpoint
from contrastkit.config import TrainConfig
from contrastkit.train import Trainer, resolve_config
from tests.helpers import assert_same_state


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    """64 grey 8x8 images in 4 classes (bright quadrant = class), with noise."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 16)
    images = rng.integers(0, 60, size=(64, 8, 8))
    for i, y in enumerate(labels):
        r, c = divmod(int(y), 2)
        images[i, 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 180
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(path, x=images.astype(np.uint8), y=labels)
    return path


def _config(data: Path, out: Path, method: str = "simclr", **kw) -> TrainConfig:
    base = dict(method=method, data=str(data), out=str(out), epochs=3, batch_size=16, lr=1e-3, progress=False,
                log_every=1, seed=7, method_options={"queue_size": 40} if method == "moco" else {})
    base.update(kw)
    return TrainConfig(**base)


def _losses(out: Path) -> list[float]:
    with (out / "train_log.csv").open() as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("method", ["simclr", "moco", "membank"])
def test_resumed_run_repeats_the_same_losses(tiny_npz, tmp_path, method):
    straight = Trainer(_config(tiny_npz, tmp_path / "a", method))
    straight.fit()
    expected = _losses(tmp_path / "a")
    assert len(expected) == straight.total_steps == 9  # 51 train images // 16 = 3 steps x 3 epochs

    first = Trainer(_config(tiny_npz, tmp_path / "b", method, checkpoint_every=2))
    first.fit(max_steps=5)  # stops mid-epoch 1, after a step-5 checkpoint
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["progress"]["step"] == 5
    second = Trainer(_config(tiny_npz, tmp_path / "b", method, checkpoint_every=2))
    second.fit(resume=True)
    assert _losses(tmp_path / "b") == expected  # bit-identical on the CPU
    assert_same_state(straight.method, second.method)


def test_checkpoint_round_trip_restores_every_state(tiny_npz, tmp_path):
    trainer = Trainer(_config(tiny_npz, tmp_path / "run", "moco", epochs=2))
    trainer.fit()
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert {"method", "optimizer", "scheduler", "rng", "progress", "config"} <= set(ckpt)
    assert "negatives.keys" in ckpt["method"] and "negatives.ids" in ckpt["method"]
    assert any(k.startswith("key_net.target.") for k in ckpt["method"])  # the momentum encoder
    restored = Trainer(_config(tiny_npz, tmp_path / "run", "moco", epochs=2))
    restored.load()
    assert_same_state(trainer.method, restored.method)
    assert int(restored.method.negatives.filled) == int(trainer.method.negatives.filled) > 0
    assert restored.step == trainer.step
    assert torch.equal(restored.generator.get_state(), trainer.generator.get_state())
    assert restored.scheduler.state_dict() == trainer.scheduler.state_dict()


def test_resume_refuses_a_different_configuration(tiny_npz, tmp_path):
    Trainer(_config(tiny_npz, tmp_path / "run", epochs=1)).fit()
    other = Trainer(_config(tiny_npz, tmp_path / "run", epochs=1, lr=5e-3))
    with pytest.raises(ValueError, match=r"settings differ from the run's \(lr: 0.001 in the run, 0.005 now\)"):
        other.fit(resume=True)


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"value": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, {"value": Unpicklable()})
    assert load_checkpoint(path, required=())["value"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary file left behind


def test_unreadable_checkpoint_is_named(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"refusing to load .*checkpoint\.pt: it is not a checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")


def test_config_defaults_and_validation():
    filled = resolve_config(TrainConfig(method="moco"))
    assert filled.epochs and filled.batch_size and filled.optimizer and filled.lr
    with pytest.raises(ValueError, match="unknown method"):
        resolve_config(TrainConfig(method="byol"))
    with pytest.raises(ValueError, match=r"`batch_size` must be an integer >= 2"):
        resolve_config(TrainConfig(batch_size=0))
    with pytest.raises(ValueError, match="unknown setting"):
        TrainConfig.from_dict({"epoch": 3})
