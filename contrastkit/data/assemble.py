"""Turn loaded arrays into a :class:`DatasetSplits`: check labels, split (or keep a given split)."""

from __future__ import annotations

import numpy as np
import torch

from contrastkit.data.containers import UNLABELLED, ArrayDataset, DatasetSplits
from contrastkit.data.split import stratified_split


def labels_to_int64(labels: np.ndarray | None, n: int, what: str, where: str) -> np.ndarray:
    """Check a label vector for ``n`` images; ``None`` -> all ``-1`` (unlabelled).

    Labels must be integers (integer-valued floats are accepted), either all >= 0 or all -1.
    """
    if labels is None:
        return np.full(n, UNLABELLED, dtype=np.int64)
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{where}: {what} must have shape ({n},) to match the images, got {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or not (labels == np.round(labels)).all():
            raise ValueError(f"{where}: {what} must be whole numbers (class ids), got non-integer values")
    elif labels.dtype.kind not in "iu":
        raise TypeError(f"{where}: {what} must be integer class ids, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if n and not ((labels >= 0).all() or (labels == UNLABELLED).all()):
        raise ValueError(f"{where}: {what} must be all >= 0, or all {UNLABELLED} for unlabelled data; got "
                         f"values in [{labels.min()}, {labels.max()}]")
    return labels


def num_classes_of(*label_arrays: np.ndarray) -> int:
    """``max label + 1`` over all arrays (labels are kept as given, not renumbered); 0 if unlabelled."""
    tops = [int(a.max()) for a in label_arrays if a.size]
    return max(tops) + 1 if tops and max(tops) >= 0 else 0


def array_dataset(images: np.ndarray, labels: np.ndarray) -> ArrayDataset:
    return ArrayDataset(torch.from_numpy(np.ascontiguousarray(images)),
                        torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)))


def default_class_names(num_classes: int) -> tuple[str, ...]:
    return tuple(str(k) for k in range(num_classes))


def split_arrays(name: str, images: np.ndarray, labels: np.ndarray, *, test_fraction: float, seed: int,
                 class_names: tuple[str, ...] = (), where: str = "load_dataset") -> DatasetSplits:
    """Stratified seeded split of uint8 (N, C, H, W) ``images`` and int64 (N,) ``labels``."""
    train_idx, test_idx = stratified_split(labels, test_fraction, seed, where=where)
    num_classes = num_classes_of(labels)
    return DatasetSplits(
        name=name,
        train=array_dataset(images[train_idx], labels[train_idx]),
        test=array_dataset(images[test_idx], labels[test_idx]),
        num_classes=num_classes,
        class_names=class_names or default_class_names(num_classes),
        train_indices=train_idx,
        test_indices=test_idx,
    )


def presplit_arrays(name: str, train_images: np.ndarray, train_labels: np.ndarray,
                    test_images: np.ndarray, test_labels: np.ndarray, where: str = "load_dataset"
                    ) -> DatasetSplits:
    """Keep a split the source already made; both parts must agree in (C, H, W) and in having labels."""
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(f"{where}: train and test images differ in (C, H, W): "
                         f"{train_images.shape[1:]} vs {test_images.shape[1:]}")
    train_has = bool(train_labels.size) and int(train_labels[0]) != UNLABELLED
    test_has = bool(test_labels.size) and int(test_labels[0]) != UNLABELLED
    if train_has != test_has:
        raise ValueError(f"{where}: labels are given for the {'train' if train_has else 'test'} images "
                         f"only; give them for both splits or for neither")
    num_classes = num_classes_of(train_labels, test_labels)
    return DatasetSplits(
        name=name,
        train=array_dataset(train_images, train_labels),
        test=array_dataset(test_images, test_labels),
        num_classes=num_classes,
        class_names=default_class_names(num_classes),
    )
