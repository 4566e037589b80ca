"""A method's evaluation: the generic kNN / probe path for any modality, and the CPC paper's speaker and phone
probes (with MFCC and random-init baselines) for a sequence method on speech-like data with frame labels.

The expected numbers are computed here without the evaluation code: the features from the method itself
(``frame_features`` / ``features``), the probes written out in scikit-learn and the kNN vote as a float64 loop
(tests/references.py)."""

import json

import numpy as np
import pytest
import torch

from contrastkit.config import TrainConfig
from contrastkit.evaluate.audio_features import mfcc
from contrastkit.evaluate.method import evaluate_method
from contrastkit.report import evaluate_run
from contrastkit.train import Trainer
from tests.references import linear_probe_accuracy, phone_probe_accuracy, weighted_knn_accuracy

SMALL_CPC = {"channels": 16, "context": 16, "steps_ahead": 3, "crop": 3200}


def _contexts(method: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """c_t of every utterance, (N, T', D), straight from the method in eval mode."""
    method.eval()
    with torch.no_grad():
        return torch.cat([method.frame_features(x[i:i + 64].float()) for i in range(0, len(x), 64)]).numpy()


def test_cpc_evaluation_reports_both_probes_against_mfcc_and_random_init(tmp_path):
    out = tmp_path / "run"
    trainer = Trainer.from_config(TrainConfig(method="cpc", data="toyspeech", out=str(out), epochs=1, batch_size=32,
                                              progress=False, method_options=SMALL_CPC))
    trainer.fit()
    metrics = evaluate_run(out, quiet=True)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["speaker_acc"] == metrics["speaker_acc"] and saved["phone_acc"] == metrics["phone_acc"]
    assert set(saved["baselines"]) == {"mfcc", "random_init"}
    for baseline in saved["baselines"].values():
        assert {"speaker_acc", "phone_acc"} <= set(baseline)
    assert len(saved["prediction_accuracy"]) == 3
    assert (out / "prediction_accuracy.png").stat().st_size > 1000
    # the numbers are the probes of the trained method's c_t and of MFCC, recomputed here without the library's
    # evaluation code (solver round-off allowed: one of the 4,096 test frames, one of the 64 test utterances)
    data = trainer.data
    train_c, test_c = _contexts(trainer.method, data.train.x), _contexts(trainer.method, data.test.x)
    y, y_test = data.train.frame_labels.numpy(), data.test.frame_labels.numpy()
    assert metrics["phone_acc"] == pytest.approx(phone_probe_accuracy(train_c, y, test_c, y_test), abs=1 / 4096)
    speakers, test_speakers = data.train.labels.numpy(), data.test.labels.numpy()
    speaker = linear_probe_accuracy(train_c.mean(1), speakers, test_c.mean(1), test_speakers)
    assert metrics["speaker_acc"] == pytest.approx(speaker, abs=1 / 64)
    mfcc_train, mfcc_test = mfcc(data.train.x), mfcc(data.test.x)  # (N, 64, 39) on the label frames
    mfcc_phone = phone_probe_accuracy(mfcc_train, y, mfcc_test, y_test)
    assert metrics["baselines"]["mfcc"]["phone_acc"] == pytest.approx(mfcc_phone, abs=1 / 4096)
    assert mfcc_phone > 0.5  # phones are easy from MFCC here
    assert metrics["speaker_chance"] == pytest.approx(np.bincount(test_speakers).max() / 64)
    assert metrics["phone_chance"] == pytest.approx(np.bincount(y_test.ravel()).max() / y_test.size)


def test_the_generic_path_scores_any_method_and_skips_raw_audio(tmp_path):
    trainer = Trainer.from_config(TrainConfig(method="cpc", data="toyspeech", out=str(tmp_path / "r"), epochs=1,
                                              batch_size=32, progress=False, method_options=SMALL_CPC))
    metrics, test_features = evaluate_method(trainer.method, trainer.data, baselines=True)
    assert test_features.shape == (64, 16)  # mean-pooled c_t per utterance
    data = trainer.data
    train_c, test_c = _contexts(trainer.method, data.train.x), _contexts(trainer.method, data.test.x)
    np.testing.assert_allclose(test_features.numpy(), test_c.mean(1), rtol=1e-5, atol=1e-6)
    knn = weighted_knn_accuracy(train_c.mean(1), data.train.labels.numpy(), test_c.mean(1), data.test.labels.numpy())
    assert metrics["knn_acc"] == metrics["results"]["trained"]["knn_accuracy"] == pytest.approx(knn, abs=1 / 64)
    assert set(metrics["results"]) == {"trained"}  # no random method given; raw audio skipped with a note
    assert any("raw-input baseline skipped" in note for note in metrics["notes"])
    assert "baselines" in metrics and set(metrics["baselines"]) == {"mfcc"}
    assert torch.isfinite(torch.tensor(metrics["prediction_accuracy"])).all()
