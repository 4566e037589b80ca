"""Named fields in a batch (issue 15, item 5): BatchSpec.fields, their validation, and their delivery on the device.

Hand-built data whose fields are functions of the sample id (``x[i] = i``, ``b[i] = 10 i``, caption i = "row i"), so
every delivered row can be checked against the batch's own indices."""

from __future__ import annotations

import pytest
import torch

from contrastkit.batching import BatchMaker, KeepText, make_augment, model_input
from contrastkit.data import ArrayDataset, decode_texts, encode_texts
from contrastkit.methods.base import Batch, BatchSpec

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
N = 12


def _data() -> ArrayDataset:
    ids = torch.arange(N, dtype=torch.float32)
    images = (torch.arange(N, dtype=torch.uint8) * 20).view(N, 1, 1, 1).expand(N, 1, 8, 8).contiguous()
    return ArrayDataset(ids[:, None].repeat(1, 3), torch.arange(N) % 2, extra_fields={
        "b": 10 * ids[:, None].repeat(1, 4),  # (N, 4) vectors
        "caption": encode_texts([f"row {i}" for i in range(N)]),  # (N, 6) uint8 text
        "tokens": torch.arange(N, dtype=torch.int32)[:, None].repeat(1, 2),  # (N, 2) int32 token ids
        "image": images,  # (N, 1, 8, 8) uint8
        "audio": ids[:, None, None].repeat(1, 1, 16),  # (N, 1, 16) sequences
    })


def _maker(spec: BatchSpec, device: str = "cpu", data: ArrayDataset | None = None) -> BatchMaker:
    data = data or _data()
    augment = make_augment(None, data, spec) if spec.views else None
    return BatchMaker(data, spec, augment, torch.device(device))


@pytest.mark.parametrize("device", DEVICES)
def test_each_field_arrives_on_the_device_row_for_row_with_the_indices(device) -> None:
    spec = BatchSpec(views=0, labels=True, fields={"b": 0, "caption": 0, "tokens": 1, "image": 0, "audio": 0})
    index = torch.tensor([5, 0, 11, 5])
    batch = _maker(spec, device)(index, torch.Generator(device).manual_seed(0))
    assert set(batch.fields) == {"b", "caption", "tokens", "image", "audio"}
    for views in batch.fields.values():
        assert len(views) == 1 and views[0].device.type == device
    rows = index.tolist()
    assert batch.views[0][:, 0].tolist() == [float(i) for i in rows]  # the default field, x
    assert batch.field("b")[:, 0].tolist() == [10.0 * i for i in rows]
    assert decode_texts(batch.field("caption")) == [f"row {i}" for i in rows]  # text stays uint8 bytes
    assert batch.field("tokens").dtype == torch.int32 and batch.field("tokens")[:, 0].tolist() == rows
    assert batch.field("image").dtype == torch.float32  # 0 views: the images themselves, as float in [0, 1]
    assert torch.equal(batch.field("image")[:, 0, 0, 0].cpu(), torch.tensor([20.0 * i for i in rows]) / 255)
    assert batch.field("audio")[:, 0, 0].tolist() == [float(i) for i in rows]
    assert batch.labels.tolist() == [i % 2 for i in rows]


def test_augmented_views_of_a_named_field_use_its_modality_preset() -> None:
    batch = _maker(BatchSpec(views=1, fields={"image": 2, "b": 1}))(torch.tensor([1, 2, 3]),
                                                                       torch.Generator().manual_seed(0))
    assert len(batch.fields["image"]) == 2 and batch.fields["image"][0].shape == (3, 1, 8, 8)
    assert not torch.equal(batch.fields["image"][0], batch.fields["image"][1])  # independent draws
    assert batch.fields["b"][0].shape == (3, 4)


def test_named_fields_leave_the_default_fields_views_as_they_were() -> None:
    """The default field's views are drawn first: asking for more fields changes nothing of them."""
    index = torch.tensor([4, 2, 9])
    alone = _maker(BatchSpec(views=2))(index, torch.Generator().manual_seed(3))
    more = _maker(BatchSpec(views=2, fields={"image": 1, "caption": 0}))(index, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(alone.views, more.views, strict=True))
    assert alone.fields == {}


def test_a_text_field_takes_zero_or_one_views() -> None:
    batch = _maker(BatchSpec(views=0, fields={"caption": 1}))(torch.tensor([3]), torch.Generator().manual_seed(0))
    assert decode_texts(batch.field("caption")) == ["row 3"]
    with pytest.raises(ValueError, match=r"field 'caption' holds text, which is never augmented: a method may ask "
                                         r"for 0 or 1 views of it .* not 2"):
        _maker(BatchSpec(views=0, fields={"caption": 2}))
    text_first = ArrayDataset.from_fields({"caption": encode_texts(["a", "b"]), "x": torch.zeros(2, 3)})
    assert isinstance(make_augment(None, text_first, BatchSpec(views=1)), KeepText)
    with pytest.raises(ValueError, match="field 'caption' holds text"):
        make_augment(None, text_first, BatchSpec(views=2))
    with pytest.raises(ValueError, match="'cifar' does not apply to text"):
        make_augment("cifar", text_first, BatchSpec(views=1))


def test_a_field_the_data_lacks_is_named() -> None:
    with pytest.raises(ValueError, match=r"needs the field\(s\) 'transcript'; the training data has 'x', 'b', "):
        _maker(BatchSpec(views=0, fields={"transcript": 0}))


def test_batch_field_errors_say_what_to_do() -> None:
    batch = Batch([torch.zeros(1)], torch.zeros(1), fields={"a": [torch.zeros(1), torch.ones(1)]})
    with pytest.raises(KeyError, match="no field 'b'; its fields: a"):
        batch.field("b")
    with pytest.raises(ValueError, match=r"field 'a' has 2 views in this batch; take batch.fields\['a'\]\[i\]"):
        batch.field("a")


@pytest.mark.parametrize(("fields", "match"), [
    ({"x": 0}, "other than 'x'"),
    ({"labels": 0}, "other than 'x'"),
    ({"a b": 0}, "identifiers"),
    ({"a": -1}, r"`fields`\['a'\] must be a view count >= 0"),
    ({"a": True}, "view count"),
    (["a"], "must be a mapping"),
])
def test_batch_spec_field_validation(fields, match) -> None:
    with pytest.raises(ValueError, match=match):
        BatchSpec(fields=fields)


def test_batch_spec_default_and_hash() -> None:
    assert BatchSpec().fields == {} and BatchSpec(fields={"a": 1}) == BatchSpec(fields={"a": 1})
    assert hash(BatchSpec(fields={"a": 1})) == hash(BatchSpec(fields={"a": 1})) != hash(BatchSpec())


def test_model_input_keeps_text_as_integers() -> None:
    text = encode_texts(["ab"])
    assert model_input(text) is text
    tokens = torch.zeros(2, 3, dtype=torch.int32)
    assert model_input(tokens) is tokens
