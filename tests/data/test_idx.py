"""IDX files and folders: exact values from hand-built files, one-line errors naming the file, load_dataset and CLI."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest
import torch
import yaml

import contrastkit.data.idx as idx_module
from contrastkit.data import load_dataset
from contrastkit.data.idx import find_idx_files, holds_idx_files, read_idx, read_idx_folder
from contrastkit.memory import NotEnoughMemoryError
from tests.data.idx_files import idx_bytes, tiny_set, write_idx, write_idx_folder


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------------------------- one file


def test_hand_written_bytes_read_as_the_format_says(tmp_path) -> None:
    # int16, 1 dimension of 3: 00 00 0b 01 | 00 00 00 03 | 00 01 ff fe 01 02 -> 1, -2, 258 (big-endian)
    path = write_idx(tmp_path / "a-idx1-ubyte", bytes.fromhex("00000b01 00000003 0001 fffe 0102"))
    values = read_idx(path)
    assert values.dtype == np.int16 and values.dtype.isnative and values.tolist() == [1, -2, 258]
    # uint8, 2 x 3: the values in C order
    path = write_idx(tmp_path / "b-idx3-ubyte.gz", bytes.fromhex("00000802 00000002 00000003 000102 0a0bff"))
    assert read_idx(path).tolist() == [[0, 1, 2], [10, 11, 255]]
    # float32 1.5 = 3fc00000, float64 -0.25 = bfd0000000000000
    assert read_idx(write_idx(tmp_path / "c", bytes.fromhex("00000d01 00000001 3fc00000"))).tolist() == [1.5]
    assert read_idx(write_idx(tmp_path / "d", bytes.fromhex("00000e01 00000001 bfd0000000000000"))).tolist() == [-0.25]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_every_type_round_trips_gzipped_or_not(tmp_path, dtype, gz) -> None:
    values = (np.arange(24).reshape(2, 3, 4) * 7 - (0 if dtype == np.uint8 else 40)).astype(dtype)
    path = write_idx(tmp_path / "x-idx3-ubyte", values, gz=gz)  # gzip recognised by its bytes, not its name
    read = read_idx(path)
    assert read.dtype == np.dtype(dtype) and read.dtype.isnative and read.shape == (2, 3, 4)
    assert np.array_equal(read, values)


def test_a_file_shorter_than_its_header_says_is_refused_before_allocating(tmp_path, monkeypatch) -> None:
    def no_allocation(*args, **kwargs):
        raise AssertionError("the size check must come before the memory check and the allocation")

    monkeypatch.setattr(idx_module, "check_fits", no_allocation)
    head = bytes.fromhex("00000803") + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    plain = write_idx(tmp_path / "train-images-idx3-ubyte", head + bytes(1000))
    with pytest.raises(ValueError) as info:
        read_idx(plain, "load_dataset")
    assert _one_line(info) == (f"load_dataset: '{plain}' does not match its header: expected 47,040,016 bytes for "
                               f"60,000 x 28 x 28 uint8, the file has 1,016")
    packed = write_idx(tmp_path / "train-images-idx3-ubyte.gz", head + bytes(1000))
    size = packed.stat().st_size
    with pytest.raises(ValueError) as info:
        read_idx(packed)
    assert _one_line(info) == (f"read_idx: '{packed}' does not match its header: expected 47,040,016 bytes for "
                               f"60,000 x 28 x 28 uint8, more than its {size:,} gzipped bytes can hold (deflate "
                               f"expands at most 1032-fold)")


def test_truncated_and_overlong_files(tmp_path) -> None:
    head = bytes.fromhex("00000803 00000003 0000001c 0000001c")  # 3 x 28 x 28 uint8: 16 + 2,352 bytes
    packed = write_idx(tmp_path / "short.gz", head + bytes(1000))  # a whole gzip stream of too few bytes
    with pytest.raises(ValueError) as info:
        read_idx(packed)
    assert _one_line(info) == (f"read_idx: '{packed}' is truncated: expected 2,368 bytes for 3 x 28 x 28 uint8, "
                               f"the file has 1,016 (decompressed)")
    long_plain = write_idx(tmp_path / "long", head + bytes(2352 + 5))
    with pytest.raises(ValueError, match=re.escape(f"'{long_plain}' does not match its header: expected 2,368 bytes "
                                                   f"for 3 x 28 x 28 uint8, the file has 2,373")):
        read_idx(long_plain)
    long_packed = write_idx(tmp_path / "long.gz", head + bytes(2352 + 5))
    with pytest.raises(ValueError, match=re.escape(f"'{long_packed}' does not match its header: expected 2,368 bytes "
                                                   f"for 3 x 28 x 28 uint8, the file has more (decompressed)")):
        read_idx(long_packed)
    header_only = write_idx(tmp_path / "cut", bytes.fromhex("00000803 00000003 0000"))
    with pytest.raises(ValueError) as info:
        read_idx(header_only)
    assert _one_line(info) == (f"read_idx: '{header_only}' is truncated: its header announces 3 dimensions "
                               f"(16 header bytes), the file has 10")


@pytest.mark.parametrize("start", ["", "0000", "01000801", "00000701", "00000800", "89504e47"])
def test_a_wrong_magic_is_not_an_idx_file(tmp_path, start) -> None:
    path = write_idx(tmp_path / "odd-idx1-ubyte", bytes.fromhex(start) + bytes(8))
    with pytest.raises(ValueError) as info:
        read_idx(path)
    shown = (bytes.fromhex(start) + bytes(8))[:4].hex(" ")
    assert _one_line(info).startswith(f"read_idx: '{path}' is not an IDX file: it starts with {shown}, expected 00 00")


def test_a_corrupt_or_cut_gzip_file_is_one_line_naming_it(tmp_path) -> None:
    good = gzip.compress(idx_bytes(np.arange(5000, dtype=np.int32)), mtime=0)
    corrupt = bytearray(good)
    corrupt[len(good) // 2:len(good) // 2 + 16] = b"\xff" * 16
    for name, data in (("corrupt.gz", bytes(corrupt)), ("cut.gz", good[:len(good) // 2]),
                       ("crc.gz", good[:-8] + b"\0\0\0\0" + good[-4:])):
        path = write_idx(tmp_path / name, data, gz=False)
        with pytest.raises(ValueError) as info:
            read_idx(path)
        assert _one_line(info).startswith(f"read_idx: '{path}' is a corrupt or truncated gzip file (")


def test_a_header_beyond_memory_is_refused_before_reading(tmp_path, monkeypatch) -> None:
    import contrastkit.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda *args, **kwargs: 1000)
    path = write_idx(tmp_path / "big-idx3-ubyte", np.zeros((4, 28, 28), dtype=np.uint8))
    with pytest.raises(NotEnoughMemoryError, match=re.escape(f"'{path}'")):
        read_idx(path)


# ----------------------------------------------------------------------------------------------- a folder


def test_a_folder_of_the_four_files_in_each_naming(tmp_path) -> None:
    train_x, train_y, test_x, test_y = tiny_set()
    for folder, kwargs in ((tmp_path / "plain", {"gz": False}), (tmp_path / "gz", {}),
                           (tmp_path / "emnist", {"prefix": "emnist-letters-", "test_word": "test"})):
        write_idx_folder(folder, train_x, train_y, test_x, test_y, **kwargs)
        assert holds_idx_files(folder)
        read = read_idx_folder(folder)
        assert read.train_images.shape == (24, 1, 8, 8) and read.train_images.dtype == np.uint8
        assert np.array_equal(read.train_images[:, 0], train_x) and np.array_equal(read.test_images[:, 0], test_x)
        assert read.train_labels.dtype == np.int64 and read.train_labels.tolist() == train_y.tolist()
        assert read.test_labels.tolist() == test_y.tolist()
    dotted = tmp_path / "dotted"  # as some unpackers name MNIST's files
    dotted.mkdir()
    for name, values in (("train-images.idx3-ubyte", train_x), ("train-labels.idx1-ubyte", train_y),
                         ("t10k-images.idx3-ubyte", test_x), ("t10k-labels.idx1-ubyte", test_y)):
        write_idx(dotted / name, values)
    assert find_idx_files(dotted).test_labels == dotted / "t10k-labels.idx1-ubyte"
    assert not holds_idx_files(tmp_path) and not holds_idx_files(tmp_path / "nothing")


def test_folder_errors_name_the_folder_and_the_files(tmp_path) -> None:
    train_x, train_y, test_x, test_y = tiny_set()
    folder = write_idx_folder(tmp_path / "f", train_x, train_y, test_x, test_y)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError) as info:
        find_idx_files(folder)
    assert _one_line(info).startswith(f"find_idx_files: '{folder}' is an IDX folder without the train labels "
                                      f"(train-labels-idx1-ubyte[.gz]); it holds t10k-images-idx3-ubyte.gz, "
                                      f"t10k-labels-idx1-ubyte.gz, train-images-idx3-ubyte.gz (")
    write_idx(folder / "train-labels-idx1-ubyte.gz", train_y)
    write_idx(folder / "train-labels-idx1-ubyte", train_y)
    with pytest.raises(ValueError) as info:
        find_idx_files(folder)
    assert _one_line(info) == (f"find_idx_files: '{folder}' holds 2 files for the train labels "
                               f"(train-labels-idx1-ubyte, train-labels-idx1-ubyte.gz); an IDX folder holds one set: "
                               f"keep one of them")
    (folder / "train-labels-idx1-ubyte").unlink()
    (folder / "t10k-images-idx3-ubyte.gz").rename(folder / "emnist-digits-test-images-idx3-ubyte.gz")
    with pytest.raises(ValueError, match=re.escape(f"'{folder}' mixes files of different sets")):
        find_idx_files(folder)


@pytest.mark.parametrize(("role", "values", "message"), [
    ("train-labels", np.arange(23, dtype=np.uint8) % 3,
     "'{folder}/train-labels-idx1-ubyte.gz' holds 23 labels, its images file 'train-images-idx3-ubyte.gz' 24 "
     "images; they must be equal"),
    ("t10k-labels", np.array([0, 0, 1, -1, 2, 2], dtype=np.int8),
     "'{folder}/t10k-labels-idx1-ubyte.gz' holds label -1 at index 3; labels must be whole numbers >= 0 (class ids)"),
    ("t10k-labels", np.array([0, 0, 1, 1, 2, 2.5]),
     "'{folder}/t10k-labels-idx1-ubyte.gz' holds label 2.5 at index 5; labels must be whole numbers >= 0"),
    ("t10k-labels", np.array([0, 0, 1, 1, np.nan, 2], dtype=np.float32),
     "'{folder}/t10k-labels-idx1-ubyte.gz' holds label nan at index 4"),
    ("t10k-labels", np.zeros((6, 1), dtype=np.uint8),
     "'{folder}/t10k-labels-idx1-ubyte.gz' holds an array of shape (6, 1); a labels file (idx1)"),
    ("train-images", np.zeros((24, 8, 8), dtype=np.int16),
     "'{folder}/train-images-idx3-ubyte.gz' holds int16 images; IDX images must be uint8 (type byte 08)"),
    ("train-images", np.zeros((24, 64), dtype=np.uint8),
     "'{folder}/train-images-idx3-ubyte.gz' holds an array of 2 dimension(s) (24, 64); an images file (idx3) holds "
     "N x H x W"),
    ("t10k-images", np.zeros((6, 8, 9), dtype=np.uint8),
     "the train images ('train-images-idx3-ubyte.gz') are 8 x 8 and the test images ('t10k-images-idx3-ubyte.gz') "
     "8 x 9 in '{folder}'"),
])
def test_bad_contents_are_one_line_naming_the_file(tmp_path, role, values, message) -> None:
    train_x, train_y, test_x, test_y = tiny_set()
    folder = write_idx_folder(tmp_path / "f", train_x, train_y, test_x, test_y)
    kind = "idx3" if role.endswith("images") else "idx1"
    write_idx(folder / f"{role}-{kind}-ubyte.gz", values)
    with pytest.raises(ValueError) as info:
        load_dataset(folder)
    assert _one_line(info).startswith("load_dataset: ")
    assert message.format(folder=folder) in str(info.value)


def test_whole_float_labels_are_class_ids(tmp_path) -> None:
    train_x, train_y, test_x, test_y = tiny_set()
    folder = write_idx_folder(tmp_path / "f", train_x, train_y.astype(np.float64), test_x, test_y.astype(np.int32))
    data = load_dataset(folder)
    assert data.train.labels.tolist() == train_y.tolist() and data.test.labels.tolist() == test_y.tolist()


# ----------------------------------------------------------------------------------------------- load_dataset


@pytest.fixture
def idx_folder(tmp_path):
    train_x, train_y, test_x, test_y = tiny_set()
    # labels 1, 3, 7 (as EMNIST letters start at 1): renumbered 0 .. 2 and named by the ids, as an .npz's are
    ids = np.array([1, 3, 7], dtype=np.uint8)
    folder = write_idx_folder(tmp_path / "my-idx", train_x, ids[train_y], test_x, ids[test_y])
    return folder, (train_x, train_y, test_x, test_y)


def test_load_dataset_keeps_the_folders_split(idx_folder) -> None:
    folder, (train_x, train_y, test_x, test_y) = idx_folder
    data = load_dataset(str(folder))
    assert data.name == "my-idx" and data.num_classes == 3 and data.class_names == ("1", "3", "7")
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape == (24, 1, 8, 8)
    assert np.array_equal(data.train.images[:, 0].numpy(), train_x)
    assert np.array_equal(data.test.images[:, 0].numpy(), test_x)
    assert data.train.labels.dtype == torch.int64 and data.train.labels.tolist() == train_y.tolist()
    assert data.test.labels.tolist() == test_y.tolist()
    assert data.train_indices is None and data.test_indices is None  # the source came split
    # as for an .npz with x_train / x_test, `test_fraction` and the split seed do not apply
    other = load_dataset(folder, test_fraction=0.5, seed=3)
    assert torch.equal(other.train.images, data.train.images) and torch.equal(other.test.labels, data.test.labels)


def test_size_mode_and_classes_apply_as_for_other_images(idx_folder, monkeypatch) -> None:
    folder, (_, _, test_x, test_y) = idx_folder
    rgb = load_dataset(folder, mode="RGB", size=4)
    assert rgb.train.images.shape == (24, 3, 4, 4) and rgb.test.images.shape == (6, 3, 4, 4)
    assert torch.equal(rgb.train.images[:, 0], rgb.train.images[:, 2])
    kept = load_dataset(folder, classes="7,1")
    assert kept.class_names == ("1", "7") and kept.num_classes == 2
    assert kept.test.labels.tolist() == [0, 0, 1, 1]
    assert np.array_equal(kept.test.images[:, 0].numpy(), test_x[test_y != 1])
    with pytest.raises(ValueError, match="`stream` applies to image folders"):
        load_dataset(folder, stream=True)
    with pytest.raises(ValueError, match="is a folder of IDX images; `modality` 'vectors' applies to array files"):
        load_dataset(folder, modality="vectors")
    import contrastkit.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda *args, **kwargs: 1_000_000)
    with pytest.raises(NotEnoughMemoryError, match="`size` 512 x 512"):
        load_dataset(folder, size=512)


def test_an_idx_folder_is_not_taken_for_an_image_folder(idx_folder) -> None:
    folder, _ = idx_folder
    (folder / "stray").mkdir()  # a sub-folder (no images): still the IDX set
    assert load_dataset(folder).num_classes == 3


def test_train_and_eval_from_the_command_line(idx_folder, tmp_path, capsys, monkeypatch) -> None:
    from contrastkit.cli import main

    folder, _ = idx_folder
    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--data", str(folder), "--epochs", "1", "--batch-size", "8",
                 "--out", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert yaml.safe_load((out / "config.yaml").read_text())["data"] == str(folder.resolve())
    code = main(["eval", str(out), "--no-plots", "--no-baselines"])
    captured = capsys.readouterr()
    assert code == 0 and "warning" not in captured.err, captured.err
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    code = main(["train", "--data", str(folder), "--epochs", "1", "--out", str(tmp_path / "again"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and f"'{folder}' is an IDX folder without the test labels" in err and err.count("\n") == 1
