"""Samples with named fields (issue 15, item 5): loading each modality from an .npz, the layouts, the errors, the
containers, class selection and the fingerprint of every field."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from contrastkit.data import ArrayDataset, DatasetSplits, load_dataset
from contrastkit.data.fields import parse_fields
from contrastkit.data.fingerprint import data_fingerprint, describe_change
from contrastkit.data.text import decode_texts, encode_texts, text_lengths

CAPTIONS = ["a cat", "a dog", "zwei Hunde", "café", "one", "two words", "ü", "seven", "eight!", "nine"]


def _images(n: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 1, 4, 4), dtype=np.uint8)  # (N, C, H, W)


def _all_rows(splits: DatasetSplits, name: str) -> np.ndarray:
    """The field ``name`` of train and test put back into the file's order."""
    order = np.argsort(np.concatenate([splits.train_indices, splits.test_indices]))
    train, test = splits.train.field(name).numpy(), splits.test.field(name).numpy()
    width = max(train.shape[1], test.shape[1]) if train.ndim == 2 and train.dtype == np.uint8 else None
    if width is not None:  # text: the same padded width in both splits (checked by the caller)
        assert train.shape[1] == test.shape[1]
    return np.concatenate([train, test])[order]


# --- loading: each modality, both layouts ---------------------------------------------------------------------

def test_images_and_string_captions_load_as_two_aligned_fields(tmp_path) -> None:
    images, labels = _images(), np.arange(10) % 2
    np.savez(tmp_path / "pairs.npz", x=images, caption=np.array(CAPTIONS), y=labels)
    splits = load_dataset(tmp_path / "pairs.npz", fields="x,caption", test_fraction=0.2)
    assert splits.field_names == ("x", "caption") and splits.modality == "images"
    assert splits.field_modality("caption") == "text"
    assert np.array_equal(_all_rows(splits, "x"), images)  # every field split by the same indices
    captions = _all_rows(splits, "caption")
    assert captions.dtype == np.uint8 and captions.shape == (10, len("zwei Hunde"))  # the longest, in UTF-8 bytes
    assert decode_texts(torch.from_numpy(captions)) == CAPTIONS
    assert text_lengths(torch.from_numpy(captions)).tolist() == [len(c.encode()) for c in CAPTIONS]  # café: 5


def test_a_presplit_file_with_token_ids_pads_train_and_test_to_one_length(tmp_path) -> None:
    ids_train = np.array([[5, 6, -1], [7, -1, -1], [1, 2, 3], [4, -1, -1]])
    ids_test = np.array([[9, 8, 7, 6, 5], [3, -1, -1, -1, -1]])
    np.savez(tmp_path / "s.npz", x_train=_images(4), x_test=_images(2, seed=1), caption_train=ids_train,
             caption_test=ids_test, y_train=np.array([0, 1, 0, 1]), y_test=np.array([1, 0]))
    splits = load_dataset(tmp_path / "s.npz", fields="x,caption=text")
    train, test = splits.train.field("caption"), splits.test.field("caption")
    assert train.dtype == torch.int32 and train.shape == (4, 5) and test.shape == (2, 5)
    assert train[0].tolist() == [5, 6, -1, -1, -1] and test[0].tolist() == [9, 8, 7, 6, 5]
    assert text_lengths(train).tolist() == [2, 1, 3, 1]
    assert torch.equal(splits.train.x, torch.from_numpy(_images(4))) and splits.test.labels.tolist() == [1, 0]


def test_two_float_vector_fields_and_a_sequence_field(tmp_path) -> None:
    rng = np.random.default_rng(0)
    a, b, audio = rng.normal(size=(8, 3)), rng.normal(size=(8, 5)), rng.normal(size=(8, 2, 16))
    np.savez(tmp_path / "v.npz", a=a, b=b, audio=audio)
    splits = load_dataset(tmp_path / "v.npz", fields="a,b,audio=sequences", test_fraction=0.25)
    assert splits.field_names == ("a", "b", "audio") and splits.train.x_field == "a"
    assert [splits.field_modality(n) for n in splits.field_names] == ["vectors", "vectors", "sequences"]
    assert splits.input_shape == (3,) and splits.train.field("b").dtype == torch.float32
    assert np.array_equal(_all_rows(splits, "b"), b.astype(np.float32))
    assert np.array_equal(_all_rows(splits, "audio"), audio.astype(np.float32))
    assert torch.equal(splits.train.field("x"), splits.train.x)  # "x" always names the default field


def test_uint8_bytes_are_text_only_when_asked_and_the_modality_setting_is_the_default_fields(tmp_path) -> None:
    data = np.zeros((4, 9), np.uint8)  # width 9 = 3 * 3: as a lone field this would be flat images
    for i, word in enumerate(["abc", "de", "f", "ghijklmno"]):
        data[i, :len(word)] = np.frombuffer(word.encode(), np.uint8)
    np.savez(tmp_path / "b.npz", x=np.ones((4, 3)), caption=data)
    splits = load_dataset(tmp_path / "b.npz", fields={"x": "sequences", "caption": "text"}, test_fraction=0.0)
    assert splits.modality == "sequences" and decode_texts(splits.train.field("caption")) == ["abc", "de", "f",
                                                                                             "ghijklmno"]
    as_default = load_dataset(tmp_path / "b.npz", fields="x,caption", modality="vectors", test_fraction=0.0)
    assert as_default.modality == "vectors" and as_default.field_modality("caption") == "images"


def test_classes_select_every_field_alike(tmp_path) -> None:
    np.savez(tmp_path / "c.npz", x=_images(), caption=np.array(CAPTIONS), y=np.arange(10) % 3)
    whole = load_dataset(tmp_path / "c.npz", fields="x,caption", test_fraction=0.0)
    some = load_dataset(tmp_path / "c.npz", fields="x,caption", test_fraction=0.0, classes="1")
    keep = whole.train.labels == 1
    assert torch.equal(some.train.x, whole.train.x[keep])
    assert decode_texts(some.train.field("caption")) == [c for c, k in zip(decode_texts(whole.train.field("caption")),
                                                                           keep.tolist(), strict=True) if k]


def test_single_input_files_load_as_before(tmp_path) -> None:
    np.savez(tmp_path / "one.npz", x=_images(), y=np.arange(10) % 2)
    splits = load_dataset(tmp_path / "one.npz")
    assert splits.field_names == ("x",) and splits.train.extra_fields == {}
    assert load_dataset(tmp_path / "one.npz", fields="x").field_names == ("x",)


# --- errors ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("arrays", "fields", "match"), [
    # a key no field takes is named, never dropped (it used to be ignored)
    ({"x_train": _images(4), "x_test": _images(2), "caption_train": np.array(["a"] * 4)}, None,
     r"'caption_train' in '.*bad\.npz' is taken by no field .*fields='x,caption'"),
    ({"x": _images(4), "notes": np.arange(4)}, None, r"'notes' in '.*' is taken by no field"),
    ({"x_train": _images(4), "x_test": _images(2), "y": np.arange(4)}, None, "'y' and train/test keys; keep one"),
    # unequal lengths
    ({"x": _images(4), "caption": np.array(["a"] * 3)}, "x,caption",
     r"'caption' in '.*' has 3 rows but 'x' has 4; every field needs one row per sample"),
    ({"x_train": _images(4), "x_test": _images(2), "c_train": np.ones((4, 2)), "c_test": np.ones((3, 2))}, "x,c",
     r"'c_test' in '.*' has 3 rows but 'x_test' has 2"),
    # a field missing, or half split
    ({"x": _images(4)}, "x,caption", r"no array for the field 'caption'; expected a key among caption, "),
    ({"x_train": _images(4), "x_test": _images(2), "c_train": np.ones((4, 2))}, "x,c",
     r"has no 'c_test' key; a split file needs both 'c_train' and 'c_test'"),
    ({"x_train": _images(4), "x_test": _images(2), "c": np.ones((4, 2))}, "x,c", "'c' and train/test keys"),
    # text that is not text
    ({"x": _images(2), "c": np.array(["ok", ""])}, "x,c", r"'c' in '.*' holds an empty text at row 1"),
    ({"x": _images(2), "c": np.array(["ok", "a\0b"])}, "x,c", "NUL character in row 1"),
    ({"x": _images(2), "c": np.array([b"ok", b"\xff\xfe"])}, "x,c", r"row 1 is not valid UTF-8"),
    ({"x": _images(2), "c": np.array([[1, -1, 2], [3, 4, -1]])}, "x,c=text", "row 0 holds tokens after its padding"),
    ({"x": _images(2), "c": np.array([[-1, -1], [3, 4]])}, "x,c=text", "row 0 is empty"),
    ({"x": _images(2), "c": np.array([[1, 2], [3, -5]])}, "x,c=text", "ids must be >= 0"),
    ({"x": _images(2), "c": np.ones((2, 2))}, "x,c=text", "text must be strings"),
    ({"x": _images(2), "c": np.array([["a", "b"], ["c", "d"]])}, "x,c=text", r"one string per sample, shape \(N,\)"),
])
def test_bad_field_files_get_one_line_naming_the_key(tmp_path, arrays, fields, match) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match) as info:
        load_dataset(tmp_path / "bad.npz", fields=fields)
    assert "\n" not in str(info.value)


def test_a_pickled_object_array_under_a_field_is_refused_and_never_read(tmp_path) -> None:
    np.savez(tmp_path / "o.npz", x=_images(2), caption=np.array(["a", None], dtype=object))
    with pytest.raises(ValueError, match=r"'caption' in '.*o\.npz' is an array of Python objects.*never unpickles"):
        load_dataset(tmp_path / "o.npz", fields="x,caption")


@pytest.mark.parametrize(("fields", "modality", "match"), [
    ("x,x", "auto", "names 'x' twice"),
    ("x,y", "auto", "field names must be identifiers other than"),
    ("x,cap_train", "auto", "end in '_train'"),
    ("x,2nd", "auto", "identifiers"),
    ("x=pictures", "auto", "`modality` must be 'auto' or one of"),
    ({"x": "images"}, "vectors", "disagree on the default field's modality"),
    ("", "auto", "identifiers"),
    (3, "auto", "`fields` must be a str"),
])
def test_parse_fields_refusals(fields, modality, match) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        parse_fields(fields, modality)


def test_parse_fields_forms() -> None:
    assert parse_fields(None) == {"x": "auto"} and parse_fields(None, "vectors") == {"x": "vectors"}
    assert parse_fields("image, caption=text") == {"image": "auto", "caption": "text"}
    assert parse_fields(("a", "b"), "sequences") == {"a": "sequences", "b": "auto"}


def test_fields_of_a_single_input_source_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"`fields` names the fields of an \.npy / \.npz file"):
        load_dataset("digits", fields="x,caption")
    np.save(tmp_path / "a.npy", _images())
    with pytest.raises(ValueError, match=r"single \.npy array: it holds one field"):
        load_dataset(tmp_path / "a.npy", fields="x,caption")


# --- containers -----------------------------------------------------------------------------------------------

def _pairs(n: int = 6) -> ArrayDataset:
    return ArrayDataset(torch.arange(n * 2, dtype=torch.float32).view(n, 2), torch.arange(n) % 2,
                        extra_fields={"caption": encode_texts([f"row {i}" for i in range(n)])})


def test_array_dataset_fields_take_and_from_fields() -> None:
    data = _pairs()
    assert data.field_names == ("x", "caption") and data.field_modality("caption") == "text"
    part = data.take(torch.tensor([4, 1]))
    assert part.x[:, 0].tolist() == [8.0, 2.0] and decode_texts(part.field("caption")) == ["row 4", "row 1"]
    assert part.labels.tolist() == [0, 1]
    built = ArrayDataset.from_fields({"caption": data.field("caption"), "x": data.x})
    assert built.x_field == "caption" and built.modality == "text" and not built.has_labels
    assert "caption" in repr(data) and ArrayDataset(data.x, data.labels).field_names == ("x",)


@pytest.mark.parametrize(("extra", "match"), [
    ({"c": torch.zeros(5, 2)}, "field 'c' has 5 samples but 'x' has 6"),
    ({"c": torch.zeros(6, 2, dtype=torch.int64)}, "field 'c' must be a tensor of images, vectors, sequences or text"),
    ({"labels": torch.zeros(6, 2)}, "field names must be identifiers"),
    ({"x": torch.zeros(6, 2)}, "'x' is both `x` and in `extra_fields`"),
])
def test_array_dataset_refuses_bad_fields(extra, match) -> None:
    with pytest.raises(ValueError, match=match):
        ArrayDataset(torch.zeros(6, 2), torch.full((6,), -1), extra_fields=extra)


def test_unknown_field_is_named() -> None:
    with pytest.raises(ValueError, match="no field 'audio'; its fields: x, caption"):
        _pairs().field("audio")


def test_splits_refuse_train_and_test_with_different_fields() -> None:
    train = _pairs()
    with pytest.raises(ValueError, match="train and test hold different fields: x, caption vs x"):
        DatasetSplits("d", train, ArrayDataset(train.x, train.labels), 2)
    other = dataclasses.replace(train, extra_fields={"caption": torch.zeros(6, 3)})
    with pytest.raises(ValueError, match="field 'caption' differs between train"):
        DatasetSplits("d", train, other, 2)
    DatasetSplits("d", train, ArrayDataset(train.x[:0], train.labels[:0]), 2)  # an empty test part: a trainer's


# --- fingerprint ----------------------------------------------------------------------------------------------

def _splits(caption_rows: list[str]) -> DatasetSplits:
    train = ArrayDataset(torch.zeros(3, 2), torch.full((3,), -1),
                         extra_fields={"caption": encode_texts(caption_rows)})
    return DatasetSplits("pairs", train, train.take(torch.tensor([0])), 0)


def test_the_fingerprint_covers_every_field_and_names_the_changed_one() -> None:
    before = data_fingerprint(_splits(["a", "b", "c"]))
    after = data_fingerprint(_splits(["a", "b", "d"]))  # same x, same labels, one caption changed
    assert before["sha256"] != after["sha256"] and before["fields"]["x"] == after["fields"]["x"]
    assert describe_change(before, after) == ("the data differs from the data this run was trained on (field "
                                              "caption changed)")
    assert describe_change(before, data_fingerprint(_splits(["a", "b", "c"]))) is None


def test_single_input_fingerprint_is_unchanged_by_named_fields() -> None:
    """The exact digest of single-input data is what it always was (old checkpoints still resume): hashed by hand."""
    import hashlib

    x, labels = torch.arange(6, dtype=torch.float32).view(3, 2), torch.tensor([0, 1, 0])
    data = DatasetSplits("d", ArrayDataset(x, labels), ArrayDataset(x[:0], labels[:0]), 2)
    digest = hashlib.sha256()
    for tensor in (x, labels, x[:0], labels[:0]):
        array = tensor.numpy()
        digest.update(str((array.dtype.str, array.shape)).encode())
        if array.size:
            digest.update(memoryview(array).cast("B"))
    fingerprint = data_fingerprint(data)
    assert fingerprint["sha256"] == digest.hexdigest() and "fields" not in fingerprint
    without = data_fingerprint(DatasetSplits("d", _pairs(3), _pairs(3).take(torch.tensor([0])), 2))
    assert describe_change(fingerprint, without) is not None
