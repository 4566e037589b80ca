"""The command line end to end on tiny data, in a subprocess: train, resume, eval, plot, errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "contrastkit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 30)
    images = rng.integers(0, 50, size=(90, 8, 8))
    for i, y in enumerate(labels):
        images[i, :, 2 * int(y):2 * int(y) + 3] += 200
    path = tmp_path_factory.mktemp("cli") / "tiny.npz"
    np.savez(path, x=images.astype(np.uint8), y=labels)
    return path


def test_train_eval_plot_end_to_end(tiny_npz, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("method: moco\nbatch_size: 16\nepochs: 5\nmethod_options:\n  queue_size: 32\n")
    out = tmp_path / "run"
    done = _cli("train", "--config", str(config), "--data", str(tiny_npz), "--epochs", "2", "--out", str(out),
                "--no-progress", "--set", "symmetric=true", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    saved = (out / "config.yaml").read_text()
    assert "epochs: 2" in saved and "symmetric: true" in saved and "queue_size: 32" in saved  # flags beat YAML
    resumed = _cli("train", "--config", str(config), "--data", str(tiny_npz), "--epochs", "2", "--out", str(out),
                   "--no-progress", "--set", "symmetric=true", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout[resumed.stdout.index("{"):])["steps"] == 2 * (72 // 16)
    evaluated = _cli("eval", str(out), cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["linear_acc"] <= 1.0 and 0.0 <= metrics["knn_acc"] <= 1.0
    assert {"trained", "random_init", "raw_pixels"} <= set(metrics["results"])
    assert "raw pixels" in evaluated.stdout and "linear probe" in evaluated.stdout
    assert (out / "embedding_tsne.png").stat().st_size > 1000
    plotted = _cli("plot", str(out), cwd=tmp_path)
    assert plotted.returncode == 0 and "training_curves.png" in plotted.stdout


def test_help_and_errors(tmp_path):
    for command in ("train", "eval", "plot", "demo"):
        shown = _cli(command, "--help", cwd=tmp_path)
        assert shown.returncode == 0 and "usage" in shown.stdout
    missing = _cli("train", "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "x"), cwd=tmp_path)
    assert missing.returncode == 2 and "nope.npz" in missing.stderr and "mnist5k" in missing.stderr
    no_run = _cli("eval", str(tmp_path / "empty"), cwd=tmp_path)
    assert no_run.returncode == 2 and "no checkpoint" in no_run.stderr
    bad_method = _cli("train", "--method", "byol", "--out", str(tmp_path / "y"), cwd=tmp_path)
    assert bad_method.returncode == 2 and "unknown method" in bad_method.stderr
