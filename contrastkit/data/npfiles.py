"""Read images (and labels) from ``.npy`` / ``.npz`` files.

* ``.npy`` — one image array, unlabelled.
* ``.npz`` — either one set, images under ``x`` or ``images`` and optional labels under ``y``
  or ``labels``; or a ready split, ``x_train`` and ``x_test`` with optional ``y_train`` and
  ``y_test`` (give both label arrays or neither). Other keys are ignored.

Image layouts and value ranges are those of :mod:`contrastkit.data.arrays`. Files are loaded with
``allow_pickle=False``: object arrays are refused rather than unpickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from contrastkit.data.arrays import to_uint8_nchw
from contrastkit.data.assemble import labels_to_int64

IMAGE_KEYS = ("x", "images")
LABEL_KEYS = ("y", "labels")
SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")


class ArraySource(NamedTuple):
    """uint8 (N, C, H, W) images and int64 (N,) labels (-1 = none); ``test_*`` set when pre-split."""

    images: np.ndarray
    labels: np.ndarray
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None


def _read_arrays(path: Path, where: str) -> dict[str, np.ndarray]:
    """Every array in the file, read eagerly so that a damaged file fails here, naming itself."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not hasattr(loaded, "files"):  # a .npy file gives a plain array
            return {"": np.asarray(loaded)}
        with loaded:
            return {key: np.asarray(loaded[key]) for key in loaded.files}
    except Exception as err:  # numpy raises ValueError, OSError, EOFError or zipfile.BadZipFile here
        raise ValueError(f"{where}: cannot read array file '{path}': {type(err).__name__}: {err}") from err


def _one_of(arrays: dict[str, np.ndarray], keys: tuple[str, ...], path: Path, where: str) -> str | None:
    present = [k for k in keys if k in arrays]
    if len(present) > 1:
        raise ValueError(f"{where}: '{path}' holds both {present[0]!r} and {present[1]!r}; keep one")
    return present[0] if present else None


def load_npy(path: Path, where: str = "load_dataset") -> ArraySource:
    arrays = _read_arrays(path, where)
    if "" not in arrays:
        raise ValueError(f"{where}: '{path}' is an .npz archive, not a single .npy array; rename it to .npz")
    images = to_uint8_nchw(arrays[""], f"the array in '{path}'", where)
    return ArraySource(images, labels_to_int64(None, len(images), "", where))


def load_npz(path: Path, where: str = "load_dataset") -> ArraySource:
    arrays = _read_arrays(path, where)
    if "" in arrays:
        raise ValueError(f"{where}: '{path}' is a single .npy array, not an .npz archive; rename it to .npy")
    has_split = "x_train" in arrays or "x_test" in arrays
    image_key = _one_of(arrays, IMAGE_KEYS, path, where)
    if has_split and image_key is not None:
        raise ValueError(f"{where}: '{path}' holds both {image_key!r} and train/test keys; keep one layout")
    if has_split:
        missing = [k for k in ("x_train", "x_test") if k not in arrays]
        if missing:
            raise ValueError(f"{where}: '{path}' has no {missing[0]!r} key; a split file needs both "
                             f"'x_train' and 'x_test'")
        if ("y_train" in arrays) != ("y_test" in arrays):
            raise ValueError(f"{where}: '{path}' has only one of 'y_train' / 'y_test'; give both or neither")
        parts = []
        for split in ("train", "test"):
            images = to_uint8_nchw(arrays[f"x_{split}"], f"'x_{split}' in '{path}'", where)
            labels = labels_to_int64(arrays.get(f"y_{split}"), len(images), f"'y_{split}' in '{path}'", where)
            parts.extend([images, labels])
        return ArraySource(*parts)
    if image_key is None:
        raise ValueError(f"{where}: '{path}' has no image array; expected a key among "
                         f"{', '.join(IMAGE_KEYS + SPLIT_KEYS)}, found {', '.join(sorted(arrays)) or 'none'}")
    images = to_uint8_nchw(arrays[image_key], f"{image_key!r} in '{path}'", where)
    label_key = _one_of(arrays, LABEL_KEYS, path, where)
    labels = labels_to_int64(None if label_key is None else arrays[label_key], len(images),
                             f"{label_key!r} in '{path}'", where)
    return ArraySource(images, labels)
