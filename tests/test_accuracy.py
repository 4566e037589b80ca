"""Slow: each method, trained 40 epochs on mnist5k on the CPU, beats both baselines of the same protocol by a margin.

The baselines are computed in the same run, with the same data split and evaluation protocol
(:func:`contrastkit.evaluate.evaluate_features`): raw pixels (once for the module) and, per method, the same
encoder at its seeded initialisation before training (``random_init``). A method must beat each baseline by
``MARGINS`` -- a fixed threshold equal to the raw-pixel kNN (0.950) would pass an encoder that learned nothing
useful for kNN.

Measured on the project's 2-core machine (bf16 autocast, 40 epochs, linear / kNN on the 1,000 test images): see
``MEASURED`` (this test's runs gave the same figures as the earlier measurement in the history). The tightest
margin is MoCo's and the memory bank's kNN: 96.0 % against raw pixels' 95.0 %, so ``MARGINS`` asks for 0.5 point
there (5 test images of slack) and 3 points on the linear probe (about 6 measured); over the untrained encoder,
3 points linear and 2 points kNN (about 8 and 5 measured). The README's targets (300 epochs, <= 5 minutes) are
measured by the main job, not here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from torch import nn

from contrastkit.config import TrainConfig
from contrastkit.data.containers import DatasetSplits
from contrastkit.data.load import load_dataset
from contrastkit.evaluate import evaluate_features, extract_features, pixel_features
from contrastkit.report import evaluate_run
from contrastkit.train import Trainer

METHODS = ("membank", "moco", "simclr")
EPOCHS = 40

#: required gain (accuracy fraction) of the trained encoder over each baseline: (linear, kNN)
MARGINS = {"raw_pixels": (0.03, 0.005), "random_init": (0.03, 0.02)}

#: measured (linear, kNN) of this test's runs, recorded for the reader; never asserted
MEASURED = {
    "raw_pixels": (0.913, 0.950),
    "random_init": (0.897, 0.912),
    "simclr": (0.981, 0.967),
    "moco": (0.974, 0.960),
    "membank": (0.975, 0.960),
}


def _scores(result: dict[str, float]) -> tuple[float, float]:
    return result["linear_accuracy"], result["knn_accuracy"]


@pytest.fixture(scope="module")
def mnist5k() -> DatasetSplits:
    """The canonical mnist5k split (4,000 train / 1,000 test), the one the trainer loads by default."""
    return load_dataset("mnist5k")


@pytest.fixture(scope="module")
def raw_pixels(mnist5k: DatasetSplits) -> tuple[float, float]:
    """(linear, kNN) of the flattened pixels, once for all methods."""
    return _scores(evaluate_features(pixel_features(mnist5k.train.images), mnist5k.train.labels,
                                     pixel_features(mnist5k.test.images), mnist5k.test.labels))


def _encoder_scores(encoder: nn.Module, data: DatasetSplits) -> tuple[float, float]:
    """(linear, kNN) of frozen ``encoder`` features under the same protocol."""
    return _scores(evaluate_features(extract_features(encoder, data.train.images), data.train.labels,
                                     extract_features(encoder, data.test.images), data.test.labels))


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_method_beats_its_baselines_on_mnist5k(method: str, tmp_path: Path, mnist5k: DatasetSplits,
                                               raw_pixels: tuple[float, float]) -> None:
    """Guards learning itself: after 40 epochs the encoder's linear and kNN accuracies exceed raw pixels and the
    untrained encoder by ``MARGINS`` (a broken pairing or loss leaves it near or below them)."""
    out = tmp_path / method
    trainer = Trainer.from_config(TrainConfig(method=method, data="mnist5k", epochs=EPOCHS, out=str(out),
                                              progress=False, log_every=50))
    # before fit: the run's encoder at its seeded initialisation (extract_features leaves BN statistics alone)
    baselines = {"raw_pixels": raw_pixels, "random_init": _encoder_scores(trainer.method.encoder, mnist5k)}
    trainer.fit()
    metrics = evaluate_run(out, baselines=False, plots=False, quiet=True)
    trained = (metrics["linear_acc"], metrics["knn_acc"])
    report = {"trained": trained, **baselines}
    print(f"{method}: {report}")  # shown with pytest -s
    for name, (linear_margin, knn_margin) in MARGINS.items():
        linear, knn = baselines[name]
        assert trained[0] >= linear + linear_margin, (name, report)
        assert trained[1] >= knn + knn_margin, (name, report)
    assert json.loads((out / "metrics.json").read_text())["knn_acc"] == metrics["knn_acc"]
