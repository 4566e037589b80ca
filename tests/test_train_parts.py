"""The trainer from parts: a method written outside the package (resumed exactly, evaluated), vectors and
sequences through the same trainer, and a user method registered by a plugin and run from the command line."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import make_classification
from torch import nn

from contrastkit.config import TrainConfig
from contrastkit.data import load_dataset
from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.methods import Batch, BatchSpec, Method, StepOutput, build_method
from contrastkit.models import ProjectionHead, SmallCNN
from contrastkit.models.sequence import Conv1dEncoder
from contrastkit.settings import SettingsError
from contrastkit.train import Trainer
from tests.helpers import assert_same_state, train_in_two_sessions

README = Path(__file__).resolve().parents[1] / "README.md"


class SimSiam(Method):
    """Chen & He 2021, written as a user would: predictor + stop-gradient, negative cosine, no stored state."""

    batch_spec = BatchSpec(views=2)

    def __init__(self, encoder: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = ProjectionHead(feature_dim, 64, 32)
        self.predictor = ProjectionHead(32, 16, 32)

    def forward(self, batch: Batch, group=None) -> StepOutput:
        z1, z2 = (self.projector(self.encoder(v)) for v in batch.views)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss = -(F.cosine_similarity(p1, z2.detach()).mean() + F.cosine_similarity(p2, z1.detach()).mean()) / 2
        return StepOutput(loss, logs={"loss": loss.detach()})


def _simsiam(seed: int = 0) -> SimSiam:
    torch.manual_seed(seed)
    encoder = SmallCNN(in_channels=1, image_size=8, width=8)
    return SimSiam(encoder, encoder.feature_dim)


def _losses(out: Path) -> list[tuple[int, float]]:
    with (out / "train_log.csv").open() as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def digits() -> DatasetSplits:
    return load_dataset("digits")


def _config(out: Path, **kw) -> TrainConfig:
    return TrainConfig(method="simsiam", data="digits", out=str(out), epochs=2, batch_size=128, lr=1e-3,
                       log_every=1, progress=False, seed=3, **kw)


def test_a_user_method_trains_resumes_exactly_and_is_evaluated(digits, tmp_path):
    straight = Trainer(_simsiam(), digits, _config(tmp_path / "a"))
    straight.fit()
    assert straight.total_steps == 2 * (1438 // 128)
    # stops mid-epoch after a checkpoint at step 4 + the final one at 7, then resumes
    resumed = train_in_two_sessions(lambda: Trainer(_simsiam(), digits, _config(tmp_path / "b", checkpoint_every=4)),
                                    stop_after=7)
    assert _losses(tmp_path / "b") == _losses(tmp_path / "a")  # bit-identical, every step once
    assert_same_state(straight.method, resumed.method)
    metrics = resumed.evaluate()
    assert {"trained", "random_init", "raw_pixels"} <= set(metrics["results"])
    assert metrics["linear_acc"] == metrics["results"]["trained"]["linear_accuracy"] > 0.5  # 10 classes: chance 0.1
    assert metrics["results"]["random_init"] != metrics["results"]["trained"]  # baseline = the seeded init, untrained


def test_parts_are_checked(digits, tmp_path):
    with pytest.raises(TypeError, match="lacks \\['batch_spec'"):
        Trainer(nn.Linear(2, 2), digits, _config(tmp_path / "x"))
    with pytest.raises(SettingsError, match="method_options configure a method built by name"):
        Trainer(_simsiam(), digits, _config(tmp_path / "x", method_options={"temperature": 0.1}))
    with pytest.raises(TypeError, match="must be a DatasetSplits or have tensors `x`"):
        Trainer(_simsiam(), [1, 2, 3], _config(tmp_path / "x"))
    with pytest.raises(SettingsError, match="`batch_size` 2000 is larger than the 1438 training samples"):
        Trainer(_simsiam(), digits, _config(tmp_path / "x").replace(batch_size=2000))


def test_vectors_train_through_the_same_trainer_and_are_evaluated(tmp_path):
    x, y = make_classification(n_samples=600, n_features=12, n_informative=6, n_classes=3, random_state=0)
    path = tmp_path / "table.npz"
    np.savez(path, x_train=x[:500].astype(np.float32), y_train=y[:500], x_test=x[500:], y_test=y[500:])
    config = TrainConfig(method="simclr", data=str(path), out=str(tmp_path / "run"), epochs=3, batch_size=100,
                         progress=False)
    trainer = Trainer.from_config(config)
    assert trainer.data.modality == "vectors" and trainer.config.encoder == "mlp" and trainer.config.augment == "scarf"
    trainer.fit()
    metrics = trainer.evaluate()
    assert set(metrics["results"]) == {"trained", "random_init", "raw_inputs"}
    for result in metrics["results"].values():  # 3 balanced classes: chance is 1/3
        assert result["knn_accuracy"] > 0.5 and result["linear_accuracy"] > 0.5
    done = subprocess.run([sys.executable, "-m", "contrastkit", "eval", str(tmp_path / "run"), "--no-plots"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["modality"] == "vectors" and saved["knn_acc"] == metrics["knn_acc"]  # CLI = Python, same numbers
    assert "raw inputs" in done.stdout


def test_sequences_train_with_crops_and_a_1d_encoder(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(256)
    labels = np.repeat(np.arange(3), 40)
    x = np.stack([np.sin(2 * np.pi * (k + 1) * t / 64 + rng.uniform(0, 6)) for k in labels])
    x += 0.3 * rng.normal(size=x.shape)
    train = ArrayDataset(torch.tensor(x[::2, None], dtype=torch.float32), torch.tensor(labels[::2]))
    test = ArrayDataset(torch.tensor(x[1::2, None], dtype=torch.float32), torch.tensor(labels[1::2]))
    data = DatasetSplits("waves", train, test, num_classes=3)
    torch.manual_seed(0)
    method = build_method("simclr", Conv1dEncoder(1, width=16), 16, modality="sequences", out_dim=16,
                          head_hidden=32)
    trainer = Trainer(method, data, TrainConfig(method="simclr", data="waves", out=str(tmp_path / "run"), epochs=4,
                                                batch_size=20, lr=3e-3, progress=False))
    batch = trainer.batches(torch.arange(4), trainer.generator)
    assert [tuple(v.shape) for v in batch.views] == [(4, 1, 256)] * 2  # crop=None: whole sequences, with noise
    trainer.fit()
    metrics = trainer.evaluate()
    assert set(metrics["results"]) == {"trained", "random_init", "raw_inputs"}
    assert metrics["knn_acc"] > 0.6  # three frequencies; chance 1/3


def test_a_plugin_method_runs_from_the_command_line(tmp_path):
    plugin = next(b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
                  if "class BYOL(Method)" in b)
    (tmp_path / "byol_example.py").write_text(plugin)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "contrastkit", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)

    train = ("train", "--plugin", "byol_example", "--method", "byol", "--data", "digits", "--epochs", "1",
             "--batch-size", "128", "--out", "run", "--no-progress")
    bad = cli(*train, "--target-momentum", "2")
    assert bad.returncode == 2 and "`target_momentum` must be a number >= 0 and <= 1, got '2'" in bad.stderr
    done = cli(*train, "--target-momentum", "0.9")
    assert done.returncode == 0, done.stderr
    assert "target_momentum: 0.9" in (tmp_path / "run" / "config.yaml").read_text()
    assert cli("train", "--plugin", "byol_example", "--out", "run", "--resume", "--epochs", "2").returncode == 0
    evaluated = cli("eval", "run", "--plugin", "byol_example", "--no-plots", "--no-baselines")
    assert evaluated.returncode == 0 and "byol (small_cnn)" in evaluated.stdout
    recalled = cli("eval", "run", "--no-plots", "--no-baselines")  # the run recorded its plugin: no --plugin needed
    assert recalled.returncode == 0 and "byol (small_cnn)" in recalled.stdout
    missing = cli("train", "--plugin", "no_such_module", "--method", "byol")
    assert missing.returncode == 2 and "--plugin no_such_module: cannot import it" in missing.stderr


def test_a_trainer_given_only_training_data_fits_and_checkpoints(tmp_path) -> None:
    """A bare ArrayDataset (no test split) trains: its empty test split used to break the data fingerprint."""
    from contrastkit.models.tabular import MLPEncoder

    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.arange(64) % 2
    method = build_method("simclr", MLPEncoder(5), 256)
    trainer = Trainer(method, ArrayDataset(x, y), TrainConfig(method="simclr", data="rows", out=str(tmp_path / "r"),
                                                              epochs=1, batch_size=32, progress=False))
    assert trainer.fit()["steps"] == 2 and (tmp_path / "r" / "checkpoint.pt").exists()


class _SimSiamThatLogs(SimSiam):
    """SimSiam that logs two scalars of its own (no `log_keys`): the batch size (a known value) and a distance."""

    def forward(self, batch: Batch, group=None) -> StepOutput:
        out = super().forward(batch)
        gap = (batch.views[0] - batch.views[1]).abs().mean().detach()
        return StepOutput(out.loss, logs={**out.logs, "batch": torch.tensor(float(len(batch.views[0]))),
                                          "view_gap": gap})


def test_every_scalar_a_method_logs_is_a_column_of_the_training_log(digits, tmp_path):
    torch.manual_seed(0)
    encoder = SmallCNN(in_channels=1, image_size=8, width=8)
    method = _SimSiamThatLogs(encoder, encoder.feature_dim)
    assert not hasattr(method, "log_keys")
    Trainer(method, digits, _config(tmp_path / "run")).fit(max_steps=3)
    with (tmp_path / "run" / "train_log.csv").open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == ["step", "epoch", "loss", "lr", "images_per_s", "elapsed_s", "temperature", "batch",
                                 "view_gap"]
    assert [r["step"] for r in rows] == ["1", "2", "3"] and [r["batch"] for r in rows] == ["128.0"] * 3
    assert all(float(r["view_gap"]) > 0 for r in rows)


def test_a_trainer_takes_built_parts_and_from_config_builds_them_once(tmp_path, monkeypatch):
    import contrastkit.run
    import contrastkit.train

    config = TrainConfig(method="simclr", data="digits", out=str(tmp_path / "run"), epochs=1, batch_size=64,
                         progress=False)
    with pytest.raises(TypeError, match=r"^Trainer\(config\) is gone: use Trainer.from_config\(config\)"):
        Trainer(config)
    calls = {"check_batching": 0, "make_augment": 0}

    def counted(module, name):
        original = getattr(module, name)

        def count(*args, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, count)

    for module in (contrastkit.run, contrastkit.train):
        for name in calls:
            if hasattr(module, name):
                counted(module, name)
    trainer = Trainer.from_config(config)
    assert calls == {"check_batching": 1, "make_augment": 1}  # in build_run only (were 2 each: run.py and train.py)
    assert trainer.config.encoder == "small_cnn" and trainer.batches.augment is not None


class _NoViews(Method):
    """A method that takes the inputs themselves (batch_spec.views 0) on vectors."""

    batch_spec = BatchSpec(views=0)

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(6, 3)

    def forward(self, batch: Batch, group=None) -> StepOutput:
        loss = self.encoder(batch.views[0]).square().mean()
        return StepOutput(loss, logs={"loss": loss.detach()})


@pytest.mark.parametrize(("given", "augment", "words"), [
    ({"channels_last": True}, None, "`channels_last` true is ignored by vectors"),
    ({"workers": 2}, None, "`workers` 2 is ignored by 'toy', which is held in memory"),
    ({"optimizer": "adam", "momentum": 0.5}, None, "`momentum` 0.5 is ignored by optimizer 'adam'"),
    ({"augment": "scarf"}, None, "`augment` 'scarf' is ignored by method 'nv': it takes no augmented views"),
    ({}, nn.Identity(), "the augmentation module given is ignored by method 'nv'"),
])
def test_built_parts_refuse_the_settings_they_would_ignore(tmp_path, given, augment, words):
    """The same rule as from a config (run.build_run): a setting the parts ignore is an error, never dropped."""
    data = ArrayDataset(torch.randn(32, 6), torch.full((32,), -1))
    config = TrainConfig(method="nv", data="toy", epochs=1, batch_size=8, out=str(tmp_path / "run"), **given)
    with pytest.raises(SettingsError, match=re.escape(words)):
        Trainer(_NoViews(), data, config, augment=augment)
    assert not (tmp_path / "run").exists()
