"""The evaluation records the time of each phase and the precision of its features; bf16 features (the trainer's
fast path) are float32 outputs close to the fp32 ones; `contrastkit eval` prints the phase times."""

import copy

import pytest
import torch

from contrastkit.config import TrainConfig
from contrastkit.data.load import load_dataset
from contrastkit.evaluate.features import embed_inputs
from contrastkit.evaluate.method import evaluate_method, feature_precision, format_timings
from contrastkit.models.encoders import build_encoder
from contrastkit.train import Trainer


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _encoder() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_encoder("small_cnn", in_channels=1, image_size=8)


def test_metrics_hold_the_seconds_of_every_phase_and_the_feature_precision(tmp_path) -> None:
    trainer = Trainer.from_config(TrainConfig(method="simclr", data="digits", out=str(tmp_path / "run"), epochs=1,
                                              progress=False))
    metrics, _ = evaluate_method(trainer.method, trainer.data, random_method=copy.deepcopy(trainer.method))
    timings = metrics["timings"]
    assert set(timings["features"]) == set(timings["knn"]) == set(timings["linear_probe"]) == \
        {"trained", "random_init", "raw_pixels"}
    assert all(value >= 0 for phase in ("features", "knn", "linear_probe") for value in timings[phase].values())
    assert timings["total"] >= sum(timings["knn"].values()) + sum(timings["linear_probe"].values())
    assert metrics["feature_precision"] == "fp32"
    text = format_timings(timings)
    assert text.startswith(f"evaluation time {timings['total']:.1f} s:")
    assert "linear probe: trained" in text and "knn: trained" in text


def test_feature_precision_follows_the_trainers_rule_and_refuses_unknown_names() -> None:
    assert feature_precision("fp32", "images", torch.device("cuda")) == "fp32"
    assert feature_precision("bf16", "vectors", torch.device("cpu")) == "bf16"
    assert feature_precision("auto", "images", torch.device("cuda")) == "bf16"
    assert feature_precision("auto", "sequences", torch.device("cuda")) == "fp32"
    with pytest.raises(ValueError, match="`precision` must be one of fp32, bf16, auto"):
        feature_precision("fp16", "images", torch.device("cpu"))


def test_bf16_features_are_float32_and_close_to_fp32(digits) -> None:
    encoder = _encoder()
    x = digits.test.inputs
    exact = embed_inputs(encoder, x)
    fast = embed_inputs(encoder, x, autocast_dtype=torch.bfloat16, channels_last=True)
    assert fast.dtype == exact.dtype == torch.float32 and fast.shape == exact.shape
    # bf16 keeps 8 significant bits: each feature within a few per cent of the feature scale
    assert float((fast - exact).abs().max()) <= 0.05 * float(exact.abs().max())
    assert not fast.is_inference()  # usable by autograd-aware code afterwards
