"""``fashion-mnist``: the Debian package's files (skipped where it is absent), $CONTRASTKIT_DATA, the absent case."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
import yaml

import contrastkit.data.builtin as builtin
from contrastkit.data import load_dataset
from contrastkit.data.builtin import (
    DATA_ENV,
    FASHION_MNIST_CLASSES,
    DataNotInstalledError,
    DatasetNotFoundError,
    fashion_mnist_folder,
)
from tests.data.idx_files import tiny_set, write_idx_folder

_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _absent_reason() -> str | None:
    try:
        fashion_mnist_folder()
    except DataNotInstalledError as exc:
        return f"Fashion-MNIST is not installed here ({exc})"
    return None


needs_package = pytest.mark.skipif(_absent_reason() is not None, reason=_absent_reason() or "")


@pytest.fixture(scope="module")
def fashion():
    return load_dataset("fashion-mnist")


@needs_package
def test_the_official_split_shapes_and_classes(fashion) -> None:
    assert fashion.name == "fashion-mnist" and fashion.num_classes == 10 and fashion.class_names == _NAMES
    assert fashion.train.images.shape == (60000, 1, 28, 28) and fashion.test.images.shape == (10000, 1, 28, 28)
    assert fashion.train.images.dtype == torch.uint8 and fashion.train.labels.dtype == torch.int64
    assert torch.bincount(fashion.train.labels).tolist() == [6000] * 10
    assert torch.bincount(fashion.test.labels).tolist() == [1000] * 10
    assert fashion.train_indices is None and fashion.test_indices is None


@needs_package
def test_the_rows_are_the_files_rows(fashion) -> None:
    # decoded here without the reader: 16 header bytes, then 784 bytes per image; 8 header bytes, then the labels
    folder = fashion_mnist_folder()
    images = gzip.decompress((folder / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((folder / "train-labels-idx1-ubyte.gz").read_bytes())
    last = np.frombuffer(images[16 + 9999 * 784:], dtype=np.uint8).reshape(28, 28)
    assert np.array_equal(fashion.test.images[9999, 0].numpy(), last)
    assert fashion.train.labels[:100].tolist() == list(labels[8:108])


def _tiny_fashion(folder, **kwargs):
    return write_idx_folder(folder / "fashion-mnist", *tiny_set(classes=10, train_per_class=3, test_per_class=1),
                            **kwargs)


def test_contrastkit_data_is_looked_in_first(tmp_path, monkeypatch) -> None:
    _tiny_fashion(tmp_path)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert fashion_mnist_folder() == tmp_path / "fashion-mnist"
    data = load_dataset("fashion-mnist")
    assert data.train.images.shape == (30, 1, 8, 8) and data.test.images.shape == (10, 1, 8, 8)
    assert data.class_names == _NAMES == FASHION_MNIST_CLASSES
    kept = load_dataset("fashion-mnist", classes="Trouser,Ankle boot")
    assert kept.class_names == ("Trouser", "Ankle boot") and kept.test.labels.tolist() == [0, 1]
    # the variable set but holding no fashion-mnist folder: the package's folder
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "elsewhere"))
    monkeypatch.setattr(builtin, "FASHION_MNIST_DIR", tmp_path / "fashion-mnist")
    assert fashion_mnist_folder() == tmp_path / "fashion-mnist"


def test_labels_other_than_its_ten_classes_are_refused(tmp_path, monkeypatch) -> None:
    write_idx_folder(tmp_path / "fashion-mnist", *tiny_set(classes=8))
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(ValueError, match=f"the labels in '{tmp_path / 'fashion-mnist'}' are 0, 1, 2, 3, 4, 5, 6, 7; "
                                         f"Fashion-MNIST's are the 10 classes 0 .. 9"):
        load_dataset("fashion-mnist")


def test_absent_it_says_how_to_get_it(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setattr(builtin, "FASHION_MNIST_DIR", tmp_path / "not-installed")
    with pytest.raises(DataNotInstalledError) as info:
        load_dataset("fashion-mnist")
    assert isinstance(info.value, DatasetNotFoundError) and isinstance(info.value, ValueError)
    assert str(info.value) == (
        "load_dataset: Fashion-MNIST is not installed: get it with `apt-get install dataset-fashion-mnist` (Debian / "
        "Ubuntu), or copy its four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,"
        " t10k-labels-idx1-ubyte, gzipped .gz or not) into $CONTRASTKIT_DATA/fashion-mnist; looked in "
        f"$CONTRASTKIT_DATA/fashion-mnist ($CONTRASTKIT_DATA is not set) and {tmp_path / 'not-installed'}")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "mine"))
    from contrastkit.cli import main

    code = main(["train", "--data", "fashion-mnist", "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "apt-get install dataset-fashion-mnist" in err
    assert f"looked in $CONTRASTKIT_DATA/fashion-mnist ({tmp_path / 'mine' / 'fashion-mnist'}) and " in err


def test_the_name_is_listed_and_stored_and_found_again_by_eval(tmp_path, monkeypatch, capsys) -> None:
    from contrastkit.cli import _data_help, main

    assert "fashion-mnist" in _data_help() and "a folder of IDX files" in _data_help()
    with pytest.raises(DatasetNotFoundError, match="; from a system package: fashion-mnist"):
        load_dataset(str(tmp_path / "no_such_data"))
    _tiny_fashion(tmp_path)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    code = main(["train", "--data", "fashion-mnist", "--epochs", "1", "--batch-size", "8", "--out", str(out),
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert yaml.safe_load((out / "config.yaml").read_text())["data"] == "fashion-mnist"  # the name, not a path
    capsys.readouterr()
    code = main(["eval", str(out), "--no-plots", "--no-baselines"])
    captured = capsys.readouterr()
    assert code == 0 and "warning" not in captured.err, captured.err
