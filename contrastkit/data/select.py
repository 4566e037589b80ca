"""Keep a subset of the classes of a loaded dataset: ``load_dataset("mnist5k", classes="4,9")``.

The classes are named as the data names them (``class_names``: the digits ``"0".."9"`` of mnist5k and
digits, an image folder's sub-folder names, an array file's original label ids). The selection is applied
*after* the train/test split, so the kept samples sit in the same split as in the whole set (the 4s and 9s of
mnist5k's canonical test split are its 4-vs-9 test split). The kept classes are renumbered ``0 .. C'-1`` in
the data's own class order (not the order written), and ``class_names`` keeps their names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor

from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.data.stream import ImageFiles

__all__ = ["parse_classes", "select_classes"]


def parse_classes(classes: str | Sequence[str], where: str = "classes") -> tuple[str, ...]:
    """Class names from ``"4,9"`` (comma-separated, spaces ignored) or a sequence of names; at least one, no
    repeats."""
    if isinstance(classes, str):
        names = tuple(part.strip() for part in classes.split(","))
    elif isinstance(classes, Sequence) and all(isinstance(c, str) for c in classes):
        names = tuple(c.strip() for c in classes)
    else:
        raise TypeError(f"{where}: `classes` must be a comma-separated string of class names or a sequence of "
                        f"str, got {classes!r}")
    if not names or any(not name for name in names):
        raise ValueError(f"{where}: `classes` must name at least one class, without empty names, got {classes!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{where}: `classes` names {repeated} more than once")
    return names


def _subset(part: ArrayDataset | ImageFiles, keep: Tensor, new_label: Tensor) -> ArrayDataset | ImageFiles:
    if isinstance(part, ImageFiles):
        return part.subset(keep).with_labels(new_label[part.labels[keep]])
    return dataclasses.replace(part.take(keep), labels=new_label[part.labels[keep]])  # every field kept alike


def select_classes(data: DatasetSplits, classes: str | Sequence[str], where: str = "load_dataset") -> DatasetSplits:
    """``data`` restricted to the named ``classes`` (see the module docstring)."""
    names = parse_classes(classes, where)
    if not data.has_labels:
        raise ValueError(f"{where}: `classes` selects by label, but {data.name!r} has no labels")
    known = list(data.class_names) or [str(k) for k in range(data.num_classes)]
    unknown = [name for name in names if name not in known]
    if unknown:
        shown = known if len(known) <= 30 else [*known[:30], "..."]
        raise ValueError(f"{where}: {data.name!r} has no class named {unknown}; its classes: {shown}")
    kept = sorted(known.index(name) for name in names)  # old class ids, in the data's order
    new_label = torch.full((data.num_classes,), -1, dtype=torch.int64)
    new_label[kept] = torch.arange(len(kept))
    parts, positions = [], []
    for part, indices in ((data.train, data.train_indices), (data.test, data.test_indices)):
        keep = torch.isin(part.labels, torch.tensor(kept))  # (N,) bool
        parts.append(_subset(part, keep, new_label))
        positions.append(None if indices is None else indices[keep.numpy()])
    return DatasetSplits(data.name, parts[0], parts[1], num_classes=len(kept),
                         class_names=tuple(known[k] for k in kept), frame_class_names=data.frame_class_names,
                         train_indices=positions[0], test_indices=positions[1], augment=data.augment)
