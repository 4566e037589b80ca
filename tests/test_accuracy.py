"""Slow: each method, trained 40 epochs on mnist5k on the CPU, beats raw pixels on the held-out split.

Measured on the project's 2-core machine (bf16 autocast): SimCLR 98.1 % linear / 96.7 % kNN in 30 s,
MoCo v2 97.4 % / 96.0 % in 29 s, memory bank 97.5 % / 96.0 % in 17 s; raw pixels 91.3 % / 95.0 %.
The thresholds leave about a point for other machines (fp32 kernels, other BLAS). The README's targets
(300 epochs, <= 5 minutes) are measured by the main job, not here.
"""

import json

import pytest

from contrastkit.config import TrainConfig
from contrastkit.report import evaluate_run
from contrastkit.train import Trainer

THRESHOLDS = {"simclr": (0.97, 0.955), "moco": (0.96, 0.95), "membank": (0.96, 0.95)}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(THRESHOLDS))
def test_method_learns_mnist5k_features(method, tmp_path):
    out = tmp_path / method
    Trainer(TrainConfig(method=method, data="mnist5k", epochs=40, out=str(out), progress=False, log_every=50)).fit()
    metrics = evaluate_run(out, baselines=method == "simclr", plots=False, quiet=True)
    linear_min, knn_min = THRESHOLDS[method]
    assert metrics["linear_acc"] >= linear_min, metrics
    assert metrics["knn_acc"] >= knn_min, metrics
    if method == "simclr":  # the same protocol scores the baselines lower
        results = metrics["results"]
        assert results["raw_pixels"]["linear_accuracy"] + 0.04 < metrics["linear_acc"]
        assert results["random_init"]["linear_accuracy"] + 0.04 < metrics["linear_acc"]
    assert json.loads((out / "metrics.json").read_text())["knn_acc"] == metrics["knn_acc"]
