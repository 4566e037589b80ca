"""Turn loaded arrays into a :class:`DatasetSplits`: check labels, renumber them, split (or keep a given split).

Label rules for arrays read from ``.npy`` / ``.npz`` files (:mod:`contrastkit.data.npfiles`):

* labels are integer class ids (integer-valued floats are accepted); strings, booleans, complex
  numbers and other types are refused with a ValueError naming the file and key;
* either every label is ``-1`` (unlabelled data) or every label is ``>= 0``; any other negative
  value is an error;
* the ids need not be contiguous: :func:`contiguous_labels` renumbers them to ``0 .. C-1`` in
  ascending order of the original id, over the union of the train and test labels, and keeps
  the original ids (as strings) as the class names, so that reports show the user's own ids.
  Labels ``{3, 10**9}`` give two classes named ``"3"`` and ``"1000000000"``; memory never depends
  on how large an id is.

Built-in sets and image folders already number their classes ``0 .. C-1`` and keep their labels.
"""

from __future__ import annotations

import numpy as np
import torch

from contrastkit.data.arrays import describe_dtype
from contrastkit.data.containers import UNLABELLED, ArrayDataset, DatasetSplits
from contrastkit.data.split import stratified_split
from contrastkit.data.stream import ImageFiles

# Labels are stored as int64; integer-valued floats beyond 2**53 are no longer exact integers.
_MAX_FLOAT_LABEL = 2.0**53


def labels_to_int64(labels: np.ndarray | None, n: int, what: str, where: str) -> np.ndarray:
    """Check a label vector for ``n`` images; ``None`` -> all ``-1`` (unlabelled).

    Labels must be integers (integer-valued floats with magnitude <= 2**53 are accepted), either
    all >= 0 or all -1. Every failure is a one-line ValueError naming ``what`` (the file and key).
    """
    if labels is None:
        return np.full(n, UNLABELLED, dtype=np.int64)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{where}: {what} must have shape ({n},) to match the images, got {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or not (labels == np.round(labels)).all():
            raise ValueError(f"{where}: {what} must be whole numbers (class ids), got non-integer values")
        if labels.size and float(np.abs(labels).max()) > _MAX_FLOAT_LABEL:
            raise ValueError(f"{where}: {what} holds float class ids up to {float(np.abs(labels).max()):g}; "
                             f"float ids must lie within +-2**53 (store integer labels instead)")
    elif labels.dtype.kind == "u":
        if labels.size and int(labels.max()) > np.iinfo(np.int64).max:
            raise ValueError(f"{where}: {what} holds class ids up to {int(labels.max())}, beyond int64")
    elif labels.dtype.kind != "i":
        raise ValueError(f"{where}: {what} must be integer class ids, got {describe_dtype(labels.dtype)}")
    labels = labels.astype(np.int64)
    if n and not ((labels >= 0).all() or (labels == UNLABELLED).all()):
        negative = ", ".join(str(v) for v in np.unique(labels[labels < 0])[:5])
        raise ValueError(f"{where}: {what} holds negative class ids ({negative}); labels must be all >= 0, or all "
                         f"{UNLABELLED} for unlabelled data ({UNLABELLED} means 'no label': it is never a class, and "
                         f"a partly labelled set is refused); number the classes from 0 (-1 / +1 labels: (y + 1) // 2)")
    return labels


def contiguous_labels(*label_arrays: np.ndarray) -> tuple[tuple[np.ndarray, ...], tuple[str, ...]]:
    """Renumber checked int64 labels to ``0 .. C-1`` over the union of all arrays; class names = old ids.

    Ids are taken in ascending order, so the renumbering keeps their order (and a stratified split
    of the renumbered labels equals that of the original ones). Unlabelled arrays (all ``-1``) are
    returned unchanged, with no class names.
    """
    labelled = [a[a != UNLABELLED] for a in label_arrays]
    ids = np.unique(np.concatenate(labelled)) if labelled else np.zeros(0, dtype=np.int64)
    if ids.size == 0:
        return tuple(label_arrays), ()
    renumbered = tuple(np.where(a == UNLABELLED, a, np.searchsorted(ids, a)).astype(np.int64)
                       for a in label_arrays)
    return renumbered, tuple(str(int(i)) for i in ids)


def num_classes_of(*label_arrays: np.ndarray) -> int:
    """``max label + 1`` over all arrays, 0 if unlabelled.

    Labels must already be contiguous ``0 .. C-1`` (built-in sets, image folders, and file labels
    after :func:`contiguous_labels`).
    """
    tops = [int(a.max()) for a in label_arrays if a.size]
    return max(tops) + 1 if tops and max(tops) >= 0 else 0


Fields = dict[str, np.ndarray]  # field name -> (N, ...) canonical array, the default field first


def _as_fields(inputs: np.ndarray | Fields) -> Fields:
    return inputs if isinstance(inputs, dict) else {"x": inputs}


def array_dataset(inputs: np.ndarray | Fields, labels: np.ndarray) -> ArrayDataset:
    """An :class:`ArrayDataset` of one input array (the field ``x``) or of named fields (the first is the default)."""
    tensors = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in _as_fields(inputs).items()}
    return ArrayDataset.from_fields(tensors, torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)))


def default_class_names(num_classes: int) -> tuple[str, ...]:
    return tuple(str(k) for k in range(num_classes))


def _names_for(num_classes: int, class_names: tuple[str, ...], where: str) -> tuple[str, ...]:
    if not class_names:
        return default_class_names(num_classes)
    if len(class_names) != num_classes:
        raise ValueError(f"{where}: {len(class_names)} class names for labels 0..{num_classes - 1}")
    return tuple(class_names)


def split_arrays(name: str, images: np.ndarray | Fields, labels: np.ndarray, *, test_fraction: float, seed: int,
                 class_names: tuple[str, ...] = (), where: str = "load_dataset") -> DatasetSplits:
    """Stratified seeded split of uint8 (N, C, H, W) ``images`` (or of named fields, every one alike) and int64
    (N,) ``labels`` (0..C-1 or -1)."""
    train_idx, test_idx = stratified_split(labels, test_fraction, seed, where=where)
    num_classes = num_classes_of(labels)
    fields = _as_fields(images)
    return DatasetSplits(
        name=name,
        train=array_dataset({k: a[train_idx] for k, a in fields.items()}, labels[train_idx]),
        test=array_dataset({k: a[test_idx] for k, a in fields.items()}, labels[test_idx]),
        num_classes=num_classes,
        class_names=_names_for(num_classes, class_names, where),
        train_indices=train_idx,
        test_indices=test_idx,
    )


def split_files(name: str, files: ImageFiles, *, test_fraction: float, seed: int,
                class_names: tuple[str, ...] = (), where: str = "load_dataset") -> DatasetSplits:
    """The same stratified seeded split as :func:`split_arrays`, of image files that stay on disk."""
    labels = files.labels.numpy()
    train_idx, test_idx = stratified_split(labels, test_fraction, seed, where=where)
    num_classes = num_classes_of(labels)
    return DatasetSplits(name=name, train=files.subset(train_idx), test=files.subset(test_idx),
                         num_classes=num_classes, class_names=_names_for(num_classes, class_names, where),
                         train_indices=train_idx, test_indices=test_idx)


def presplit_arrays(name: str, train_images: np.ndarray | Fields, train_labels: np.ndarray,
                    test_images: np.ndarray | Fields, test_labels: np.ndarray, where: str = "load_dataset",
                    class_names: tuple[str, ...] = ()) -> DatasetSplits:
    """Keep a split the source already made (one input array, or named fields); both parts must agree in the
    shape of each field ((C, H, W) for images) and in having labels."""
    for field_name, train_array in _as_fields(train_images).items():
        test_array = _as_fields(test_images)[field_name]
        if train_array.shape[1:] != test_array.shape[1:]:
            what = "images differ in (C, H, W)" if field_name == "x" else f"field {field_name!r} differs in shape"
            raise ValueError(f"{where}: train and test {what}: "
                             f"{train_array.shape[1:]} vs {test_array.shape[1:]}")
    train_has = bool(train_labels.size) and int(train_labels[0]) != UNLABELLED
    test_has = bool(test_labels.size) and int(test_labels[0]) != UNLABELLED
    if train_has != test_has:
        raise ValueError(f"{where}: '{name}' gives labels for the {'train' if train_has else 'test'} images "
                         f"only (the other split's are all {UNLABELLED}); give them for both splits or for neither")
    num_classes = num_classes_of(train_labels, test_labels)
    return DatasetSplits(
        name=name,
        train=array_dataset(train_images, train_labels),
        test=array_dataset(test_images, test_labels),
        num_classes=num_classes,
        class_names=_names_for(num_classes, class_names, where),
    )
