"""Write small IDX files byte by byte for the tests (the header packed by hand, as the format describes it)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

#: numpy type -> the IDX type byte
TYPE_BYTES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
              np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(values: np.ndarray) -> bytes:
    """The IDX encoding of ``values``: 00 00, type byte, d, d big-endian uint32 sizes, big-endian values."""
    values = np.asarray(values)
    header = bytes([0, 0, TYPE_BYTES[values.dtype], values.ndim]) + struct.pack(f">{values.ndim}I", *values.shape)
    return header + values.astype(values.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, values: np.ndarray | bytes, gz: bool | None = None) -> Path:
    """Write ``values`` (an array, or raw bytes as they are) to ``path``, gzipped when ``gz`` (default: the name
    ends in .gz)."""
    data = values if isinstance(values, bytes) else idx_bytes(values)
    if gz if gz is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


def write_idx_folder(folder: Path, train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
                     test_labels: np.ndarray, *, gz: bool = True, prefix: str = "", test_word: str = "t10k") -> Path:
    """An IDX folder: train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-... (or ``test_word``)."""
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(folder / f"{prefix}train-images-idx3-ubyte{ext}", train_images)
    write_idx(folder / f"{prefix}train-labels-idx1-ubyte{ext}", train_labels)
    write_idx(folder / f"{prefix}{test_word}-images-idx3-ubyte{ext}", test_images)
    write_idx(folder / f"{prefix}{test_word}-labels-idx1-ubyte{ext}", test_labels)
    return folder


def tiny_set(classes: int = 3, train_per_class: int = 8, test_per_class: int = 2, side: int = 8,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """uint8 (N, side, side) images with a bright column block per class, uint8 labels 0 .. classes-1 (both splits)."""
    rng = np.random.default_rng(seed)

    def part(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(classes, dtype=np.uint8), per_class)
        images = rng.integers(0, 60, size=(len(labels), side, side)).astype(np.uint8)
        for i, y in enumerate(labels):
            images[i, :, int(y) % side] = 250
        return images, labels

    return (*part(train_per_class), *part(test_per_class))
