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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from contrastkit.data.arrays import resize_pil

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})
_READ_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


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
                      where: str = "load_dataset") -> tuple[list[Path], np.ndarray, tuple[str, ...], str,
                                                             tuple[int, int]]:
    """List ``root`` and read every image's header: (paths, labels, class names, mode, (H, W)).

    The mode is ``mode`` if given, else the majority of the files (:func:`is_gray`);
    without ``size`` every file must have the first file's size (the error names both files).
    """
    paths, labels, class_names = list_image_folder(root, where)
    gray = 0
    first: tuple[int, int] | None = None  # (W, H) as Pillow gives it
    for path in paths:
        try:
            with Image.open(path) as image:  # reads the header only
                gray += is_gray(image) if mode is None else 0
                image_size = image.size
        except _READ_ERRORS as err:
            raise ValueError(f"{where}: cannot read image file '{path}': {err}") from err
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
    return paths, labels, class_names, mode, hw


def decode_file(path: str | Path, mode: str, size: tuple[int, int], where: str = "load_dataset") -> np.ndarray:
    """One file as uint8 (C, H, W): read, convert to ``mode``, resize to ``size`` (H, W) when it differs."""
    image = convert_image(read_image(Path(path), where), mode, Path(path), where)
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
    paths, labels, class_names, mode, hw = scan_image_folder(root, mode=mode, size=size, where=where)
    return decode_files(paths, mode, hw, where), labels, class_names


def decode_files(paths: list[Path], mode: str, size: tuple[int, int], where: str = "load_dataset") -> np.ndarray:
    """Every file decoded (:func:`decode_file`) into one preallocated uint8 array (N, C, H, W)."""
    images = np.empty((len(paths), 1 if mode == "L" else 3, *size), dtype=np.uint8)
    for row, path in enumerate(paths):
        images[row] = decode_file(path, mode, size, where)
    return images
