"""Plots: PNG files are written (non-empty, PNG signature), without changing matplotlib's backend."""

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

from contrastkit.evaluate import embed_2d, plot_embedding_2d, plot_training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG_SIGNATURE


def test_tsne_embedding_plot(tmp_path: Path) -> None:
    backend = matplotlib.get_backend()
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    features = torch.from_numpy(np.eye(3, 10)[labels] * 5 + rng.normal(size=(60, 10))).float()
    path = tmp_path / "sub" / "tsne.png"
    coords = plot_embedding_2d(features, torch.from_numpy(labels), path, title="test", seed=0)
    assert _is_png(path)
    assert coords.shape == (60, 2) and np.isfinite(coords).all()
    assert np.allclose(coords, embed_2d(features.numpy(), "tsne", seed=0))  # seeded: reproducible
    assert matplotlib.get_backend() == backend


def test_pca_identity_and_subsampling(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 12, size=200)
    coords = plot_embedding_2d(rng.normal(size=(200, 5)), labels, tmp_path / "pca.png", method="pca",
                               max_points=50)
    assert coords.shape == (50, 2) and _is_png(tmp_path / "pca.png")
    flat = rng.normal(size=(30, 2))
    assert np.array_equal(plot_embedding_2d(flat, labels[:30], tmp_path / "id.png", method="identity"), flat)
    assert _is_png(tmp_path / "id.png")
    with pytest.raises(ValueError, match="method"):
        plot_embedding_2d(flat, labels[:30], tmp_path / "x.png", method="umap")
    with pytest.raises(ValueError, match="2-D features"):
        plot_embedding_2d(rng.normal(size=(30, 3)), labels[:30], tmp_path / "x.png", method="identity")
    with pytest.raises(ValueError, match="labels"):
        plot_embedding_2d(flat, labels[:29], tmp_path / "x.png", method="identity")
    with pytest.raises(ValueError, match="class_names"):
        plot_embedding_2d(flat, labels[:30], tmp_path / "x.png", method="identity", class_names=["a", "b"])
    named = tmp_path / "named.png"
    plot_embedding_2d(flat, labels[:30] % 2, named, method="identity", class_names=["even", "odd"])
    assert _is_png(named)


def test_training_curves(tmp_path: Path) -> None:
    csv_path = tmp_path / "log.csv"
    lines = ["step,epoch,loss,lr,knn_acc"]
    for step in range(50):
        knn = f"{0.5 + step / 100:.3f}" if step % 10 == 9 else ""
        lines.append(f"{step},{step // 10},{3.0 - step / 25:.4f},{0.1 * (1 - step / 50):.5f},{knn}")
    csv_path.write_text("\n".join(lines) + "\n")
    png = tmp_path / "curves.png"
    assert plot_training_curves(csv_path, png) == ["loss", "lr", "knn_acc"]
    assert _is_png(png)
    bad = tmp_path / "bad.csv"
    bad.write_text("step,lr\n0,0.1\n")
    with pytest.raises(ValueError, match="loss"):
        plot_training_curves(bad, tmp_path / "bad.png")
    empty = tmp_path / "empty.csv"
    empty.write_text("step,loss\n")
    with pytest.raises(ValueError, match="no data rows"):
        plot_training_curves(empty, tmp_path / "empty.png")
