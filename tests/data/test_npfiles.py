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
    ({"x": np.zeros((3, 50), dtype=np.uint8)}, "perfect square"),
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
