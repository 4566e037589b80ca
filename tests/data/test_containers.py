"""ArrayDataset / DatasetSplits hold uint8 (N, C, H, W) images with int64 labels and refuse anything else."""

from __future__ import annotations

import pytest
import torch

from contrastkit.data import ArrayDataset, DatasetSplits


def _dataset(n: int = 4, c: int = 1, labels: torch.Tensor | None = None) -> ArrayDataset:
    images = torch.zeros(n, c, 3, 2, dtype=torch.uint8)
    return ArrayDataset(images, torch.arange(n) % 2 if labels is None else labels)


def test_properties_and_item() -> None:
    data = _dataset(c=3)
    assert len(data) == 4 and data.channels == 3 and data.image_size == (3, 2) and data.has_labels
    image, label = data[3]
    assert image.shape == (3, 3, 2) and label == 1
    assert "n=4" in repr(data) and "labelled" in repr(data)
    assert not _dataset(labels=torch.full((4,), -1)).has_labels


def test_splits_metadata() -> None:
    splits = DatasetSplits("toy", _dataset(), _dataset(n=2), num_classes=2, class_names=("a", "b"))
    assert splits.has_labels and splits.channels == 1 and splits.image_size == (3, 2)
    assert "train=4" in repr(splits) and "test=2" in repr(splits)
    unlabelled = _dataset(labels=torch.full((4,), -1))
    assert not DatasetSplits("u", unlabelled, unlabelled, num_classes=0).has_labels


@pytest.mark.parametrize(("images", "labels", "match"), [
    (torch.zeros(4, 1, 3, 2), torch.zeros(4, dtype=torch.int64), "uint8"),
    (torch.zeros(4, 3, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64), "uint8"),
    (torch.zeros(4, 2, 3, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64), "1 or 3 channels"),
    (torch.zeros(4, 1, 3, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.int32), "int64"),
    (torch.zeros(4, 1, 3, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64), r"shape \(4,\)"),
    (torch.zeros(4, 1, 3, 2, dtype=torch.uint8), torch.tensor([0, -1, 1, 1]), "all -1"),
    (torch.zeros(4, 1, 3, 2, dtype=torch.uint8), torch.tensor([0, -2, 1, 1]), "all -1"),
])
def test_array_dataset_refuses_bad_input(images, labels, match) -> None:
    with pytest.raises(ValueError, match=match):
        ArrayDataset(images, labels)


def test_array_dataset_refuses_non_tensors() -> None:
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        ArrayDataset([[0]], torch.zeros(1, dtype=torch.int64))


def test_splits_refuse_mismatched_shapes_and_negative_classes() -> None:
    with pytest.raises(ValueError, match="differ"):
        DatasetSplits("x", _dataset(c=1), _dataset(c=3), num_classes=2)
    with pytest.raises(ValueError, match="num_classes"):
        DatasetSplits("x", _dataset(), _dataset(), num_classes=-1)
