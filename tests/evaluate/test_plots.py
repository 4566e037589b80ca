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


def test_class_names_from_any_folder_name_are_drawn_as_written(tmp_path: Path, monkeypatch) -> None:
    # a POSIX folder named b"\xff\xfe" reaches Python as "\udcff\udcfe"; matplotlib's fonts refused it, and a
    # name between dollar signs was parsed as (broken) mathtext
    import contrastkit.evaluate.plots as plots

    figures = []
    save = plots._save
    monkeypatch.setattr(plots, "_save", lambda figure, path: (figures.append(figure), save(figure, path)))
    rng = np.random.default_rng(2)
    names = ["\udcff\udcfe", "caf\udce9", r"$\foo$", "café"]
    path = tmp_path / "names.png"
    plot_embedding_2d(rng.normal(size=(20, 2)), np.arange(20) % 4, path, method="identity", class_names=names,
                      title="data/\udcff: map")
    assert _is_png(path)
    axes = figures[0].axes[0]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == ["\\xff\\xfe", "caf\\xe9", r"\$\foo\$", "café"]
    assert axes.get_title() == "data/\\xff: map"


def test_readable_shows_undecodable_bytes_and_control_characters_as_escapes() -> None:
    from contrastkit.evaluate._text import readable

    assert readable("\udcff\udcfe") == "\\xff\\xfe"  # os.fsdecode(b"\xff\xfe")
    assert readable("caf\udce9") == "caf\\xe9" and readable("café") == "café"
    assert readable("\ud800x") == "\\ud800x"  # a lone surrogate that is no escaped byte
    assert readable("a\nb\x7f") == "a\\x0ab\\x7f"  # one line


def test_training_curves_skip_cells_no_axis_can_span(tmp_path: Path) -> None:
    csv_path = tmp_path / "log.csv"
    # a loss of +-1e308 overflowed matplotlib's tick arithmetic ("arange: cannot compute length")
    csv_path.write_text("step,loss,lr,nothing\n1,1e308,0.1,nan\n2,-1e308,0.1,inf\n3,2.5,0.1,\n4,2.0,0.1,x\n")
    assert plot_training_curves(csv_path, tmp_path / "curves.png") == ["loss", "lr"]
    assert _is_png(tmp_path / "curves.png")


def test_a_training_log_that_is_not_csv_text_is_one_line_naming_the_file(tmp_path: Path) -> None:
    from contrastkit.evaluate.plots import read_training_log

    log = tmp_path / "train_log.csv"
    log.write_bytes(b"step,loss\n" + b"1,2.0\n" * 100_000 + b"2,\xff\n")  # the bad byte far past the first read
    with pytest.raises(ValueError) as caught:
        plot_training_curves(log, tmp_path / "curves.png")
    assert str(caught.value) == (f"plot_training_curves: {log} is not a text CSV: line 100002 holds bytes that are "
                                 f"not UTF-8 (0xff; a binary file?); expected the CSV text the trainer writes (a "
                                 f"header such as `step,epoch,loss,lr`, one line per step)")
    log.write_text("hello world\nthis is no log\n")
    with pytest.raises(ValueError, match=r"needs a `step` column, has \['hello world'\]"):
        plot_training_curves(log, tmp_path / "curves.png")
    log.write_text("step,loss\n1,2\n")
    assert read_training_log(log) == [{"step": "1", "loss": "2"}]
