"""A method's evaluation: the generic kNN / probe path for any modality, and the CPC paper's speaker and phone
probes (with MFCC and random-init baselines) for a sequence method on speech-like data with frame labels."""

import json

import torch

from contrastkit.config import TrainConfig
from contrastkit.evaluate.method import evaluate_method, frame_features
from contrastkit.evaluate.sequence_probes import mfcc_features, probe_features
from contrastkit.report import evaluate_run
from contrastkit.train import Trainer

SMALL_CPC = {"channels": 16, "context": 16, "steps_ahead": 3, "crop": 3200}


def test_cpc_evaluation_reports_both_probes_against_mfcc_and_random_init(tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(TrainConfig(method="cpc", data="toyspeech", out=str(out), epochs=1, batch_size=32,
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
    # the numbers are the probes of the checkpoint's per-frame features and of MFCC, recomputed here
    data, method = trainer.data, trainer.method
    expected = probe_features(frame_features(method, data.train.x).numpy(), frame_features(method, data.test.x).numpy(),
                              data, seed=0)
    assert (metrics["speaker_acc"], metrics["phone_acc"]) == (expected["speaker_acc"], expected["phone_acc"])
    mfcc = probe_features(mfcc_features(data.train), mfcc_features(data.test), data, seed=0)
    assert metrics["baselines"]["mfcc"]["phone_acc"] == mfcc["phone_acc"] > 0.5  # phones are easy from MFCC here


def test_the_generic_path_scores_any_method_and_skips_raw_audio(tmp_path):
    trainer = Trainer(TrainConfig(method="cpc", data="toyspeech", out=str(tmp_path / "r"), epochs=1, batch_size=32,
                                  progress=False, method_options=SMALL_CPC))
    metrics, test_features = evaluate_method(trainer.method, trainer.data, baselines=True)
    assert test_features.shape == (64, 16)  # mean-pooled c_t per utterance
    assert set(metrics["results"]) == {"trained"}  # no random method given; raw audio skipped with a note
    assert any("raw-input baseline skipped" in note for note in metrics["notes"])
    assert "baselines" in metrics and set(metrics["baselines"]) == {"mfcc"}
    assert torch.isfinite(torch.tensor(metrics["prediction_accuracy"])).all()
