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


# ---------------------------------------------------------------------------------------------------------
# vectors and sequences (the generalised container)
# ---------------------------------------------------------------------------------------------------------

def test_vectors_container() -> None:
    x = torch.randn(5, 7)
    data = ArrayDataset(x, torch.arange(5) % 3)
    assert data.modality == "vectors" and len(data) == 5 and data.has_labels
    assert data.x is x  # held as given, no copy
    row, label = data[4]
    assert torch.equal(row, x[4]) and label == 1
    assert "vectors (7,)" in repr(data)
    for attribute, match in (("images", r"ArrayDataset\.images: this dataset holds vectors, not images"),
                             ("image_size", r"ArrayDataset\.image_size: this dataset holds vectors"),
                             ("channels", "vectors have no channels")):
        with pytest.raises(ValueError, match=match):
            getattr(data, attribute)


def test_sequences_container() -> None:
    x = torch.randn(6, 2, 11, dtype=torch.float64)
    data = ArrayDataset(x, torch.full((6,), -1))
    assert data.modality == "sequences" and data.channels == 2 and not data.has_labels
    assert "sequences (2, 11)" in repr(data) and "unlabelled" in repr(data)
    with pytest.raises(ValueError, match="holds sequences, not images"):
        _ = data.images
    with pytest.raises(ValueError, match="holds sequences, not images"):
        _ = data.image_size


def test_images_property_returns_the_image_tensor() -> None:
    data = _dataset(c=3)
    assert data.modality == "images" and data.images is data.x


@pytest.mark.parametrize(("x", "why"), [
    (torch.zeros(4, 5, dtype=torch.int64), "integer vectors: the container holds float vectors"),
    (torch.zeros(4, 2, 5, dtype=torch.uint8), "uint8 3-D is neither images nor float sequences"),
    (torch.zeros(4), "1-D"),
    (torch.zeros(4, 1, 2, 3, 4), "5-D"),
    (torch.zeros(4, 1, 3, 3), "float 4-D: images are stored as uint8"),
])
def test_container_refuses_tensors_of_no_modality(x, why) -> None:
    with pytest.raises(ValueError, match=r"uint8 images .* float vectors .* float sequences"):
        ArrayDataset(x, torch.zeros(4, dtype=torch.int64))


def test_splits_of_vectors_and_sequences() -> None:
    vectors = DatasetSplits("table", ArrayDataset(torch.randn(8, 3), torch.arange(8) % 2),
                            ArrayDataset(torch.randn(4, 3), torch.arange(4) % 2), num_classes=2)
    assert vectors.modality == "vectors" and vectors.input_shape == (3,)
    assert "vectors (3,)" in repr(vectors)
    with pytest.raises(ValueError, match="holds vectors, not images"):
        _ = vectors.image_size
    sequences = DatasetSplits("waves", ArrayDataset(torch.randn(8, 2, 16), torch.full((8,), -1)),
                              ArrayDataset(torch.randn(3, 2, 16), torch.full((3,), -1)), num_classes=0)
    assert sequences.modality == "sequences" and sequences.input_shape == (2, 16) and sequences.channels == 2
    assert not sequences.has_labels
    images = DatasetSplits("img", _dataset(c=3), _dataset(n=2, c=3), num_classes=2)
    assert images.modality == "images" and images.input_shape == (3, 3, 2)
    assert all(type(s) is int for s in images.input_shape)


@pytest.mark.parametrize(("train", "test"), [
    (torch.randn(4, 6), torch.randn(4, 1, 6)),  # vectors vs sequences
    (torch.randn(4, 1, 6), torch.randn(4, 6)),  # sequences vs vectors
    (torch.randn(4, 6), torch.zeros(4, 1, 2, 3, dtype=torch.uint8)),  # vectors vs images
    (torch.randn(4, 6), torch.randn(4, 5)),  # vectors of another width
])
def test_splits_refuse_train_and_test_of_different_modality_or_shape(train, test) -> None:
    labels = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"train and test inputs differ|train holds"):
        DatasetSplits("mixed", ArrayDataset(train, labels), ArrayDataset(test, labels), num_classes=1)


def test_splits_accept_an_empty_test_set() -> None:
    train = ArrayDataset(torch.randn(4, 6), torch.zeros(4, dtype=torch.int64))
    empty = ArrayDataset(torch.zeros(0, 6), torch.zeros(0, dtype=torch.int64))
    splits = DatasetSplits("t", train, empty, num_classes=1)
    assert splits.modality == "vectors" and len(splits.test) == 0 and not splits.test.has_labels
