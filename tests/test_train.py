"""The trainer: runs, checkpoints every piece of state, and a resumed CPU run repeats the same losses."""

import csv
from pathlib import Path

import pytest
import torch

from contrastkit.checkpoint import load_checkpoint, save_checkpoint
from contrastkit.config import TrainConfig
from contrastkit.train import Trainer, resolve_config
from tests.helpers import assert_same_state, write_quadrant_npz


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    """64 grey 8x8 images in 4 classes (bright quadrant = class), with noise."""
    return write_quadrant_npz(tmp_path_factory.mktemp("data"))


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
    straight = Trainer.from_config(_config(tiny_npz, tmp_path / "a", method))
    straight.fit()
    expected = _losses(tmp_path / "a")
    assert len(expected) == straight.total_steps == 9  # 51 train images // 16 = 3 steps x 3 epochs

    first = Trainer.from_config(_config(tiny_npz, tmp_path / "b", method, checkpoint_every=2))
    first.fit(max_steps=5)  # stops mid-epoch 1, after a step-5 checkpoint
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["progress"]["step"] == 5
    second = Trainer.from_config(_config(tiny_npz, tmp_path / "b", method, checkpoint_every=2))
    second.fit(resume=True)
    assert _losses(tmp_path / "b") == expected  # bit-identical on the CPU
    assert_same_state(straight.method, second.method)


def test_checkpoint_round_trip_restores_every_state(tiny_npz, tmp_path):
    trainer = Trainer.from_config(_config(tiny_npz, tmp_path / "run", "moco", epochs=2))
    trainer.fit()
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert {"method", "optimizer", "scheduler", "rng", "progress", "config"} <= set(ckpt)
    assert "negatives.keys" in ckpt["method"] and "negatives.ids" in ckpt["method"]
    assert any(k.startswith("key_net.target.") for k in ckpt["method"])  # the momentum encoder
    restored = Trainer.from_config(_config(tiny_npz, tmp_path / "run", "moco", epochs=2))
    restored.load()
    assert_same_state(trainer.method, restored.method)
    assert int(restored.method.negatives.filled) == int(trainer.method.negatives.filled) > 0
    assert restored.step == trainer.step
    assert torch.equal(restored.generator.get_state(), trainer.generator.get_state())
    assert restored.scheduler.state_dict() == trainer.scheduler.state_dict()


def test_resume_refuses_a_different_configuration(tiny_npz, tmp_path):
    Trainer.from_config(_config(tiny_npz, tmp_path / "run", epochs=1)).fit()
    other = Trainer.from_config(_config(tiny_npz, tmp_path / "run", epochs=1, lr=5e-3))
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


# --- resume needs a checkpoint; config.yaml and the checkpoint must agree ------------------------------------------

def test_resume_of_a_folder_without_a_checkpoint_is_refused_and_an_empty_one_starts(tiny_npz, tmp_path):
    out = tmp_path / "run"
    Trainer.from_config(_config(tiny_npz, out, epochs=1)).fit()
    (out / "checkpoint.pt").unlink()  # as a run killed before its first checkpoint leaves it
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(FileNotFoundError) as refused:
        Trainer.from_config(_config(tiny_npz, out, epochs=1)).fit(resume=True)
    assert str(refused.value) == (f"cannot resume {out}: it has config.yaml and train_log.csv but no checkpoint.pt "
                                  f"-- the run stopped before its first checkpoint, so there is nothing to continue; "
                                  f"start it over with --overwrite (fit(overwrite=True))")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the log was not replaced
    (out / "train_log.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"it has config\.yaml but no checkpoint\.pt"):
        Trainer.from_config(_config(tiny_npz, out, epochs=1)).fit(resume=True)
    (tmp_path / "empty").mkdir()
    for fresh in (tmp_path / "empty", tmp_path / "missing"):  # an empty or missing folder: resume starts the run
        assert Trainer.from_config(_config(tiny_npz, fresh, epochs=1)).fit(resume=True)["steps"] == 3


def test_resume_refuses_a_config_yaml_that_contradicts_the_checkpoint(tiny_npz, tmp_path):
    import yaml

    out = tmp_path / "run"
    Trainer.from_config(_config(tiny_npz, out, epochs=1)).fit()
    written = yaml.safe_load((out / "config.yaml").read_text())
    (out / "config.yaml").write_text(yaml.safe_dump({**written, "epochs": 5}))  # resumable: may differ
    assert Trainer.from_config(_config(tiny_npz, out, epochs=2)).fit(resume=True)["steps"] == 6
    (out / "config.yaml").write_text(yaml.safe_dump({**written, "method": "moco", "lr": 0.5}))
    edited = (out / "config.yaml").read_bytes()
    with pytest.raises(ValueError, match=r"cannot resume .*: config.yaml and checkpoint.pt disagree \(method: "
                                         r"'moco' in config.yaml, 'simclr' in checkpoint.pt; lr: 0.5 in config.yaml, "
                                         r"0.001 in checkpoint.pt\)"):
        Trainer.from_config(_config(tiny_npz, out, epochs=3)).fit(resume=True)
    assert (out / "config.yaml").read_bytes() == edited  # not rewritten


# --- a non-finite loss: stop before the step is applied, say what is on disk ---------------------------------------

class _LossBecomesNaN(torch.nn.Module):
    """A linear map on vectors whose loss is NaN at step ``nan_at`` (1-based; None: never); ``after_step`` counts
    the steps applied in a buffer (checkpointed, so a resumed run knows them)."""

    def __init__(self, nan_at: int | None) -> None:
        from contrastkit.methods import BatchSpec

        super().__init__()
        self.batch_spec = BatchSpec(views=0)
        self.encoder = torch.nn.Linear(4, 2)
        self.register_buffer("steps_applied", torch.zeros((), dtype=torch.int64))
        self.nan_at = nan_at

    def forward(self, batch, group=None):
        from contrastkit.methods import StepOutput

        loss = (self.encoder(batch.views[0]) - 1).pow(2).mean()
        if self.nan_at is not None and int(self.steps_applied) + 1 == self.nan_at:
            loss = loss * float("nan")
        return StepOutput(loss, logs={"loss": loss.detach()})

    @torch.no_grad()
    def after_step(self, output, group=None) -> None:
        self.steps_applied += 1


def _nan_trainer(out: Path, nan_at: int | None) -> Trainer:
    from contrastkit.data.containers import ArrayDataset

    torch.manual_seed(0)
    data = ArrayDataset(torch.randn(32, 4, generator=torch.Generator().manual_seed(1)), torch.arange(32) % 2)
    config = TrainConfig(method="lossbecomesnan", data="rows", out=str(out), epochs=2, batch_size=8, log_every=1,
                         checkpoint_every=2, progress=False, device="cpu", precision="fp32", optimizer="adam",
                         lr=0.01)
    return Trainer(_LossBecomesNaN(nan_at), data, config)


def test_a_nan_loss_stops_before_its_step_and_names_the_intact_checkpoint(tmp_path):
    out = tmp_path / "run"
    trainer = _nan_trainer(out, nan_at=5)  # 4 steps per epoch; checkpoints at steps 2 and 4
    with pytest.raises(FloatingPointError) as stopped:
        trainer.fit()
    assert str(stopped.value) == (f"the loss became nan at step 5; training stopped before that step's update "
                                  f"(nothing of it was applied); {out / 'checkpoint.pt'} at step 4 is intact")
    assert trainer.step == 4 and int(trainer.method.steps_applied) == 4  # no after_step for step 5
    saved = load_checkpoint(out / "checkpoint.pt")
    assert saved["progress"]["step"] == 4
    for name, value in trainer.method.state_dict().items():  # no backward / optimizer step applied after step 4
        assert torch.equal(value, saved["method"][name]), name
    assert [s["step"] for s in trainer.optimizer.state_dict()["state"].values()] == [4.0, 4.0]
    with (out / "train_log.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]  # the rows logged before stay
    resumed = _nan_trainer(out, nan_at=None)
    assert resumed.fit(resume=True)["steps"] == 8  # the folder is consistent: it resumes from step 4
    with (out / "train_log.csv").open() as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == list(range(1, 9))


def test_a_nan_loss_before_any_checkpoint_says_so(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FloatingPointError) as stopped:
        _nan_trainer(out, nan_at=1).fit()
    assert str(stopped.value) == (f"the loss became nan at step 1; training stopped before that step's update "
                                  f"(nothing of it was applied); no checkpoint was written yet in {out} (the run "
                                  f"stopped before its first checkpoint)")
    assert not (out / "checkpoint.pt").exists()


# --- Trainer(method, data, config): config.method names the method given ------------------------------------------

def test_a_config_naming_another_method_than_the_one_given_is_refused(tmp_path, monkeypatch):
    from contrastkit.data.containers import ArrayDataset
    from contrastkit.methods import build_method, register_method, registry
    from contrastkit.methods.contrastive import ContrastiveMethod
    from contrastkit.models.tabular import MLPEncoder
    from contrastkit.negatives import InBatchNegatives

    data = ArrayDataset(torch.randn(256, 5), torch.arange(256) % 2)  # 256: the default batch of a config-less run

    def config(method: str) -> TrainConfig:
        return TrainConfig(method=method, data="rows", out=str(tmp_path / method), epochs=1, batch_size=16,
                           progress=False)

    moco = build_method("moco", MLPEncoder(5), 256, queue_size=32)
    with pytest.raises(ValueError, match=r"^the config names method 'simclr' but the method given was built as "
                                         r"'moco' \(build_method\('moco', ...\)\); set TrainConfig\(method='moco'\)"):
        Trainer(moco, data, config("simclr"))
    assert Trainer(moco, data, config("moco")).config.method == "moco"
    assert Trainer(moco, data).config.method == "moco"  # no config: the name it was built under
    with pytest.raises(ValueError, match=r"^the config names method 'simclr', which builds a ContrastiveMethod, but "
                                         r"the method given is a _LossBecomesNaN"):
        Trainer(_LossBecomesNaN(None), data, config("simclr"))
    by_hand = ContrastiveMethod(MLPEncoder(5), torch.nn.Linear(256, 8), InBatchNegatives(), loss="nt_xent")
    assert Trainer(by_hand, data, config("simclr")).config.method == "simclr"  # same class: cannot tell, accepted
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # registered for this test only
    register_method("nanmethod", lambda ctx, s: _LossBecomesNaN(None))  # a plugin's lambda: its class is unknown
    assert Trainer(_LossBecomesNaN(None), data, config("nanmethod")).config.method == "nanmethod"
