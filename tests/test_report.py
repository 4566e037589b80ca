"""`contrastkit eval` / `plot` of runs with degenerate features, odd class-folder names and broken training logs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contrastkit.report import format_table


def _main(capsys, *args: str) -> tuple[int, str, str]:
    from contrastkit.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command in its own process: a native crash (a segmentation fault) is a return code, not a dead pytest."""
    return subprocess.run([sys.executable, "-m", "contrastkit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def _train(capsys, data: Path, out: Path, *extra: str) -> None:
    code, _, err = _main(capsys, "train", "--data", str(data), "--out", str(out), "--batch-size", "16", "--epochs",
                         "1", "--no-progress", *extra)
    assert code == 0, err


@pytest.fixture(scope="module")
def vector_run(tmp_path_factory) -> Path:
    """A run on 3 separable clusters of 8-D vectors (one epoch of SimCLR)."""
    root = tmp_path_factory.mktemp("vectors")
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    x = (np.eye(3, 8)[labels] * 4 + rng.normal(size=(60, 8))).astype(np.float32)
    np.savez(root / "clusters.npz", x=x, y=labels)
    from contrastkit.cli import main

    assert main(["train", "--data", str(root / "clusters.npz"), "--out", str(root / "run"), "--batch-size", "16",
                 "--epochs", "1", "--no-progress"]) == 0
    return root / "run"


def test_eval_and_plot_of_a_run_on_constant_inputs_skip_the_map_with_a_note(tmp_path, capsys):
    # all-ones vectors: every feature vector is the same point; t-SNE used to die natively (exit 139)
    y_train = np.random.default_rng(0).permutation([0] * 25 + [1] * 15)
    y_test = np.array([0, 1, 0, 0, 1, 0, 1, 0, 0, 1])  # 6 of the train split's majority class 0
    data = tmp_path / "ones.npz"
    np.savez(data, x_train=np.ones((40, 8), np.float32), y_train=y_train, x_test=np.ones((10, 8), np.float32),
             y_test=y_test)
    out = tmp_path / "run"
    _train(capsys, data, out)
    evaluated = _cli("eval", str(out), "--knn-k", "40", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "Warning" not in evaluated.stderr  # no divide-by-zero warnings on the way
    skipped = ("embedding_tsne.png not drawn: all 10 feature vectors are identical: nothing to map (a collapsed "
               "representation, or constant inputs)")
    assert f"note: {skipped}" in evaluated.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert skipped in metrics["notes"]
    assert any(note.startswith("the 40 train feature vectors are all one point") for note in metrics["notes"])
    # no signal: the probe predicts the train split's majority class, and kNN with k = all 40 train samples (all
    # tied, equal weights) votes by class counts -- both get the 6 test samples of class 0
    assert metrics["linear_acc"] == metrics["knn_acc"] == 0.6
    assert metrics["alignment_uniformity"] == {"alignment": 0.0, "uniformity": 0.0}
    assert not (out / "embedding_tsne.png").exists() and (out / "training_curves.png").exists()
    plotted = _cli("plot", str(out), cwd=tmp_path)
    assert plotted.returncode == 0, plotted.stderr[-2000:]
    assert f"note: {skipped}" in plotted.stdout and "wrote" in plotted.stdout and "Warning" not in plotted.stderr


def test_a_class_folder_with_a_non_utf8_name_evaluates_and_plots(tmp_path, capsys):
    root = os.fsencode(tmp_path / "images")
    rng = np.random.default_rng(0)
    for name in (b"\xff\xfe", b"cat"):  # a POSIX name that is not UTF-8, and a plain one
        folder = os.path.join(root, name)
        os.makedirs(folder)
        for i in range(20):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(os.path.join(folder, b"%d.png" % i))
    out = tmp_path / "run"
    _train(capsys, Path(os.fsdecode(root)), out)
    code, stdout, err = _main(capsys, "eval", str(out))
    assert code == 0, err
    assert (out / "embedding_tsne.png").stat().st_size > 1000 and (out / "metrics.json").exists()
    assert "held-out accuracy" in stdout
    (out / "embedding_tsne.png").unlink()
    code, stdout, err = _main(capsys, "plot", str(out))
    assert code == 0, err
    assert f"wrote {out / 'embedding_tsne.png'}" in stdout and (out / "embedding_tsne.png").exists()


@pytest.mark.parametrize("content, problem", [
    (bytes(range(256)) * 4, "line 2 holds bytes that are not UTF-8 (0x80"),  # binary: byte 10 ends line 1
    ("step,loss\n1,2\n2,café\n".encode("latin-1"), "line 3 holds bytes that are not UTF-8 (0xe9"),  # Latin-1
    (b"step,loss\n1," + b"x" * 200_000 + b"\n", "line 2 is not CSV (field larger than field limit"),
], ids=["binary", "latin-1", "huge-field"])
def test_plot_of_a_run_whose_training_log_is_not_a_csv_names_the_file(vector_run, tmp_path, capsys, content, problem):
    run = tmp_path / "run"
    shutil.copytree(vector_run, run)
    (run / "train_log.csv").write_bytes(content)
    code, _, err = _main(capsys, "plot", str(run))
    assert code == 2
    assert err.startswith(f"contrastkit plot: error: plot: {run / 'train_log.csv'} ") and problem in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (run / "embedding_tsne.png").exists()  # refused before any map was computed


def test_plot_of_a_sound_run_draws_the_map_and_the_curves(vector_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(vector_run, run)
    code, stdout, err = _main(capsys, "plot", str(run))
    assert code == 0, err
    assert stdout.splitlines() == [f"wrote {run / 'embedding_tsne.png'}", f"wrote {run / 'training_curves.png'}"]


def test_format_table_shows_a_skipped_trustworthiness():
    metrics = {"method": "drlim", "encoder": "mlp", "data": "data/\udcff.npz", "modality": "vectors",
               "train_seconds": 3.0, "trustworthiness": None, "pca_trustworthiness": 0.8125, "trustworthiness_k": 10,
               "results": {"trained": {"linear_accuracy": 0.5, "knn_accuracy": 0.25, "knn_k": 20}}}
    table = format_table(metrics)
    assert table.splitlines()[0] == "held-out accuracy on data/\\xff.npz (test split)"
    assert table.splitlines()[-1] == ("trustworthiness (k=10) of the test points' 2-D map: drlim - (see notes), "
                                      "PCA 0.812")


def test_format_table_shows_the_triplet_states_of_the_test_split():
    metrics = {"method": "triplet", "encoder": "mlp", "data": "digits", "modality": "vectors", "train_seconds": 3.0,
               "triplet_states": {"hard": 0.125, "semi_hard": 0.25, "easy": 0.625, "triplets": 600},
               "results": {"trained": {"linear_accuracy": 0.5, "knn_accuracy": 0.25, "knn_k": 20}}}
    assert format_table(metrics).splitlines()[-1] == ("triplet states of the 600 valid test triplets (triplet): hard "
                                                      "12.5 %, semi-hard 25.0 %, easy 62.5 %")
