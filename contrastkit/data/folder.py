"""Load a folder of images with Pillow, like torchvision's ImageFolder but without torchvision.

Layouts:

* labelled — one sub-folder per class, ``root/<class>/**/<image>``; classes are sorted by name
  and numbered 0, 1, ...; files are read in sorted order.
* unlabelled — images directly in ``root`` and no sub-folders; every label is ``-1``.

Files whose extension is not an image extension (``.png .jpg .jpeg .bmp .gif .tif .tiff
.webp``, any case) and hidden entries (names starting with ``.``) are ignored. Mixing loose
images in ``root`` with class sub-folders is an error (the loose images would have no class).

Colour: every image is converted to one mode, ``"L"`` (gray) or ``"RGB"``: the ``mode``
argument if given, else the majority of the files (gray modes, and palettes holding only grays,
count as gray; a tie gives RGB). Alpha channels are dropped (Pillow's ``convert``); 16-bit
gray (modes ``I;16*`` and ``I``) is scaled to 8 bits by ``(255 v + 32767) // 65535``;
32-bit float images (mode ``F``) are refused. GIFs and multi-page TIFFs give their first frame.

Size: all images must share one size unless ``size`` is given, in which case every image is
resized to it (bilinear, antialiased); otherwise the error names the first two files whose
sizes differ.

Files that change after the scan: :func:`scan_image_folder` records each file's size in bytes, modification
time and header (width, height, Pillow mode) in one numpy array (:data:`FILE_RECORD`); :func:`decode_scanned`
compares a file with its record before using its pixels and raises :class:`ImageFileChangedError` (one line naming
the file) when it vanished, has another header, no longer decodes, or has another size in bytes or modification
time -- e.g. a streamed folder rewritten while a run reads it (:mod:`contrastkit.data.stream`).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from contrastkit.data.arrays import resize_pil

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)

#: what a scan records of each file, one row per file (a numpy array: no Python object per file, so forked loader
#: workers share it): size in bytes and modification time (os.stat), and the header's width, height and Pillow mode
FILE_RECORD = np.dtype([("bytes", np.int64), ("mtime_ns", np.int64), ("width", np.int32), ("height", np.int32),
                        ("mode", "S8")])


class ImageFileChangedError(ValueError):
    """A scanned image file vanished, changed or no longer decodes since the scan (the message names it)."""


class FolderScan(NamedTuple):
    """What :func:`scan_image_folder` learns of a folder without decoding it."""

    paths: list[Path]  # sorted image files
    labels: np.ndarray  # (N,) int64, all -1 when unlabelled
    class_names: tuple[str, ...]
    mode: str  # "L" or "RGB": what every file is converted to
    size: tuple[int, int]  # (H, W) of every decoded image
    records: np.ndarray  # (N,) FILE_RECORD: each file as the scan found it


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_image_folder(root: Path, where: str = "load_dataset"
                      ) -> tuple[list[Path], np.ndarray, tuple[str, ...]]:
    """Sorted image paths, their labels (int64, all -1 when unlabelled) and the class names."""
    entries = sorted((e for e in root.iterdir() if not e.name.startswith(".")), key=lambda e: e.name)
    class_dirs = [e for e in entries if e.is_dir()]
    loose = [e for e in entries if is_image_file(e)]
    if not class_dirs:
        if not loose:
            raise ValueError(f"{where}: folder '{root}' holds no image files (extensions "
                             f"{', '.join(sorted(IMAGE_EXTENSIONS))}) and no class sub-folders")
        return loose, np.full(len(loose), -1, dtype=np.int64), ()
    if loose:
        raise ValueError(f"{where}: folder '{root}' has class sub-folders and also images directly in it "
                         f"(e.g. '{loose[0]}'); move those into a class folder, or use a folder without "
                         f"sub-folders for unlabelled images")
    paths: list[Path] = []
    labels: list[int] = []
    for index, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.rglob("*")
                       if is_image_file(p) and not any(part.startswith(".")
                                                       for part in p.relative_to(class_dir).parts))
        if not files:
            raise ValueError(f"{where}: class folder '{class_dir}' holds no image files")
        paths.extend(files)
        labels.extend([index] * len(files))
    return paths, np.asarray(labels, dtype=np.int64), tuple(d.name for d in class_dirs)


def read_image(path: Path, where: str = "load_dataset") -> Image.Image:
    """Open and fully decode one image (first frame); any failure -> ValueError naming the file."""
    try:
        with Image.open(path) as opened:
            opened.load()
            return opened.copy()
    except _READ_ERRORS as err:
        raise ValueError(f"{where}: cannot read image file '{path}': {err}") from err


def is_gray(image: Image.Image) -> bool:
    """Gray modes, 16-bit gray, and palette images whose palette holds only grays."""
    if image.mode in _GRAY_MODES or image.mode.startswith("I;16"):
        return True
    if image.mode in ("P", "PA"):
        palette = np.asarray(image.getpalette() or [], dtype=np.int64).reshape(-1, 3)
        return bool((palette[:, 0] == palette[:, 1]).all() and (palette[:, 1] == palette[:, 2]).all())
    return False


def convert_image(image: Image.Image, mode: str, path: Path, where: str = "load_dataset") -> Image.Image:
    """Pillow image of any mode -> ``mode`` ("L" or "RGB"); see the module docstring for the rules."""
    if image.mode == "F":
        raise ValueError(f"{where}: image file '{path}' is 32-bit float (mode F); save it as 8-bit")
    if image.mode == "I" or image.mode.startswith("I;16"):
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"{where}: image file '{path}' holds values in [{values.min()}, {values.max()}]; "
                             f"integer images must be 8- or 16-bit")
        image = Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))
    if image.mode == mode:
        return image
    try:
        return image.convert(mode)
    except ValueError as err:
        raise ValueError(f"{where}: cannot convert image file '{path}' from mode {image.mode} "
                         f"to {mode}: {err}") from err


def scan_image_folder(root: Path, *, mode: str | None = None, size: tuple[int, int] | None = None,
                      where: str = "load_dataset") -> FolderScan:
    """List ``root`` and read every image's header (:class:`FolderScan`, with each file's :data:`FILE_RECORD`).

    The mode is ``mode`` if given, else the majority of the files (:func:`is_gray`);
    without ``size`` every file must have the first file's size (the error names both files).
    """
    paths, labels, class_names = list_image_folder(root, where)
    records = np.zeros(len(paths), dtype=FILE_RECORD)
    gray = 0
    first: tuple[int, int] | None = None  # (W, H) as Pillow gives it
    for row, path in enumerate(paths):
        records[row], file_gray = _read_header(path, mode is None, where)
        gray += file_gray
        image_size = (int(records[row]["width"]), int(records[row]["height"]))
        if first is None:
            first = image_size
        elif size is None and image_size != first:
            raise ValueError(f"{where}: images differ in size: '{paths[0]}' is {first[0]}x{first[1]} but '{path}' "
                             f"is {image_size[0]}x{image_size[1]} (width x height); pass `size` to resize every "
                             f"image to one size")
    if mode is None:
        mode = "L" if gray > len(paths) - gray else "RGB"
    assert first is not None  # list_image_folder refuses an empty folder
    hw = size if size is not None else (first[1], first[0])
    return FolderScan(paths, labels, class_names, mode, hw, records)


def record_files(paths: list[Path], where: str = "load_dataset") -> np.ndarray:
    """(N,) :data:`FILE_RECORD` of ``paths`` as they are now (what :func:`scan_image_folder` records)."""
    records = np.zeros(len(paths), dtype=FILE_RECORD)
    for row, path in enumerate(paths):
        records[row] = _read_header(path, False, where)[0]
    return records


def _read_header(path: Path, check_gray: bool, where: str) -> tuple[tuple[int, int, int, int, bytes], bool]:
    """One file's :data:`FILE_RECORD` row (size in bytes and modification time of the opened file, the header's
    width, height and mode; the pixels are not decoded) and, if ``check_gray``, whether it is gray."""
    try:
        with open(path, "rb") as file, Image.open(file) as image:
            stat = os.fstat(file.fileno())
            record = (stat.st_size, stat.st_mtime_ns, image.width, image.height, image.mode.encode())
            return record, check_gray and is_gray(image)
    except _READ_ERRORS as err:
        raise ValueError(f"{where}: cannot read image file '{path}': {_reason(err)}") from err


def _reason(err: BaseException) -> str:
    """Why Pillow could not read a file, without the repr of the file object it was given."""
    return "cannot identify image file" if isinstance(err, UnidentifiedImageError) else str(err)


def _local_time(ns: int) -> str:
    return datetime.fromtimestamp(ns // 10**9).replace(microsecond=ns % 10**9 // 1000).isoformat(" ")


#: what every change message ends with
_RESTORE = ("; the folder must not change while it is read: put the file back as it was (then resume), or start "
            "again from the folder as it is now")


def _open_scanned(path: str | Path) -> BinaryIO:
    """``path`` opened for reading; a file that is gone or refused is a change since the scan."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise ImageFileChangedError(f"image file '{path}' vanished since the folder was scanned{_RESTORE}") from None
    except OSError as err:
        raise ImageFileChangedError(f"image file '{path}' can no longer be opened since the folder was scanned: "
                                    f"{err.strerror or err}{_RESTORE}") from None


def decode_scanned(path: str | Path, record: np.void, mode: str, size: tuple[int, int],
                   where: str = "load_dataset") -> np.ndarray:
    """:func:`decode_file`, after checking the file against its scan ``record`` (:data:`FILE_RECORD`).

    Raises :class:`ImageFileChangedError` naming the file when it vanished or can no longer be opened, when its
    header (width, height, mode) differs from the record, when it no longer decodes after a change of its bytes,
    or when its size in bytes or its modification time differ (the same image rewritten: its pixels may differ
    too). A file unchanged since the scan that fails to decode (broken from the start: the scan reads headers
    only) gives the folder loader's "cannot read image file" error.
    """
    was_w, was_h, was_mode = int(record["width"]), int(record["height"]), bytes(record["mode"]).decode()
    with _open_scanned(path) as file:
        stat = os.fstat(file.fileno())
        rewritten = (stat.st_size, stat.st_mtime_ns) != (int(record["bytes"]), int(record["mtime_ns"]))

        def unreadable(err: BaseException) -> ValueError:
            if rewritten:
                return ImageFileChangedError(f"image file '{path}' changed since the folder was scanned and no "
                                             f"longer decodes: {_reason(err)}{_RESTORE}")
            return ValueError(f"{where}: cannot read image file '{path}': {_reason(err)}")

        try:
            opened = Image.open(file)
        except _READ_ERRORS as err:
            raise unreadable(err) from None
        with opened:
            if (opened.width, opened.height, opened.mode) != (was_w, was_h, was_mode):
                raise ImageFileChangedError(
                    f"image file '{path}' changed since the folder was scanned: {opened.width}x{opened.height} "
                    f"{opened.mode}, was {was_w}x{was_h} {was_mode} (width x height, mode){_RESTORE}")
            try:
                opened.load()
                image = opened.copy()
            except _READ_ERRORS as err:
                raise unreadable(err) from None
    if stat.st_size != int(record["bytes"]):
        raise ImageFileChangedError(f"image file '{path}' changed since the folder was scanned: {stat.st_size} "
                                    f"bytes, was {int(record['bytes'])} (same {was_w}x{was_h} {was_mode}){_RESTORE}")
    if rewritten:
        raise ImageFileChangedError(f"image file '{path}' changed since the folder was scanned: modified at "
                                    f"{_local_time(stat.st_mtime_ns)}, was {_local_time(int(record['mtime_ns']))} "
                                    f"(same size in bytes, {was_w}x{was_h} {was_mode}){_RESTORE}")
    return _to_array(image, mode, size, Path(path), where)


def decode_file(path: str | Path, mode: str, size: tuple[int, int], where: str = "load_dataset") -> np.ndarray:
    """One file as uint8 (C, H, W): read, convert to ``mode``, resize to ``size`` (H, W) when it differs."""
    return _to_array(read_image(Path(path), where), mode, size, Path(path), where)


def _to_array(image: Image.Image, mode: str, size: tuple[int, int], path: Path, where: str) -> np.ndarray:
    """A decoded image as uint8 (C, H, W): converted to ``mode``, resized to ``size`` (H, W) when it differs."""
    image = convert_image(image, mode, path, where)
    if (image.size[1], image.size[0]) != tuple(size):
        image = resize_pil(image, size)
    array = np.array(image)  # a writable copy: torch tensors made from it may be written
    if array.shape[:2] != tuple(size):
        raise ValueError(f"{where}: image file '{path}' decoded to {array.shape[:2]}, expected {tuple(size)}")
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def load_image_folder(root: Path, *, mode: str | None = None, size: tuple[int, int] | None = None,
                      where: str = "load_dataset") -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images uint8 (N, C, H, W), labels int64 (N,) (-1 when unlabelled) and class names.

    The headers fix the mode and size first (:func:`scan_image_folder`), then each file is decoded straight into
    its row of one preallocated array: the peak memory is the decoded set itself, not a list of images beside it.
    """
    scan = scan_image_folder(root, mode=mode, size=size, where=where)
    return decode_files(scan.paths, scan.mode, scan.size, where), scan.labels, scan.class_names


def decode_files(paths: list[Path], mode: str, size: tuple[int, int], where: str = "load_dataset") -> np.ndarray:
    """Every file decoded (:func:`decode_file`) into one preallocated uint8 array (N, C, H, W)."""
    images = np.empty((len(paths), 1 if mode == "L" else 3, *size), dtype=np.uint8)
    for row, path in enumerate(paths):
        images[row] = decode_file(path, mode, size, where)
    return images
