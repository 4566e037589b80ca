"""Arrays from .npy / .npz: every accepted layout and value range, split keys, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from contrastkit.data import load_dataset
from contrastkit.data.arrays import to_uint8_nchw


def _images(n: int = 10, h: int = 4, w: int = 5, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, c, h, w), dtype=np.uint8)  # (N, C, H, W)


def _all_rows(splits) -> tuple[np.ndarray, np.ndarray]:
    """Train and test put back into the source order."""
    order = np.argsort(np.concatenate([splits.train_indices, splits.test_indices]))
    images = torch.cat([splits.train.images, splits.test.images]).numpy()[order]
    labels = torch.cat([splits.train.labels, splits.test.labels]).numpy()[order]
    return images, labels


def test_npy_is_unlabelled_gray(tmp_path) -> None:
    gray = _images(c=1)[:, 0]  # (N, H, W)
    np.save(tmp_path / "gray.npy", gray)
    splits = load_dataset(tmp_path / "gray.npy")
    assert not splits.has_labels and splits.num_classes == 0 and splits.channels == 1
    assert len(splits.train) == 8 and len(splits.test) == 2
    images, labels = _all_rows(splits)
    assert np.array_equal(images, gray[:, None]) and np.all(labels == -1)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last", "channels_last_gray", "flat"])
def test_npz_layouts_with_labels(tmp_path, layout) -> None:
    c = 1 if layout in ("channels_last_gray", "flat") else 3
    nchw = _images(c=c, h=6, w=6)
    if layout == "flat":
        stored = nchw.reshape(10, 36)
    elif layout.startswith("channels_last"):
        stored = nchw.transpose(0, 2, 3, 1)  # (N, H, W, C)
    else:
        stored = nchw
    labels = np.array([0, 1] * 5)
    np.savez(tmp_path / "set.npz", x=stored, y=labels)
    splits = load_dataset(tmp_path / "set.npz")
    assert splits.has_labels and splits.num_classes == 2 and splits.channels == c
    assert splits.image_size == (6, 6) and splits.name == "set.npz"
    assert torch.bincount(splits.test.labels).tolist() == [1, 1]
    images, got_labels = _all_rows(splits)
    assert np.array_equal(images, nchw) and np.array_equal(got_labels, labels)


def test_float_in_unit_interval_is_rounded_half_up() -> None:
    values = np.array([0.0, 0.5, 1.0, 0.2, 1 / 510, 0.999 / 510], dtype=np.float32).reshape(1, 1, 2, 3)
    assert to_uint8_nchw(values, "x", "t").ravel().tolist() == [0, 128, 255, 51, 1, 0]
    wide = np.arange(0, 256, dtype=np.int64).reshape(1, 16, 16)
    assert np.array_equal(to_uint8_nchw(wide, "x", "t").ravel(), np.arange(256))


def test_float_npz_and_images_labels_aliases(tmp_path) -> None:
    nchw = _images(c=3)
    np.savez(tmp_path / "f.npz", images=nchw.astype(np.float64) / 255.0, labels=np.arange(10) % 5)
    splits = load_dataset(tmp_path / "f.npz", test_fraction=0.0)
    assert np.array_equal(splits.train.images.numpy(), nchw) and splits.num_classes == 5


def test_ambiguous_layout_is_channels_first() -> None:
    arr = _images(n=2, c=3, h=5, w=3)  # (2, 3, 5, 3): second dim is 3 -> channels-first
    assert to_uint8_nchw(arr, "x", "t").shape == (2, 3, 5, 3)


def test_presplit_keys_are_kept(tmp_path) -> None:
    train, test = _images(n=6, c=1), _images(n=3, c=1, seed=1)
    np.savez(tmp_path / "s.npz", x_train=train, y_train=np.arange(6) % 3, x_test=test, y_test=np.array([2, 1, 0]))
    splits = load_dataset(tmp_path / "s.npz", test_fraction=0.5)  # the file's split wins
    assert splits.train_indices is None and splits.test_indices is None
    assert torch.equal(splits.train.images, torch.from_numpy(train))
    assert torch.equal(splits.test.images, torch.from_numpy(test))
    assert splits.test.labels.tolist() == [2, 1, 0] and splits.num_classes == 3
    np.savez(tmp_path / "u.npz", x_train=train, x_test=test)
    assert not load_dataset(tmp_path / "u.npz").has_labels


def test_mode_and_size_on_arrays(tmp_path) -> None:
    nchw = _images(n=2, c=3, h=4, w=4)
    np.save(tmp_path / "rgb.npy", nchw)
    gray = load_dataset(tmp_path / "rgb.npy", mode="L", size=(8, 6), test_fraction=0.0)
    assert gray.train.images.shape == (2, 1, 8, 6)
    expected = np.asarray(Image.fromarray(nchw[0].transpose(1, 2, 0)).convert("L").resize((6, 8), Image.BILINEAR))
    assert np.array_equal(gray.train.images[0, 0].numpy(), expected)


@pytest.mark.parametrize(("arrays", "match"), [
    ({"x": np.zeros((3, 4, 5, 5), dtype=np.uint8)}, "C = 1"),
    ({"x": np.zeros((3, 2, 2, 2, 2), dtype=np.uint8)}, "expected"),
    ({"x": np.full((3, 2, 2), 2.0)}, r"\[0, 1\]"),
    ({"x": np.full((3, 2, 2), np.nan)}, "NaN"),
    ({"x": np.full((3, 2, 2), 300)}, r"\[0, 255\]"),
    ({"x": np.zeros((0, 2, 2), dtype=np.uint8)}, "no images"),
    ({"x": np.zeros((3, 2, 2), dtype=np.uint8), "y": np.array([0, 1])}, r"shape \(3,\)"),
    ({"x": np.zeros((3, 2, 2), dtype=np.uint8), "y": np.array([0, -1, 1])}, "all >= 0"),
    ({"x": np.zeros((3, 2, 2), dtype=np.uint8), "y": np.array([0.5, 1, 1])}, "whole numbers"),
    ({"x": np.zeros((3, 2, 2), dtype=np.uint8), "images": np.zeros((3, 2, 2), dtype=np.uint8)}, "keep one"),
    ({"pictures": np.zeros((3, 2, 2), dtype=np.uint8)}, "pictures"),
    ({"x_train": np.zeros((3, 2, 2), dtype=np.uint8)}, "x_test"),
    ({"x_train": np.zeros((3, 2, 2), dtype=np.uint8), "x_test": np.zeros((3, 2, 2), dtype=np.uint8),
      "y_train": np.zeros(3, dtype=np.int64)}, "y_test"),
    ({"x_train": np.zeros((3, 2, 2), dtype=np.uint8), "x_test": np.zeros((3, 3, 3), dtype=np.uint8)}, "differ"),
])
def test_npz_errors(tmp_path, arrays, match) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        load_dataset(tmp_path / "bad.npz")


def test_modality_rule_for_flat_arrays(tmp_path) -> None:
    """A flat integer array with a square width in [0, 255] is images; any other 2-D array is a table of vectors,
    unless the images modality is asked for (then the width must be a perfect square)."""
    np.savez(tmp_path / "flat.npz", x=np.zeros((3, 16), dtype=np.uint8))
    assert load_dataset(tmp_path / "flat.npz").modality == "images"
    np.savez(tmp_path / "table.npz", x=np.zeros((3, 50), dtype=np.uint8))
    table = load_dataset(tmp_path / "table.npz")
    assert table.modality == "vectors" and table.train.x.dtype == torch.float32 and table.input_shape == (50,)
    np.savez(tmp_path / "floats.npz", x=np.random.default_rng(0).normal(size=(10, 16)))
    assert load_dataset(tmp_path / "floats.npz").modality == "vectors"
    with pytest.raises(ValueError, match="perfect square"):
        load_dataset(tmp_path / "table.npz", modality="images")
    sequences = load_dataset(tmp_path / "floats.npz", modality="sequences")
    assert sequences.modality == "sequences" and sequences.input_shape == (1, 16)
    np.savez(tmp_path / "nan.npz", x=np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match="NaN/Inf"):
        load_dataset(tmp_path / "nan.npz")
    with pytest.raises(ValueError, match="`size` and `mode` apply to images"):
        load_dataset(tmp_path / "floats.npz", size=8)


@pytest.mark.parametrize("name", ["junk.npy", "junk.npz"])
def test_unreadable_file_error_names_it(tmp_path, name) -> None:
    (tmp_path / name).write_bytes(b"\x00garbage, not numpy")
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        load_dataset(tmp_path / name)


def test_object_arrays_are_refused_not_unpickled(tmp_path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"obj\.npy"):
        load_dataset(tmp_path / "obj.npy")


def test_unsupported_extension(tmp_path) -> None:
    (tmp_path / "data.csv").write_text("1,2,3")
    with pytest.raises(ValueError, match=r"data\.csv"):
        load_dataset(tmp_path / "data.csv")


# --- labels are renumbered 0..C-1; their ids become the class names -------------------------------------


def test_huge_sparse_labels_are_renumbered_and_keep_their_ids_as_names(tmp_path) -> None:
    # labels {0, 10**9} once made a 10**9-long class-name tuple (the process grew until it was killed)
    images = _images(n=40, c=1)
    sparse = np.array([0, 10**9] * 20)
    np.savez(tmp_path / "big.npz", x=images, y=sparse)
    splits = load_dataset(tmp_path / "big.npz")
    assert splits.num_classes == 2 and splits.class_names == ("0", "1000000000")
    _, labels = _all_rows(splits)
    assert np.array_equal(labels, (sparse > 0).astype(np.int64))
    np.savez(tmp_path / "dense.npz", x=images, y=(sparse > 0).astype(np.int64))
    dense = load_dataset(tmp_path / "dense.npz")  # renumbering keeps the order, so the same split
    assert np.array_equal(splits.test_indices, dense.test_indices)
    assert dense.class_names == ("0", "1")


def test_presplit_labels_are_renumbered_over_both_splits(tmp_path) -> None:
    train, test = _images(n=6, c=1), _images(n=4, c=1, seed=1)
    np.savez(tmp_path / "s.npz", x_train=train, y_train=np.array([7, 3, 3_000_000_000, 7, 3, 7]),
             x_test=test, y_test=np.array([5.0, 7.0, 3.0, 5.0]))  # 5 only in test; float ids are fine
    splits = load_dataset(tmp_path / "s.npz")
    assert splits.class_names == ("3", "5", "7", "3000000000") and splits.num_classes == 4
    assert splits.train.labels.tolist() == [2, 0, 3, 2, 0, 2]
    assert splits.test.labels.tolist() == [1, 2, 0, 1]


def test_folder_and_builtin_labels_are_not_renumbered(tmp_path) -> None:
    for name in ("b", "a"):
        (tmp_path / "f" / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((4, 4), 40 * i, dtype=np.uint8)).save(tmp_path / "f" / name / f"{i}.png")
    folder = load_dataset(tmp_path / "f", test_fraction=0.0)
    assert folder.class_names == ("a", "b") and folder.train.labels.tolist() == [0, 0, 1, 1]
    assert load_dataset("digits").class_names == tuple("0123456789")


# --- bad content: one-line ValueErrors that name the file and key --------------------------------------

_LABELLED = {"x": np.zeros((4, 2, 2), dtype=np.uint8)}


@pytest.mark.parametrize(("arrays", "key", "match"), [
    ({"x": np.full((4, 2, 2), "a")}, "x", r"holds strings \(dtype <U1\)"),
    ({"x": np.full((4, 2, 2), b"a")}, "x", "holds byte strings"),
    ({"x": np.ones((4, 2, 2), dtype=bool)}, "x", "holds booleans.*uint8 0 / 255"),
    ({"x": np.ones((4, 2, 2), dtype=complex)}, "x", "holds complex numbers"),
    ({"x": np.zeros((4, 2, 2), dtype=[("r", "u1")])}, "x", "holds structured records"),
    ({"images": np.full((4, 2, 2), "a")}, "images", "holds strings"),
    ({"x_train": np.full((4, 2, 2), "a"), "x_test": np.zeros((4, 2, 2), np.uint8)}, "x_train", "strings"),
    ({**_LABELLED, "y": np.array(["cat", "dog", "cat", "dog"])}, "y", r"integer class ids, got strings"),
    ({**_LABELLED, "y": np.array([True, False] * 2)}, "y", "got booleans"),
    ({**_LABELLED, "labels": np.array([1j, 0j] * 2)}, "labels", "got complex numbers"),
    ({**_LABELLED, "y": np.array([0, 1, 2, 3], dtype="datetime64[D]")}, "y", "got dates"),
    ({**_LABELLED, "y": np.array([0, -3, 1, 1])}, "y", r"all >= 0, or all -1"),
    ({**_LABELLED, "y": np.array([0.0, 1e30, 1.0, 1.0])}, "y", r"2\*\*53"),
    ({**_LABELLED, "y": np.array([0, 2**64 - 1, 1, 1], dtype=np.uint64)}, "y", "beyond int64"),
    ({"x_train": np.zeros((4, 2, 2), np.uint8), "x_test": np.zeros((4, 2, 2), np.uint8),
      "y_train": np.arange(4), "y_test": np.array(["a"] * 4)}, "y_test", "got strings"),
])
def test_non_numeric_content_is_a_one_line_value_error_naming_file_and_key(tmp_path, arrays, key, match) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match) as info:
        load_dataset(tmp_path / "bad.npz")
    message = str(info.value)
    assert type(info.value) is ValueError  # the CLI prints ValueErrors as one line
    assert f"{key!r} in '{tmp_path / 'bad.npz'}'" in message and "\n" not in message


def test_string_image_npy_names_the_file(tmp_path) -> None:
    np.save(tmp_path / "s.npy", np.full((4, 2, 2), "a"))
    with pytest.raises(ValueError, match=r"the array in '.*s\.npy' holds strings"):
        load_dataset(tmp_path / "s.npy")


def test_labels_for_one_split_only(tmp_path) -> None:
    part = np.zeros((3, 2, 2), np.uint8)
    np.savez(tmp_path / "one.npz", x_train=part, y_train=np.arange(3), x_test=part)
    with pytest.raises(ValueError, match=r"one\.npz' has only one of 'y_train' / 'y_test'; give both or neither"):
        load_dataset(tmp_path / "one.npz")
    np.savez(tmp_path / "half.npz", x_train=part, y_train=np.full(3, -1), x_test=part, y_test=np.arange(3))
    with pytest.raises(ValueError, match=r"'half\.npz' gives labels for the test images only"):
        load_dataset(tmp_path / "half.npz")


# --- files that are not numpy arrays: our own message, nothing unpickled -------------------------------

_NOT_NUMPY = r"is not a valid \.npy/\.npz file \(damaged, or a pickle: contrastkit never unpickles array files\)"


@pytest.mark.parametrize("name", ["random.npy", "random.npz"])
def test_random_bytes_get_our_message_not_numpys_pickle_advice(tmp_path, name) -> None:
    (tmp_path / name).write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=f"'{tmp_path / name}' {_NOT_NUMPY}") as info:
        load_dataset(tmp_path / name)
    assert "allow_pickle" not in str(info.value)


class _Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_a_pickle_never_runs(tmp_path, suffix) -> None:
    import pickle

    marker = tmp_path / "ran"
    (tmp_path / f"p{suffix}").write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(ValueError, match=_NOT_NUMPY):
        load_dataset(tmp_path / f"p{suffix}")
    np.save(tmp_path / "o.npy", np.array([_Payload(str(marker))] * 4, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="Python objects"):
        load_dataset(tmp_path / "o.npy")
    np.savez(tmp_path / "o.npz", x=np.array([_Payload(str(marker))] * 4, dtype=object))
    with pytest.raises(ValueError, match=r"'x' in '.*o\.npz' is an array of Python objects.*never unpickles"):
        load_dataset(tmp_path / "o.npz")
    assert not marker.exists()


def test_object_array_under_an_extra_key_is_refused_by_name_and_never_read(tmp_path) -> None:
    """Issue 15: a key no field takes is an error naming it (it used to be ignored); it is still never read."""
    marker = tmp_path / "ran"
    np.savez(tmp_path / "m.npz", x=_images(n=4, c=1), y=np.arange(4) % 2,
             meta=np.array([_Payload(str(marker))], dtype=object))
    with pytest.raises(ValueError, match=r"'meta' in '.*m\.npz' is taken by no field"):
        load_dataset(tmp_path / "m.npz", test_fraction=0.5)
    assert not marker.exists()


def test_truncated_and_forged_headers_are_damaged_not_allocated(tmp_path) -> None:
    np.save(tmp_path / "t.npy", _images(n=40))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:1000])
    with pytest.raises(ValueError, match=r"'.*t\.npy' is damaged \(truncated\?\).*\(40, 3, 4, 5\)"):
        load_dataset(tmp_path / "t.npy")
    import io
    import zipfile

    header = io.BytesIO()  # announces 10**12 bytes; reading it must not try to allocate them
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (10**6, 10**6)})
    with zipfile.ZipFile(tmp_path / "f.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(100))
    with pytest.raises(ValueError, match=r"'x' in '.*f\.npz' is damaged.*1000000000000 bytes"):
        load_dataset(tmp_path / "f.npz")


def test_damaged_compressed_member_names_its_key(tmp_path) -> None:
    np.savez_compressed(tmp_path / "c.npz", x=_images(n=40))
    data = bytearray((tmp_path / "c.npz").read_bytes())
    data[200:210] = bytes(b ^ 0xFF for b in data[200:210])
    (tmp_path / "c.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"'x' in '.*c\.npz'") as info:
        load_dataset(tmp_path / "c.npz")
    assert type(info.value) is ValueError and "\n" not in str(info.value)


# --- memory: a file's arrays are sized from their headers and refused before any data is read --------------------


def _no_data_read(monkeypatch) -> None:
    """Fail the test if any array data is read (only headers may be)."""
    import contrastkit.data.npfiles as npfiles

    def refuse(*args, **kwargs):
        raise AssertionError("array data was read before the memory check")

    monkeypatch.setattr(npfiles.npy_format, "read_array", refuse)


def _available(monkeypatch, nbytes: int) -> None:
    import contrastkit.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda *args, **kwargs: nbytes)


def test_npz_too_large_for_memory_is_refused_from_its_headers(tmp_path, monkeypatch) -> None:
    """x float32 (100, 1, 32, 32): 409,600 bytes as stored + 102,400 as uint8 images; y int64 (100,): 800 + 800.
    Peak = max(stored + converted, 2 x converted for the split) = 513,600 bytes."""
    np.savez_compressed(tmp_path / "zeros.npz", x=np.zeros((100, 1, 32, 32), np.float32), y=np.arange(100) % 2)
    _no_data_read(monkeypatch)
    _available(monkeypatch, 500_000)  # 90 % of it: 450,000 < 513,600
    with pytest.raises(ValueError, match=r"zeros\.npz") as info:
        load_dataset(tmp_path / "zeros.npz")
    err = info.value
    assert (err.needed, err.available) == (513_600, 500_000)
    message = str(err)
    assert "\n" not in message and "'x' float32 (100, 1, 32, 32)" in message and "501.6 KiB" in message
    assert "488.3 KiB available" in message
    monkeypatch.undo()
    _available(monkeypatch, 571_000)  # 90 %: 513,900 >= 513,600: loads
    assert load_dataset(tmp_path / "zeros.npz").train.images.shape == (80, 1, 32, 32)


def test_npy_vectors_are_sized_as_float32(tmp_path, monkeypatch) -> None:
    """(100, 8) float32 is a table of vectors: 3,200 bytes stored + 3,200 as float32; the split copies 3,200."""
    np.save(tmp_path / "v.npy", np.ones((100, 8), np.float32))
    _no_data_read(monkeypatch)
    _available(monkeypatch, 7_000)  # 6,300 < 6,400
    with pytest.raises(ValueError, match=r"v\.npy") as info:
        load_dataset(tmp_path / "v.npy")
    assert info.value.needed == 6_400


def test_a_few_bytes_declaring_gibibytes_are_refused_not_decompressed(tmp_path, monkeypatch) -> None:
    """A 1 KB .npz whose member declares float32 (1000, 3, 512, 512), 2.9 GiB (the issue's 17 MB of compressed
    zeros declaring 3.7 GiB, without writing them): refused from the header, nothing decompressed beyond it."""
    import io
    import struct
    import zipfile

    shape = (1000, 3, 512, 512)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    declared = len(header.getvalue()) + 4 * 1000 * 3 * 512 * 512
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", header.getvalue() + bytes(64))
    data = bytearray((tmp_path / "bomb.npz").read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size, local + central
        at = data.index(signature) + offset
        data[at:at + 4] = struct.pack("<I", declared)
    (tmp_path / "bomb.npz").write_bytes(bytes(data))
    _no_data_read(monkeypatch)
    _available(monkeypatch, 2 * 1024**3)
    with pytest.raises(ValueError, match=r"bomb\.npz") as info:
        load_dataset(tmp_path / "bomb.npz")
    assert info.value.needed == 4 * 786_432_000 + 786_432_000  # stored float32 + uint8 images
    assert "3.7 GiB" in str(info.value) and "2.0 GiB available" in str(info.value)


def test_float_images_convert_block_by_block_to_the_same_values(monkeypatch) -> None:
    """floor(255 x + 0.5) a few rows at a time (the float64 temporaries stay small) equals the whole-array form,
    also for a channels-last (non-contiguous) view."""
    import contrastkit.data.arrays as arrays

    monkeypatch.setattr(arrays, "_CONVERT_BLOCK", 7)
    rng = np.random.default_rng(0)
    values = rng.random((9, 5, 4, 3)).astype(np.float32)  # (N, H, W, C)
    values[0, 0, 0] = [0.5 / 255, 1.5 / 255, 1.0]
    expected = np.floor(values.transpose(0, 3, 1, 2).astype(np.float64) * 255 + 0.5).astype(np.uint8)
    got = to_uint8_nchw(values, "x", "t")
    assert got.flags.c_contiguous and np.array_equal(got, expected)
    assert got[0, :, 0, 0].tolist() == [1, 2, 255]


# --- labels: -1 means "no label", so negative ids are refused, with the reason and a way out ------------------------


@pytest.mark.parametrize(("labels", "shown"), [([-1, 1, -1, 1], "(-1)"), ([0, -3, 1, -2], "(-3, -2)")])
def test_negative_labels_are_refused_with_the_reason(tmp_path, labels, shown) -> None:
    np.savez(tmp_path / "pm.npz", x=np.zeros((4, 2, 2), np.uint8), y=np.array(labels))
    with pytest.raises(ValueError) as info:
        load_dataset(tmp_path / "pm.npz")
    message = str(info.value)
    assert f"'y' in '{tmp_path / 'pm.npz'}' holds negative class ids {shown}" in message
    assert "-1 means 'no label'" in message and "(y + 1) // 2" in message and "\n" not in message
    np.savez(tmp_path / "none.npz", x=np.zeros((4, 2, 2), np.uint8), y=np.full(4, -1))
    assert load_dataset(tmp_path / "none.npz").num_classes == 0  # all -1: unlabelled
