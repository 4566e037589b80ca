"""Read inputs (and labels) from ``.npy`` / ``.npz`` files.

* ``.npy`` — one input array, unlabelled.
* ``.npz`` — either one set, inputs under ``x`` or ``images`` and optional labels under ``y``
  or ``labels``; or a ready split, ``x_train`` and ``x_test`` with optional ``y_train`` and
  ``y_test`` (give both label arrays or neither).
* Named fields (:mod:`contrastkit.data.fields`): a sample may hold several inputs, e.g. ``fields="image,caption"``
  reads ``image`` and ``caption`` (one set) or ``image_train`` / ``image_test`` and ``caption_train`` /
  ``caption_test`` (a ready split); every field has one row per sample. Labels keep their keys.
  A key that no field (and no label) takes is an error naming it, never silently dropped (and never read).

Inputs are images, vectors (a table), sequences or text (:mod:`contrastkit.data.modality`; by default
each field's modality is inferred from its first array; :mod:`contrastkit.data.text` for text). Images: the layouts
and value ranges of :mod:`contrastkit.data.arrays` (uint8, integers in [0, 255], floats in [0, 1]); vectors and
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
from contrastkit.data.text import is_text, pad_to
from contrastkit.memory import check_fits, format_bytes

IMAGE_KEYS = ("x", "images")  # the default field ``x`` of one set ("images": its other name)
LABEL_KEYS = ("y", "labels")
SPLIT_LABEL_KEYS = ("y_train", "y_test")
SPLITS = ("train", "test")

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members / an empty zip
# What numpy, zipfile and zlib raise on damaged data (a CRC error, an unknown compression
# method, an encrypted member, a header that does not parse, ...).
_READ_ERRORS = (ValueError, OSError, EOFError, RuntimeError, NotImplementedError, KeyError, SyntaxError,
                OverflowError, MemoryError, zipfile.BadZipFile, zlib.error)


class ArraySource(NamedTuple):
    """Each field in its canonical form (uint8 (N, C, H, W) images, float32 (N, D) vectors or (N, C, T)
    sequences, uint8 / int32 (N, L) text), by name with the default field first, and int64 (N,) labels
    (-1 = none); ``test_*`` set when pre-split.

    Labels are already renumbered ``0 .. C-1``; ``class_names`` holds the original ids.
    """

    fields: dict[str, np.ndarray]
    labels: np.ndarray
    test_fields: dict[str, np.ndarray] | None = None
    test_labels: np.ndarray | None = None
    class_names: tuple[str, ...] = ()

    @property
    def inputs(self) -> np.ndarray:
        """The default field."""
        return next(iter(self.fields.values()))


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
    and sequences; text: about one byte per character of strings, 8 per token id. For ``"auto"`` a 2-D integer
    array may become either images or vectors (its values decide); 1 is assumed, so the estimate stays a lower
    bound."""
    if header.dtype.kind in "US":  # strings (N,): one UTF-8 byte per character at least
        return header.dtype.itemsize // (4 if header.dtype.kind == "U" else 1)
    if modality == "text":
        return 1 if header.dtype == np.uint8 else 8
    if modality == "auto":
        return 4 if len(header.shape) == 2 and header.dtype.kind not in "iu" else 1
    return 1 if modality == "images" else 4


def _check_load_memory(headers: dict[str, _Header], path: Path, where: str, modalities: dict[str, str],
                       presplit: bool) -> None:
    """Refuse, before any data is read, a file whose arrays would not fit in memory (see :mod:`contrastkit.memory`).

    ``modalities``: the modality of each key's field ("labels" for labels). The peak while loading is the arrays
    as stored plus their canonical copies (uint8 images or float32 vectors; int64 labels); a single set is then
    copied once more by the train / test split, while the stored arrays are gone:
    peak = max(stored + converted, 2 x converted)."""
    stored = sum(h.nbytes for h in headers.values())
    converted = sum(math.prod(h.shape) * (8 if modalities[key] == "labels"
                                          else _converted_itemsize(h, modalities[key]))
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
    _check_load_memory({"x": header}, path, where, {"x": modality}, presplit=False)
    return _read_array(header, where)


class _Layout(NamedTuple):
    """Which key of an ``.npz`` goes where: ``keys[(field, split)]`` (split "all" for one set) and the label keys."""

    presplit: bool
    keys: dict[tuple[str, str], str]
    labels: dict[str, str]  # split ("all" / "train" / "test") -> key


def _no_field_takes(key: str, fields: dict[str, str], path: Path, where: str) -> ValueError:
    named = ", ".join(fields)
    wanted = ",".join([*fields, key.removesuffix("_train").removesuffix("_test")])
    return ValueError(f"{where}: {key!r} in '{path}' is taken by no field (this load reads the field(s) {named}, "
                      f"with labels under y / labels or y_train / y_test); to load it, name its field in the "
                      f"`fields` setting (--fields {wanted} on the command line, fields='{wanted}' in Python or "
                      f"YAML), or remove it from the file")


def _layout(members: list[str], fields: dict[str, str], path: Path, where: str) -> _Layout:
    """Assign every key of the archive to a field or to the labels; a key nobody takes is an error naming it."""
    split_keys = {f"{name}_{split}": (name, split) for name in fields for split in SPLITS}
    presplit = any(key in split_keys for key in members)
    keys: dict[tuple[str, str], str] = {}
    labels: dict[str, str] = {}
    for key in members:
        if presplit and key in split_keys:
            keys[split_keys[key]] = key
        elif presplit and key in SPLIT_LABEL_KEYS:
            labels[key.removeprefix("y_")] = key
        elif not presplit and (key in fields or (key == "images" and "x" in fields)):
            field_name = "x" if key == "images" else key
            if (field_name, "all") in keys:
                raise ValueError(f"{where}: '{path}' holds both {keys[(field_name, 'all')]!r} and {key!r}; keep one")
            keys[(field_name, "all")] = key
        elif not presplit and key in LABEL_KEYS:
            if "all" in labels:
                raise ValueError(f"{where}: '{path}' holds both {labels['all']!r} and {key!r}; keep one")
            labels["all"] = key
        elif presplit and (key in fields or key in IMAGE_KEYS[1:] or key in LABEL_KEYS):
            raise ValueError(f"{where}: '{path}' holds both {key!r} and train/test keys; keep one layout")
        else:
            raise _no_field_takes(key, fields, path, where)
    if presplit:
        for name in fields:
            missing = [f"{name}_{split}" for split in SPLITS if (name, split) not in keys]
            if missing:
                raise ValueError(f"{where}: '{path}' has no {missing[0]!r} key; a split file needs both "
                                 f"'{name}_train' and '{name}_test'")
        if len(labels) == 1:
            raise ValueError(f"{where}: '{path}' has only one of 'y_train' / 'y_test'; give both or neither")
    else:
        missing = [name for name in fields if (name, "all") not in keys]
        if missing:
            expected = (*IMAGE_KEYS, "x_train", "y_train", "x_test", "y_test") if missing[0] == "x" \
                else (missing[0], f"{missing[0]}_train", f"{missing[0]}_test")
            raise ValueError(f"{where}: '{path}' has no array for the field {missing[0]!r}; expected a key among "
                             f"{', '.join(expected)}, found {', '.join(members) or 'none'}")
    return _Layout(presplit, keys, labels)


def _read_npz(path: Path, where: str, fields: dict[str, str]) -> tuple[_Layout, dict[str, np.ndarray]]:
    """The layout of the archive and its arrays by key (every key is taken by a field or the labels).

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
        layout = _layout(sorted(members), fields, path, where)
        modalities = {key: fields[name] for (name, _), key in layout.keys.items()}
        modalities.update({key: "labels" for key in layout.labels.values()})
        headers = {key: _header(functools.partial(archive.open, members[key]), members[key].file_size,
                                f"{key!r} in '{path}'", where, ".npy array") for key in modalities}
        _check_load_memory(headers, path, where, modalities, presplit=layout.presplit)
        arrays = {key: _read_array(header, where) for key, header in headers.items()}
    return layout, arrays


def _converter(modality: str, array: np.ndarray) -> Converter:
    return converter_for(infer_modality(array) if modality == "auto" else modality)


def load_npy(path: Path, where: str = "load_dataset", modality: str = "auto",
             fields: dict[str, str] | None = None) -> ArraySource:
    fields = fields or {"x": modality}
    if len(fields) > 1:
        raise ValueError(f"{where}: '{path}' is a single .npy array: it holds one field, not {', '.join(fields)}; "
                         f"store named fields in an .npz")
    (name, kind), = fields.items()
    array = _read_npy(path, where, kind)
    inputs = _converter(kind, array)(array, f"the array in '{path}'", where)
    return ArraySource({name: inputs}, labels_to_int64(None, len(inputs), "", where))


def _common_text_length(parts: list[dict[str, np.ndarray]]) -> None:
    """Pad each text field of train and test to one length L (in place)."""
    for name, array in parts[0].items():
        if is_text(array) and array.dtype.kind in "iu" and all(is_text(p[name]) for p in parts):
            length = max(p[name].shape[1] for p in parts)
            for p in parts:
                p[name] = pad_to(p[name], length)


def load_npz(path: Path, where: str = "load_dataset", modality: str = "auto",
             fields: dict[str, str] | None = None) -> ArraySource:
    """The ``fields`` (``{name: modality}``, default ``{"x": modality}``) in canonical form (``"auto"``:
    :func:`~contrastkit.data.modality.infer_modality` of the field's first array) and renumbered labels."""
    fields = fields or {"x": modality}
    layout, arrays = _read_npz(path, where, fields)
    splits = SPLITS if layout.presplit else ("all",)
    parts: list[dict[str, np.ndarray]] = [{} for _ in splits]
    for name, kind in fields.items():
        convert = _converter(kind, arrays[layout.keys[(name, splits[0])]])
        for part, split in zip(parts, splits, strict=True):
            key = layout.keys[(name, split)]
            part[name] = convert(arrays[key], f"{key!r} in '{path}'", where)
    label_parts = []
    for part, split in zip(parts, splits, strict=True):
        n = len(next(iter(part.values())))
        for name, array in part.items():
            if len(array) != n:
                first, key = layout.keys[(next(iter(part)), split)], layout.keys[(name, split)]
                raise ValueError(f"{where}: {key!r} in '{path}' has {len(array)} rows but {first!r} has {n}; every "
                                 f"field needs one row per sample")
        key = layout.labels.get(split)
        label_parts.append(labels_to_int64(None if key is None else arrays[key], n, f"{key!r} in '{path}'", where))
    _common_text_length(parts)
    labels, names = contiguous_labels(*label_parts)
    if layout.presplit:
        return ArraySource(parts[0], labels[0], parts[1], labels[1], names)
    return ArraySource(parts[0], labels[0], class_names=names)
