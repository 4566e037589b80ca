"""Image folders read with Pillow: class order, modes, sizes, unlabelled roots and unreadable files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, features

from contrastkit.data import load_dataset
from contrastkit.data.arrays import convert_channels
from contrastkit.data.folder import FILE_RECORD, decode_file, decode_scanned, load_image_folder, scan_image_folder


def _rgb(seed: int, h: int = 6, w: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _gray(seed: int, h: int = 6, w: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_class_folders_sorted_by_name_round_trip(tmp_path) -> None:
    # created out of order on purpose: "zebra" first, "ant" second -> ant = 0, zebra = 1
    zebra = [_rgb(1), _rgb(2)]
    ant = [_rgb(3), _rgb(4), _rgb(5)]
    for i, a in enumerate(zebra):
        _save(tmp_path / "zebra" / f"z{i}.png", a)
    for i, a in enumerate(ant):
        _save(tmp_path / "ant" / f"a{i}.png", a)
    (tmp_path / "ant" / "notes.txt").write_text("not an image, ignored")
    _save(tmp_path / "ant" / ".hidden.png", _rgb(9))

    images, labels, names = load_image_folder(tmp_path)
    assert names == ("ant", "zebra")
    assert labels.tolist() == [0, 0, 0, 1, 1]
    expected = np.stack([a.transpose(2, 0, 1) for a in ant + zebra])
    assert images.dtype == np.uint8 and np.array_equal(images, expected)

    splits = load_dataset(tmp_path, test_fraction=0.0)
    assert splits.num_classes == 2 and splits.class_names == ("ant", "zebra") and splits.has_labels
    assert splits.channels == 3 and splits.image_size == (6, 5) and splits.name == tmp_path.name
    assert torch.equal(splits.train.images, torch.from_numpy(expected))
    assert splits.train.labels.tolist() == [0, 0, 0, 1, 1] and len(splits.test) == 0


def test_majority_mode_and_explicit_mode(tmp_path) -> None:
    grays = [_gray(1), _gray(2)]
    color = _rgb(3)
    _save(tmp_path / "a" / "g0.png", grays[0])
    _save(tmp_path / "a" / "c0.png", color)
    _save(tmp_path / "b" / "g1.png", grays[1])

    images, labels, _ = load_image_folder(tmp_path)  # 2 gray vs 1 RGB -> "L"
    assert images.shape == (3, 1, 6, 5)
    assert labels.tolist() == [0, 0, 1]
    pil_luma = np.asarray(Image.fromarray(color).convert("L"))
    assert np.array_equal(images[0, 0], pil_luma)  # a/c0.png sorts before a/g0.png
    assert np.array_equal(images[1, 0], grays[0])
    # arrays and files convert RGB -> L identically
    assert np.array_equal(convert_channels(color.transpose(2, 0, 1)[None], 1)[0, 0], pil_luma)

    rgb, _, _ = load_image_folder(tmp_path, mode="RGB")
    assert rgb.shape == (3, 3, 6, 5)
    assert np.array_equal(rgb[1], np.repeat(grays[0][None], 3, axis=0))


def test_tie_gives_rgb_and_gray_palette_counts_as_gray(tmp_path) -> None:
    _save(tmp_path / "g.png", _gray(1))
    _save(tmp_path / "c.png", _rgb(2))
    assert load_image_folder(tmp_path)[0].shape[1] == 3
    Image.fromarray(_gray(3)).convert("P").save(tmp_path / "p.gif")  # palette of grays only
    assert load_image_folder(tmp_path)[0].shape[1] == 1


def test_unlabelled_root_folder(tmp_path) -> None:
    for i in range(5):
        _save(tmp_path / f"img{i}.png", _gray(i))
    splits = load_dataset(tmp_path)
    assert not splits.has_labels and splits.num_classes == 0 and splits.class_names == ()
    assert len(splits.train) == 4 and len(splits.test) == 1
    assert splits.train.labels.tolist() == [-1] * 4 and not splits.train.has_labels


def test_every_listed_extension_is_read(tmp_path) -> None:
    extensions = ["png", "jpg", "jpeg", "bmp", "gif", "tif", "webp"]
    if not features.check("webp"):
        extensions.remove("webp")
    (tmp_path / "only").mkdir()
    for ext in extensions:
        Image.fromarray(_rgb(7)).save(tmp_path / "only" / f"x.{ext.upper()}")
    images, labels, names = load_image_folder(tmp_path, mode="RGB")
    assert labels.tolist() == [0] * len(extensions)
    assert images.shape == (len(extensions), 3, 6, 5) and names == ("only",)
    file_order = sorted(f"x.{e.upper()}" for e in extensions)
    assert np.array_equal(images[file_order.index("x.PNG")], _rgb(7).transpose(2, 0, 1))


def test_sixteen_bit_gray_is_scaled(tmp_path) -> None:
    values = np.array([[0, 257, 65535, 32896]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    images, _, _ = load_image_folder(tmp_path)
    assert images[0, 0].tolist() == [[0, 1, 255, 128]]


def test_corrupt_file_error_names_it(tmp_path) -> None:
    _save(tmp_path / "a" / "good.png", _gray(1))
    (tmp_path / "a" / "broken.png").write_bytes(b"this is not a png")
    with pytest.raises(ValueError, match=r"broken\.png"):
        load_dataset(tmp_path)


def test_truncated_file_error_names_it(tmp_path) -> None:
    _save(tmp_path / "whole.png", _rgb(1, 40, 40))
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.png"):
        load_image_folder(tmp_path)


def test_different_sizes_error_names_both_files_or_resize(tmp_path) -> None:
    _save(tmp_path / "a" / "first.png", _gray(1, 6, 5))
    _save(tmp_path / "b" / "second.png", _gray(2, 7, 5))
    with pytest.raises(ValueError, match=r"first\.png.*second\.png.*size"):
        load_dataset(tmp_path)
    splits = load_dataset(tmp_path, size=(4, 3), test_fraction=0.0)
    assert splits.train.images.shape == (2, 1, 4, 3) and splits.image_size == (4, 3)
    square = load_dataset(tmp_path, size=8, test_fraction=0.0)
    assert square.image_size == (8, 8)


def test_resize_keeps_a_constant_image_constant(tmp_path) -> None:
    _save(tmp_path / "flat.png", np.full((10, 10, 3), 77, dtype=np.uint8))
    images, _, _ = load_image_folder(tmp_path, size=(4, 6))
    assert images.shape == (1, 3, 4, 6) and np.all(images == 77)


def test_layout_errors(tmp_path) -> None:
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_dataset(tmp_path / "empty_root")
    _save(tmp_path / "mixed" / "cls" / "a.png", _gray(1))
    _save(tmp_path / "mixed" / "loose.png", _gray(2))
    with pytest.raises(ValueError, match=r"loose\.png"):
        load_dataset(tmp_path / "mixed")
    _save(tmp_path / "hollow" / "full" / "a.png", _gray(1))
    (tmp_path / "hollow" / "void").mkdir()
    with pytest.raises(ValueError, match="void"):
        load_dataset(tmp_path / "hollow")


def test_path_object_named_like_a_builtin_is_a_path(tmp_path, monkeypatch) -> None:
    _save(tmp_path / "digits" / "only.png", _gray(1))
    monkeypatch.chdir(tmp_path)
    from_path = load_dataset(Path("digits"), test_fraction=0.0)
    assert len(from_path.train) == 1 and not from_path.has_labels
    assert len(load_dataset("./digits", test_fraction=0.0).train) == 1


def test_the_scan_records_each_files_bytes_time_and_header(tmp_path) -> None:
    _save(tmp_path / "a" / "gray.png", _gray(1, 6, 5))
    _save(tmp_path / "a" / "wide.png", _rgb(2, 6, 9))
    _save(tmp_path / "b" / "deep.png", np.array([[0, 300]], dtype=np.uint16))
    scan = scan_image_folder(tmp_path, size=(4, 4))
    assert [p.name for p in scan.paths] == ["gray.png", "wide.png", "deep.png"]
    headers = [(5, 6, b"L"), (9, 6, b"RGB"), (2, 1, b"I;16")]  # width, height, Pillow mode of what was saved
    expected = [(p.stat().st_size, p.stat().st_mtime_ns, *head) for p, head in zip(scan.paths, headers, strict=True)]
    assert scan.records.dtype == FILE_RECORD and scan.records.tolist() == expected


def test_every_format_unchanged_since_the_scan_decodes_as_the_folder_loader_does(tmp_path) -> None:
    """No false alarm: the header read when a file is decoded is the header the scan read, for every format."""
    extensions = ["png", "jpg", "jpeg", "bmp", "gif", "tif", "webp"]
    if not features.check("webp"):
        extensions.remove("webp")
    for ext in extensions:
        _save(tmp_path / "rgb" / f"x.{ext}", _rgb(7))
        _save(tmp_path / "gray" / f"x.{ext}", _gray(8))
    _save(tmp_path / "gray" / "deep.png", _gray(9).astype(np.uint16) * 257)
    Image.fromarray(_gray(10)).convert("P").save(tmp_path / "gray" / "palette.png")
    Image.fromarray(_rgb(11)).convert("RGBA").save(tmp_path / "rgb" / "alpha.png")
    scan = scan_image_folder(tmp_path, mode="RGB", size=(4, 3))
    assert len(scan.paths) == 2 * len(extensions) + 3
    for path, record in zip(scan.paths, scan.records, strict=True):
        got = decode_scanned(path, record, scan.mode, scan.size)
        assert np.array_equal(got, decode_file(path, scan.mode, scan.size)), path.name
