"""The supervised cross-entropy baseline: the loss on a hand-computed case, training on digits to well above chance
(the classifier's own test accuracy, as the evaluation reports it), the refusal of unlabelled data, the registry's
entry and the command line's train + eval."""

import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contrastkit.cli import main
from contrastkit.config import TrainConfig
from contrastkit.evaluate.method import method_features
from contrastkit.methods import build_method
from contrastkit.methods.base import Batch
from contrastkit.methods.registry import GENERIC_TRAINING_DEFAULTS, get_method, method_settings
from contrastkit.methods.supervised import SUPERVISED_TRAINING_DEFAULTS, SupervisedClassifier, SupervisedSettings
from contrastkit.settings import SettingsError
from contrastkit.train import Trainer


def _identity_classifier(**settings) -> SupervisedClassifier:
    """Logits = inputs: an identity encoder (2 features) and a classifier whose weights are the identity."""
    method = SupervisedClassifier(nn.Identity(), 2, 2, **settings)
    with torch.no_grad():
        method.classifier.weight.copy_(torch.eye(2))
        method.classifier.bias.zero_()
    return method


def _batch(x: torch.Tensor, labels: list[int]) -> Batch:
    return Batch(views=[x], indices=torch.arange(len(labels)), labels=torch.tensor(labels))


def test_the_loss_is_cross_entropy_of_a_hand_computed_case():
    """Logits (ln 3, 0) with class 0: softmax 3/4, loss ln(4/3); logits (0, 0) with class 1: ln 2. Mean ln(8/3)/2.
    With label smoothing 0.5 over C = 2 the first target is (3/4, 1/4): -(3/4) ln(3/4) - (1/4) ln(1/4)."""
    x = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    out = _identity_classifier()(_batch(x, [0, 1]))
    assert out.loss.item() == pytest.approx(math.log(8 / 3) / 2, abs=1e-6)
    assert out.loss.item() == pytest.approx(F.cross_entropy(x, torch.tensor([0, 1])).item(), abs=1e-7)
    assert out.loss.requires_grad and out.logs["train_acc"].item() == 0.5  # argmax of (0, 0) is class 0: wrong
    smoothed = _identity_classifier(label_smoothing=0.5)(_batch(x[:1], [0]))
    assert smoothed.loss.item() == pytest.approx(-0.75 * math.log(0.75) - 0.25 * math.log(0.25), abs=1e-6)


def test_the_loss_is_float32_under_bf16_autocast():
    x = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = _identity_classifier()(_batch(x, [0, 1]))
    assert out.loss.dtype == torch.float32


def test_training_on_digits_lifts_the_classifier_far_above_chance(tmp_path):
    """Three epochs of batches of 64 on digits (seed 0): the trained classifier's accuracy on the 359 held-out digits
    was 0.939 when measured (chance 0.1; the seeded initialisation about that); `classifier_acc` of the evaluation is
    that accuracy, recomputed here from the logits. Evaluation scores the encoder's features."""
    config = TrainConfig(method="supervised", data="digits", out=str(tmp_path / "run"), epochs=3, batch_size=64,
                         log_every=5, progress=False, seed=0)
    trainer = Trainer.from_config(config)
    test = trainer.data.test
    with torch.no_grad():
        before = (trainer.method.logits(test.x.float() / 255).argmax(1) == test.labels).float().mean().item()
    trainer.fit()
    metrics = trainer.evaluate(baselines=False)
    trainer.method.eval()
    with torch.no_grad():
        logits = trainer.method.logits(test.x.float() / 255)
    by_hand = int((logits.argmax(1) == test.labels).sum()) / len(test.labels)
    assert metrics["classifier_acc"] == pytest.approx(by_hand, abs=1 / len(test.labels))  # bf16 round-off: a sample
    assert metrics["classifier_acc"] > 0.85 and before < 0.3, (metrics["classifier_acc"], before)
    with torch.no_grad():
        encoder = trainer.method.encoder(test.x[:7].float() / 255).flatten(1)
    assert torch.allclose(method_features(trainer.method, test.x[:7]), encoder, atol=1e-5)  # the encoder is scored
    assert metrics["linear_acc"] > 0.85 and metrics["knn_acc"] > 0.85


def test_unlabelled_data_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, size=(40, 1, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "unlabelled.npy", images)
    message = "method 'supervised' trains a classifier on class labels, but the training data (the `data` setting) " \
              "has no labels"
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        Trainer.from_config(TrainConfig(method="supervised", data=str(tmp_path / "unlabelled.npy"),
                                        out=str(tmp_path / "run"), epochs=1, batch_size=8, progress=False))
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--method", "supervised", "--data", str(tmp_path / "unlabelled.npy"), "--epochs", "1",
                 "--batch-size", "8", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"contrastkit train: error: {message}; use labelled data")
    assert not (tmp_path / "run").exists()


def test_one_class_and_bad_settings_are_refused():
    with pytest.raises(ValueError, match=r"the training data .* has a single class"):
        build_method("supervised", nn.Linear(4, 3), 3, num_classes=1)
    with pytest.raises(ValueError, match="has no labels"):
        build_method("supervised", nn.Linear(4, 3), 3)  # num_classes 0: unlabelled
    with pytest.raises(SettingsError, match="label_smoothing"):
        method_settings("supervised", label_smoothing=1.0)
    with pytest.raises(SettingsError, match="unknown setting"):
        method_settings("supervised", temperature=0.1)  # a contrastive setting: not the classifier's
    with pytest.raises(ValueError, match="`num_classes` must be an integer >= 2"):
        SupervisedClassifier(nn.Linear(4, 3), 3, 1)


def test_the_registry_entry_and_its_defaults():
    entry = get_method("supervised")
    assert entry.description and entry.default_encoder is None  # the images' default encoder, as simclr's
    assert entry.training_defaults == {**GENERIC_TRAINING_DEFAULTS, **SUPERVISED_TRAINING_DEFAULTS}
    method = build_method("supervised", nn.Linear(4, 3), 3, num_classes=5, augmented=False)
    assert isinstance(method, SupervisedClassifier) and method.classifier.out_features == 5
    assert method.batch_spec.views == 0 and method.batch_spec.labels
    assert build_method("supervised", nn.Linear(4, 3), 3, num_classes=5).batch_spec.views == 1  # one augmented view
    assert method_settings("supervised") == SupervisedSettings()


def test_the_command_line_trains_and_evaluates_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["train", "--method", "supervised", "--data", "digits", "--epochs", "1", "--batch-size", "64",
                 "--label-smoothing", "0.1", "--out", str(out), "--no-progress"]) == 0
    assert main(["eval", str(out), "--no-baselines", "--no-plots"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "supervised" and 0.0 <= metrics["classifier_acc"] <= 1.0
    assert "linear_acc" in metrics and "knn_acc" in metrics
    assert "label_smoothing: 0.1" in (out / "config.yaml").read_text()
