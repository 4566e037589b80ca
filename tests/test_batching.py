"""The batch maker (contrastkit.batching): from sampled ids to the Batch a method's BatchSpec asks for.

Rules checked: for each modality, ``spec.views`` float32 views of each sample of the right shape on the maker's
device (images (B, C, H, W), vectors (B, D), sequences (B, C, crop or T)); labels only when the spec asks for
them (and then the samples' own); ``views == 0`` gives the inputs themselves as float (uint8 images as x / 255,
sequences cropped when the spec has a crop); the same generator state gives the same batch; a labelled spec on
unlabelled data is refused; ``model_input`` converts uint8 by x / 255 exactly (the float32 nearest to the
float64 quotient: division is correctly rounded) and leaves vectors and sequences as float32.
"""

from __future__ import annotations

import pytest
import torch

from contrastkit.augment.sequence import RandomCrop1d
from contrastkit.augment.tabular import ScarfAugment
from contrastkit.batching import AUGMENTS, BatchMaker, default_augment, make_augment, model_input
from contrastkit.data import ArrayDataset
from contrastkit.methods.base import Batch, BatchSpec

CPU = torch.device("cpu")


def _data(modality: str, labelled: bool = True, n: int = 24) -> ArrayDataset:
    g = torch.Generator().manual_seed(0)
    if modality == "images":
        x = torch.randint(0, 256, (n, 1, 12, 12), dtype=torch.uint8, generator=g)
    elif modality == "rgb":
        x = torch.randint(0, 256, (n, 3, 12, 12), dtype=torch.uint8, generator=g)
    elif modality == "vectors":
        x = torch.randn(n, 5, generator=g) * 3 + 1
    else:
        x = torch.randn(n, 2, 30, generator=g)
    labels = torch.arange(n) % 3 if labelled else torch.full((n,), -1)
    return ArrayDataset(x, labels)


def _maker(data: ArrayDataset, spec: BatchSpec, augment: str | None = None) -> BatchMaker:
    return BatchMaker(data, spec, make_augment(augment, data, spec), CPU)


VIEW_SHAPES = {"images": (1, 12, 12), "rgb": (3, 12, 12), "vectors": (5,), "sequences": (2, 30)}


@pytest.mark.parametrize("modality", ["images", "rgb", "vectors", "sequences"])
@pytest.mark.parametrize("views", [1, 2, 3])
def test_views_have_the_right_count_shape_dtype_and_device(modality, views) -> None:
    data = _data(modality)
    maker = _maker(data, BatchSpec(views=views))
    index = torch.tensor([3, 0, 7, 7, 11])
    batch = maker(index, torch.Generator().manual_seed(1))
    assert isinstance(batch, Batch) and len(batch.views) == views
    for view in batch.views:
        assert view.shape == (5, *VIEW_SHAPES[modality]) and view.dtype == torch.float32
        assert view.device == maker.device
        assert torch.isfinite(view).all()
    assert torch.equal(batch.indices, index) and batch.labels is None
    if views > 1:
        assert not torch.equal(batch.views[0], batch.views[1])  # independent draws per view
    if modality in ("images", "rgb"):
        assert all(((v >= 0) & (v <= 1)).all() for v in batch.views)


def test_sequence_views_are_cropped_to_the_specs_length() -> None:
    data = _data("sequences")
    spec = BatchSpec(views=2, crop=12)
    maker = _maker(data, spec)
    batch = maker(torch.arange(6), torch.Generator().manual_seed(0))
    assert all(v.shape == (6, 2, 12) for v in batch.views)


@pytest.mark.parametrize("modality", ["images", "vectors", "sequences"])
def test_labels_only_when_asked(modality) -> None:
    data = _data(modality)
    index = torch.tensor([5, 1, 2, 22])
    assert _maker(data, BatchSpec(labels=False))(index).labels is None
    labels = _maker(data, BatchSpec(labels=True))(index).labels
    assert labels.dtype == torch.int64 and labels.tolist() == [data.labels[i].item() for i in index]


@pytest.mark.parametrize("modality", ["images", "vectors", "sequences"])
def test_a_labelled_spec_on_unlabelled_data_is_refused(modality) -> None:
    data = _data(modality, labelled=False)
    with pytest.raises(ValueError, match="needs labelled data"):
        BatchMaker(data, BatchSpec(labels=True), None, CPU)
    # the same data with a spec that needs no labels: a batch of the inputs themselves, and no labels
    index = torch.tensor([2, 0, 5])
    batch = BatchMaker(data, BatchSpec(views=0, labels=False), None, CPU)(index, torch.Generator().manual_seed(0))
    stored = data.x[index]
    expected = (stored.double() / 255).float() if modality == "images" else stored.float()
    assert batch.labels is None and len(batch.views) == 1 and torch.equal(batch.views[0], expected)
    assert batch.indices.tolist() == [2, 0, 5]


def test_model_input_divides_uint8_by_255_exactly() -> None:
    x = torch.arange(256, dtype=torch.uint8).reshape(4, 1, 8, 8)
    out = model_input(x)
    assert out.dtype == torch.float32 and out.shape == x.shape
    reference = x.double() / 255  # float64 quotient
    assert torch.equal(out, reference.float())  # the nearest float32
    ulp = torch.finfo(torch.float32).eps
    assert ((out.double() - reference).abs() <= 0.5 * ulp * reference.abs()).all()
    assert out[0, 0, 0, 0].item() == 0.0 and out[-1, 0, -1, -1].item() == 1.0
    assert x.dtype == torch.uint8 and x.max().item() == 255  # the input is left alone


def test_model_input_leaves_vectors_and_sequences_as_float32() -> None:
    v = torch.randn(3, 4)
    assert model_input(v).dtype == torch.float32 and torch.equal(model_input(v), v)
    d = torch.randn(3, 2, 5, dtype=torch.float64)
    out = model_input(d)
    assert out.dtype == torch.float32 and torch.equal(out, d.float())


@pytest.mark.parametrize("modality", ["images", "vectors", "sequences"])
def test_zero_views_give_the_inputs_themselves(modality) -> None:
    data = _data(modality)
    spec = BatchSpec(views=0)
    index = torch.tensor([4, 2, 9])
    for maker in (_maker(data, spec), BatchMaker(data, spec, None, CPU)):  # no augmentation is needed
        batch = maker(index, torch.Generator().manual_seed(0))
        assert len(batch.views) == 1
        view = batch.views[0]
        assert view.dtype == torch.float32
        stored = data.x[index]
        expected = (stored.double() / 255).float() if modality == "images" else stored.float()
        assert torch.equal(view, expected)


def test_zero_views_of_sequences_with_a_crop_are_windows_of_the_inputs() -> None:
    data = _data("sequences")
    maker = BatchMaker(data, BatchSpec(views=0, crop=10), None, CPU)
    index = torch.arange(8)
    view = maker(index, torch.Generator().manual_seed(0)).views[0]
    assert view.shape == (8, 2, 10)
    for i in range(8):
        windows = [s for s in range(30 - 10 + 1) if torch.equal(view[i], data.x[i, :, s:s + 10])]
        assert windows, f"sample {i} is not a window of its input"


@pytest.mark.parametrize("modality", ["images", "vectors", "sequences"])
def test_the_generator_makes_batches_repeatable(modality) -> None:
    data = _data(modality)
    spec = BatchSpec(views=2, crop=16 if modality == "sequences" else None)
    maker = _maker(data, spec)
    index = torch.arange(10)
    a = maker(index, torch.Generator().manual_seed(42))
    b = _maker(data, spec)(index, torch.Generator().manual_seed(42))
    c = maker(index, torch.Generator().manual_seed(43))
    assert all(torch.equal(x, y) for x, y in zip(a.views, b.views, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a.views, c.views, strict=True))


def test_augmented_views_need_an_augmentation() -> None:
    maker = BatchMaker(_data("vectors"), BatchSpec(views=2), None, CPU)
    with pytest.raises(ValueError, match="no augmentation was given"):
        maker(torch.arange(3))


def test_make_augment_defaults_and_refusals() -> None:
    assert default_augment(_data("images")) == "mnist" and default_augment(_data("rgb")) == "cifar"
    assert default_augment(_data("vectors")) == "scarf" and default_augment(_data("sequences")) == "crop"
    scarf = make_augment(None, _data("vectors"), BatchSpec())
    assert isinstance(scarf, ScarfAugment) and torch.equal(scarf.rows, _data("vectors").x)
    crop = make_augment("crop", _data("sequences"), BatchSpec(crop=7))
    assert isinstance(crop, RandomCrop1d) and crop.length == 7
    for modality, name in (("vectors", "mnist"), ("images", "scarf"), ("sequences", "scarf")):
        with pytest.raises(ValueError, match=rf"augmentation '{name}' does not apply to {modality}"):
            make_augment(name, _data(modality), BatchSpec())
    assert set(AUGMENTS) == {"images", "vectors", "sequences"}


def test_len_is_the_number_of_training_samples() -> None:
    assert len(BatchMaker(_data("vectors", n=17), BatchSpec(views=0), None, CPU)) == 17
