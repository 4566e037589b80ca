"""Read inputs (and labels) from ``.npy`` / ``.npz`` files.

* ``.npy`` — one input array, unlabelled.
* ``.npz`` — either one set, inputs under ``x`` or ``images`` and optional labels under ``y``
  or ``labels``; or a ready split, ``x_train`` and ``x_test`` with optional ``y_train`` and
  ``y_test`` (give both label arrays or neither). Other keys are ignored (never read).

Inputs are images, vectors (a table) or sequences (:mod:`contrastkit.data.modality`; by default
the modality is inferred from the first input array). Images: the layouts and value ranges of
:mod:`contrastkit.data.arrays` (uint8, integers in [0, 255], floats in [0, 1]); vectors and
sequences: finite numbers. Strings, booleans, complex numbers and the like are refused.

Labels: integer class ids (see :mod:`contrastkit.data.assemble`): all ``-1`` (unlabelled) or
all ``>= 0``, any values, not necessarily contiguous. They are renumbered ``0 .. C-1`` in
ascending order over the union of the train and test labels; the original ids, as strings,
become the class names (``DatasetSplits.class_names``), so reports show the user's own ids.

Safety: nothing in an array file ever runs code. Files are read without unpickling
(``allow_pickle=False``); a file that is not a numpy ``.npy`` / ``.npz`` (random bytes, a
pickle) and an array of Python objects are refused with our own one-line ValueError, as is a
header that announces more data than the file holds. Every error names the file (and the key).

Memory: every header is read first (for an ``.npz``, only the header of each member is decompressed), and a
file whose arrays would not fit this machine's memory -- as stored plus converted, or twice converted for the
train / test split -- is refused before any data is read (:mod:`contrastkit.memory`; a few MB of compressed
zeros can declare many GiB).
"""

from __future__ import annotations

import functools
import math
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np
from numpy.lib import format as npy_format

from contrastkit.data.assemble import contiguous_labels, labels_to_int64
from contrastkit.data.modality import Converter, converter_for, infer_modality
from contrastkit.memory import check_fits, format_bytes

IMAGE_KEYS = ("x", "images")
LABEL_KEYS = ("y", "labels")
SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
KNOWN_KEYS = IMAGE_KEYS + LABEL_KEYS + SPLIT_KEYS

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members / an empty zip
# What numpy, zipfile and zlib raise on damaged data (a CRC error, an unknown compression
# method, an encrypted member, a header that does not parse, ...).
_READ_ERRORS = (ValueError, OSError, EOFError, RuntimeError, NotImplementedError, KeyError, SyntaxError,
                OverflowError, MemoryError, zipfile.BadZipFile, zlib.error)


class ArraySource(NamedTuple):
    """Inputs in their canonical form (uint8 (N, C, H, W) images, float32 (N, D) vectors or (N, C, T)
    sequences) and int64 (N,) labels (-1 = none); ``test_*`` set when pre-split.

    Labels are already renumbered ``0 .. C-1``; ``class_names`` holds the original ids.
    """

    inputs: np.ndarray
    labels: np.ndarray
    test_inputs: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    class_names: tuple[str, ...] = ()


def _not_numpy(what: str, where: str, kind: str = ".npy/.npz file") -> ValueError:
    return ValueError(f"{where}: {what} is not a valid {kind} (damaged, or a pickle: contrastkit never "
                      f"unpickles array files)")


def _read_failed(what: str, where: str, err: BaseException) -> ValueError:
    detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return ValueError(f"{where}: cannot read {what}: {detail}")


def _check_header(fp: IO[bytes], stored: int, what: str, where: str, kind: str) -> tuple[tuple[int, ...], np.dtype]:
    """Read the .npy header at ``fp``: refuse non-numpy data, object arrays and truncated data; return the
    array's shape and dtype.

    ``stored`` is the size in bytes of this .npy (the file, or the archive member uncompressed).
    """
    try:
        version = npy_format.read_magic(fp)
        reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _, dtype = reader(fp)
        data_bytes = stored - fp.tell()
    except _READ_ERRORS as err:
        raise _not_numpy(what, where, kind) from err
    if dtype.hasobject:
        raise ValueError(f"{where}: {what} is an array of Python objects (dtype {dtype}) that only "
                         f"unpickling could read; contrastkit never unpickles array files: store numbers "
                         f"(uint8 images, integer labels)")
    needed = math.prod(shape) * dtype.itemsize
    if needed > data_bytes:
        raise ValueError(f"{where}: {what} is damaged (truncated?): its header announces shape {shape} of "
                         f"{dtype} ({needed} bytes) but only {max(data_bytes, 0)} bytes follow")
    return tuple(int(v) for v in shape), dtype


class _Header(NamedTuple):
    """What an .npy header announces, and how to open that .npy again to read it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    open_fp: Callable[[], IO[bytes]]
    what: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _header(open_fp: Callable[[], IO[bytes]], stored: int, what: str, where: str,
            kind: str = ".npy/.npz file") -> _Header:
    """Check the header of the .npy that ``open_fp()`` opens (only the header is read, or decompressed)."""
    try:
        fp = open_fp()
    except _READ_ERRORS as err:
        raise _read_failed(what, where, err) from err
    with fp:
        shape, dtype = _check_header(fp, stored, what, where, kind)
    return _Header(shape, dtype, open_fp, what)


def _read_array(header: _Header, where: str) -> np.ndarray:
    """Read the array whose header :func:`_header` checked, without unpickling."""
    try:
        with header.open_fp() as fp:
            return npy_format.read_array(fp, allow_pickle=False)
    except _READ_ERRORS as err:
        raise _read_failed(header.what, where, err) from err


def _converted_itemsize(header: _Header, modality: str) -> int:
    """Bytes per element of an input array in its canonical form: 1 for uint8 images, 4 for float32 vectors
    and sequences. For ``"auto"`` a 2-D integer array may become either (its values decide); 1 is assumed, so
    the estimate stays a lower bound."""
    if modality == "auto":
        return 4 if len(header.shape) == 2 and header.dtype.kind not in "iu" else 1
    return 1 if modality == "images" else 4


def _check_load_memory(headers: dict[str, _Header], path: Path, where: str, modality: str,
                       presplit: bool) -> None:
    """Refuse, before any data is read, a file whose arrays would not fit in memory (see :mod:`contrastkit.memory`).

    The peak while loading is the arrays as stored plus their canonical copies (uint8 images or float32
    vectors; int64 labels); a single set is then copied once more by the train / test split, while the stored
    arrays are gone: peak = max(stored + converted, 2 x converted)."""
    stored = sum(h.nbytes for h in headers.values())
    converted = sum(math.prod(h.shape) * (8 if key in LABEL_KEYS or key.startswith("y_")
                                          else _converted_itemsize(h, modality))
                    for key, h in headers.items())
    needed = max(stored + converted, converted if presplit else 2 * converted)
    arrays = ", ".join(f"{key!r} {h.dtype} {h.shape}" for key, h in headers.items())
    check_fits(needed, f"{where}: '{path}'", f"loading its arrays ({arrays}; {format_bytes(stored)} as stored)",
               hint="use a smaller file, or a folder of image files (streamed from disk)")


def _magic(path: Path, where: str) -> bytes:
    try:
        with open(path, "rb") as fp:
            return fp.read(len(_NPY_MAGIC))
    except OSError as err:
        raise _read_failed(f"array file '{path}'", where, err) from err


def _read_npy(path: Path, where: str, modality: str) -> np.ndarray:
    head = _magic(path, where)
    if head[:4] in _ZIP_MAGICS:
        raise ValueError(f"{where}: '{path}' is an .npz archive, not a single .npy array; rename it to .npz")
    if head != _NPY_MAGIC:
        raise _not_numpy(f"'{path}'", where)
    header = _header(functools.partial(open, path, "rb"), path.stat().st_size, f"'{path}'", where)
    _check_load_memory({"x": header}, path, where, modality, presplit=False)
    return _read_array(header, where)


def _read_npz(path: Path, where: str, modality: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays under ``KNOWN_KEYS`` in the archive, and every key it holds (others are never read).

    Every header is checked first (also against the memory the arrays would take); only then is data read."""
    head = _magic(path, where)
    if head == _NPY_MAGIC:
        raise ValueError(f"{where}: '{path}' is a single .npy array, not an .npz archive; rename it to .npy")
    if head[:4] not in _ZIP_MAGICS:
        raise _not_numpy(f"'{path}'", where)
    try:
        archive = zipfile.ZipFile(path)
    except _READ_ERRORS as err:
        raise _not_numpy(f"'{path}'", where) from err
    with archive:
        members: dict[str, zipfile.ZipInfo] = {}
        for info in archive.infolist():
            members.setdefault(info.filename.removesuffix(".npy"), info)
        headers = {key: _header(functools.partial(archive.open, info), info.file_size, f"{key!r} in '{path}'",
                                where, ".npy array")
                   for key, info in members.items() if key in KNOWN_KEYS}
        _check_load_memory(headers, path, where, modality, presplit="x_train" in headers or "x_test" in headers)
        arrays = {key: _read_array(header, where) for key, header in headers.items()}
    return arrays, sorted(members)


def _one_of(arrays: dict[str, np.ndarray], keys: tuple[str, ...], path: Path, where: str) -> str | None:
    present = [k for k in keys if k in arrays]
    if len(present) > 1:
        raise ValueError(f"{where}: '{path}' holds both {present[0]!r} and {present[1]!r}; keep one")
    return present[0] if present else None


def _converter(modality: str, array: np.ndarray) -> Converter:
    return converter_for(infer_modality(array) if modality == "auto" else modality)


def load_npy(path: Path, where: str = "load_dataset", modality: str = "auto") -> ArraySource:
    array = _read_npy(path, where, modality)
    inputs = _converter(modality, array)(array, f"the array in '{path}'", where)
    return ArraySource(inputs, labels_to_int64(None, len(inputs), "", where))


def load_npz(path: Path, where: str = "load_dataset", modality: str = "auto") -> ArraySource:
    """Inputs in the canonical form of ``modality`` (``"auto"``: :func:`~contrastkit.data.modality.infer_modality`
    of the first input array) and renumbered labels."""
    arrays, keys = _read_npz(path, where, modality)
    has_split = "x_train" in arrays or "x_test" in arrays
    image_key = _one_of(arrays, IMAGE_KEYS, path, where)
    if has_split and image_key is not None:
        raise ValueError(f"{where}: '{path}' holds both {image_key!r} and train/test keys; keep one layout")
    if has_split:
        missing = [k for k in ("x_train", "x_test") if k not in arrays]
        if missing:
            raise ValueError(f"{where}: '{path}' has no {missing[0]!r} key; a split file needs both "
                             f"'x_train' and 'x_test'")
        if ("y_train" in arrays) != ("y_test" in arrays):
            raise ValueError(f"{where}: '{path}' has only one of 'y_train' / 'y_test'; give both or neither")
        parts = []
        convert = _converter(modality, arrays["x_train"])
        for split in ("train", "test"):
            images = convert(arrays[f"x_{split}"], f"'x_{split}' in '{path}'", where)
            labels = labels_to_int64(arrays.get(f"y_{split}"), len(images), f"'y_{split}' in '{path}'", where)
            parts.append((images, labels))
        (train_labels, test_labels), names = contiguous_labels(parts[0][1], parts[1][1])
        return ArraySource(parts[0][0], train_labels, parts[1][0], test_labels, names)
    if image_key is None:
        raise ValueError(f"{where}: '{path}' has no image array; expected a key among "
                         f"{', '.join(IMAGE_KEYS + SPLIT_KEYS)}, found {', '.join(keys) or 'none'}")
    images = _converter(modality, arrays[image_key])(arrays[image_key], f"{image_key!r} in '{path}'", where)
    label_key = _one_of(arrays, LABEL_KEYS, path, where)
    labels = labels_to_int64(None if label_key is None else arrays[label_key], len(images),
                             f"{label_key!r} in '{path}'", where)
    (labels,), names = contiguous_labels(labels)
    return ArraySource(images, labels, class_names=names)
