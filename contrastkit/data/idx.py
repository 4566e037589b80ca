"""IDX files -- the format of MNIST, Fashion-MNIST, KMNIST and EMNIST -- and folders that hold a split set of them.

An IDX file is a header followed by the values, all big-endian::

    bytes 0, 1       0x00 0x00
    byte 2           the type of the values: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte 3           d, the number of dimensions
    4 bytes x d      the size of each dimension, uint32
    the values       prod(sizes) of them, in C order (the last dimension varies fastest)

Image files (``*-idx3-ubyte``) hold (N, H, W) uint8, label files (``*-idx1-ubyte``) hold (N,). A file may be
gzipped (recognised by its first two bytes, ``1f 8b``, whatever its name). Reading never runs anything from the file:
the header is unpacked with :mod:`struct` and the values are the file's bytes viewed as the header's type (numpy).
What the header claims is checked against the file before anything is allocated -- its exact size for a plain file,
what its compressed size can hold for a gzipped one (deflate expands at most 1032-fold) -- and then against what the
file really holds; every failure is a one-line ValueError that names the file and what was expected.

A folder of IDX files (:func:`find_idx_files`, :func:`read_idx_folder`) holds one set with its own split:
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``
(each gzipped ``.gz`` or not; ``test-`` for ``t10k-``; a dot for the dash before ``idx`` as some unpackers write it;
and one prefix shared by the four, as EMNIST's ``emnist-letters-train-images-idx3-ubyte.gz``).
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from contrastkit.memory import check_fits, format_bytes

__all__ = ["IDX_DTYPES", "IDX_FILE_NAMES", "IdxFiles", "IdxSplits", "find_idx_files", "holds_idx_files", "read_idx",
           "read_idx_folder"]

#: the type byte of an IDX header -> the big-endian numpy type of the values
IDX_DTYPES: dict[int, np.dtype] = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
                                   0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
_GZIP_MAGIC = b"\x1f\x8b"
#: deflate codes at best 258 bytes in about 2 bits (1032-fold); a gzipped file cannot hold more than this many bytes
#: per compressed byte, plus a little for its own header and trailer
_MAX_DEFLATE_RATIO = 1032
_READ_CHUNK = 1 << 23  # bytes decompressed per read: bounds the temporary copy gzip makes
#: any file named like an IDX file (``...-idx3-ubyte``, ``....idx1-ubyte``, gzipped or not)
_ANY_IDX = re.compile(r"[-.]idx\d+-ubyte(\.gz)?$", re.IGNORECASE)
#: the four roles in a folder: an optional prefix ending in - _ or ., the split, the kind (images idx3, labels idx1)
_ROLE_NAME = re.compile(r"^(?P<prefix>(?:.*[-_.])?)(?P<split>train|t10k|test)-(?P<kind>images[-.]idx3|labels[-.]idx1)"
                        r"-ubyte(?:\.gz)?$", re.IGNORECASE)
_ROLES = (("train", "images"), ("train", "labels"), ("test", "images"), ("test", "labels"))
_EXPECTED_NAMES = {("train", "images"): "train-images-idx3-ubyte", ("train", "labels"): "train-labels-idx1-ubyte",
                   ("test", "images"): "t10k-images-idx3-ubyte", ("test", "labels"): "t10k-labels-idx1-ubyte"}
#: the four file names of an IDX folder, in the order train images, train labels, test images, test labels
IDX_FILE_NAMES: tuple[str, ...] = tuple(_EXPECTED_NAMES[role] for role in _ROLES)


def _describe(shape: tuple[int, ...], type_byte: int) -> str:
    return f"{' x '.join(f'{s:,}' for s in shape)} {_TYPE_NAMES[type_byte]}"


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of the stream)."""
    parts, got = [], 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _fill(stream: BinaryIO, buffer: np.ndarray) -> int:
    """Read into the uint8 ``buffer`` until it is full or the stream ends; the number of bytes read."""
    view, got = memoryview(buffer), 0
    while got < len(view):
        n = stream.readinto(view[got:got + _READ_CHUNK])
        if not n:
            break
        got += n
    return got


def read_idx(path: str | Path, where: str = "read_idx") -> np.ndarray:
    """The values of one IDX file (gzipped or not), native-endian, in the shape its header gives.

    Raises:
        ValueError: one line naming the file: not an IDX file (its first bytes), a header that claims more (or
            fewer) bytes than the file holds, a corrupt or truncated gzip stream, an unreadable file.
        contrastkit.memory.NotEnoughMemoryError: (a ValueError) the values would not fit in memory.
    """
    path = Path(path)
    try:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            if not gzipped:
                return _read_stream(raw, path, path.stat().st_size, False, where)
            with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
                return _read_stream(stream, path, path.stat().st_size, True, where)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ValueError(f"{where}: '{path}' is a corrupt or truncated gzip file ({detail})") from None
    except OSError as exc:
        raise ValueError(f"{where}: cannot read '{path}': {exc.strerror or exc}") from None


def _read_stream(stream: BinaryIO, path: Path, file_size: int, gzipped: bool, where: str) -> np.ndarray:
    """Read header and values of the IDX file ``path`` from ``stream`` (its bytes, decompressed if ``gzipped``)."""
    head = _read_up_to(stream, 4)
    if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in IDX_DTYPES or head[3] == 0:
        raise ValueError(f"{where}: '{path}' is not an IDX file: it starts with {head.hex(' ') or 'nothing'}, expected "
                         f"00 00, a type byte (08 uint8, 09 int8, 0b int16, 0c int32, 0d float32, 0e float64) and the "
                         f"number of dimensions")
    type_byte, ndim = head[2], head[3]
    dims = _read_up_to(stream, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"{where}: '{path}' is truncated: its header announces {ndim} dimensions "
                         f"({4 + 4 * ndim} header bytes), the file has {4 + len(dims)}")
    shape = struct.unpack(f">{ndim}I", dims)
    dtype = IDX_DTYPES[type_byte]
    header_bytes = 4 + 4 * ndim
    nbytes = math.prod(shape) * dtype.itemsize
    expected = f"expected {header_bytes + nbytes:,} bytes for {_describe(shape, type_byte)}"
    if not gzipped and file_size != header_bytes + nbytes:
        raise ValueError(f"{where}: '{path}' does not match its header: {expected}, the file has {file_size:,}")
    if gzipped and header_bytes + nbytes > _MAX_DEFLATE_RATIO * file_size + 1024:
        raise ValueError(f"{where}: '{path}' does not match its header: {expected}, more than its {file_size:,} "
                         f"gzipped bytes can hold (deflate expands at most {_MAX_DEFLATE_RATIO}-fold)")
    check_fits(nbytes, f"{where}: '{path}'", f"its {_describe(shape, type_byte)} values ({format_bytes(nbytes)})")
    buffer = np.empty(nbytes, dtype=np.uint8)
    got = _fill(stream, buffer)
    if got < nbytes:
        raise ValueError(f"{where}: '{path}' is truncated: {expected}, the file has {header_bytes + got:,}"
                         f"{' (decompressed)' if gzipped else ''}")
    if gzipped and stream.read(1):  # (a plain file's size was checked above)
        raise ValueError(f"{where}: '{path}' does not match its header: {expected}, the file has more "
                         f"(decompressed)")
    values = buffer.view(dtype).reshape(shape)
    return values if dtype.itemsize == 1 else values.astype(dtype.newbyteorder("="))


def holds_idx_files(folder: Path) -> bool:
    """True when ``folder`` holds (directly) a file named like an IDX file (``*-idx3-ubyte``, ``*-idx1-ubyte.gz``)."""
    folder = Path(folder)
    try:
        return folder.is_dir() and any(_ANY_IDX.search(p.name) and p.is_file() for p in folder.iterdir()
                                       if not p.name.startswith("."))
    except OSError:
        return False


@dataclass(frozen=True)
class IdxFiles:
    """The four files of an IDX folder."""

    train_images: Path
    train_labels: Path
    test_images: Path
    test_labels: Path


def find_idx_files(folder: str | Path, where: str = "find_idx_files") -> IdxFiles:
    """The train / test images / labels files of ``folder`` (see the module docstring for the names).

    Raises:
        ValueError: one line naming the folder: a role with no file (what is missing, what the folder holds), a role
            with several candidates, or files whose prefixes differ (two sets in one folder).
    """
    folder = Path(folder)
    try:
        names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    except OSError as exc:
        raise ValueError(f"{where}: cannot list '{folder}': {exc.strerror or exc}") from None
    found: dict[tuple[str, str], list[tuple[str, str]]] = {role: [] for role in _ROLES}  # role -> [(name, prefix)]
    for name in names:
        match = _ROLE_NAME.match(name)
        if match:
            split = "train" if match["split"].lower() == "train" else "test"
            found[(split, match["kind"][:6].lower())].append((name, match["prefix"]))
    for role in _ROLES:
        if len(found[role]) > 1:
            listed = ", ".join(name for name, _ in found[role])
            raise ValueError(f"{where}: '{folder}' holds {len(found[role])} files for the {' '.join(role)} ({listed}); "
                             f"an IDX folder holds one set: keep one of them")
    missing = [role for role in _ROLES if not found[role]]
    if missing:
        prefix = next((found[role][0][1] for role in _ROLES if found[role]), "")
        wanted = ", ".join(f"{' '.join(role)} ({prefix}{_EXPECTED_NAMES[role]}[.gz])" for role in missing)
        idx_names = [name for name in names if _ANY_IDX.search(name)]
        holds = ", ".join(idx_names) if idx_names else "no IDX files"
        raise ValueError(f"{where}: '{folder}' is an IDX folder without the {wanted}; it holds {holds} (an IDX folder "
                         f"holds the images and labels of both splits: {', '.join(IDX_FILE_NAMES)}, each gzipped or "
                         f"not)")
    prefixes = {found[role][0][1].lower() for role in _ROLES}
    if len(prefixes) > 1:
        listed = ", ".join(found[role][0][0] for role in _ROLES)
        raise ValueError(f"{where}: '{folder}' mixes files of different sets ({listed}): their prefixes differ; keep "
                         f"one set per folder")
    return IdxFiles(*(folder / found[role][0][0] for role in _ROLES))


@dataclass(frozen=True)
class IdxSplits:
    """The two splits of an IDX folder as its files hold them (labels not renumbered)."""

    train_images: np.ndarray  # uint8 (N, 1, H, W)
    train_labels: np.ndarray  # int64 (N,), >= 0
    test_images: np.ndarray  # uint8 (M, 1, H, W)
    test_labels: np.ndarray  # int64 (M,), >= 0
    files: IdxFiles


def _images(path: Path, where: str) -> np.ndarray:
    values = read_idx(path, where)
    if values.ndim != 3:
        raise ValueError(f"{where}: '{path}' holds an array of {values.ndim} dimension(s) "
                         f"{tuple(values.shape)}; an images file (idx3) holds N x H x W")
    if values.dtype != np.uint8:
        raise ValueError(f"{where}: '{path}' holds {values.dtype} images; IDX images must be uint8 (type byte 08)")
    return values[:, None]  # (N, 1, H, W), a view


def _labels(path: Path, count: int, images: Path, where: str) -> np.ndarray:
    values = read_idx(path, where)
    if values.ndim != 1:
        raise ValueError(f"{where}: '{path}' holds an array of shape {tuple(values.shape)}; a labels file (idx1) "
                         f"holds one class id per image")
    if len(values) != count:
        raise ValueError(f"{where}: '{path}' holds {len(values):,} labels, its images file '{images.name}' "
                         f"{count:,} images; they must be equal")
    bad = values < 0
    if values.dtype.kind == "f":  # NaN and inf are not whole numbers
        bad |= ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: '{path}' holds label {values[first].item()!r} at index {first:,}; labels must "
                         f"be whole numbers >= 0 (class ids)")
    return values.astype(np.int64)


def read_idx_folder(folder: str | Path, where: str = "read_idx_folder") -> IdxSplits:
    """The images (uint8 (N, 1, H, W)) and labels (int64, as stored, >= 0) of both splits of an IDX folder.

    Raises:
        ValueError: one line naming the folder or the file: the errors of :func:`find_idx_files` and
            :func:`read_idx`, images that are not uint8 N x H x W, labels that are not whole numbers >= 0 or not
            one per image, and train and test images of different sizes.
    """
    files = find_idx_files(folder, where)
    train_images = _images(files.train_images, where)
    test_images = _images(files.test_images, where)
    if train_images.shape[2:] != test_images.shape[2:]:
        raise ValueError(f"{where}: the train images ('{files.train_images.name}') are "
                         f"{' x '.join(map(str, train_images.shape[2:]))} and the test images "
                         f"('{files.test_images.name}') {' x '.join(map(str, test_images.shape[2:]))} in '{folder}'; "
                         f"both splits must have one size")
    train_labels = _labels(files.train_labels, len(train_images), files.train_images, where)
    test_labels = _labels(files.test_labels, len(test_images), files.test_images, where)
    return IdxSplits(train_images, train_labels, test_images, test_labels, files)
