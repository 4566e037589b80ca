"""Bring image arrays of any common layout to uint8 (N, C, H, W); convert channels; resize.

Accepted layouts: (N, D) with D a perfect square (flattened single-channel images, e.g. MNIST's
784 -> 1 x 28 x 28), (N, H, W), (N, H, W, C) and (N, C, H, W) with C in {1, 3}. A 4-D array is
read as channels-last when its last dimension is 1 or 3 and its second is not; otherwise as
channels-first.

Accepted values: uint8; any integer type with values in [0, 255]; floats in [0, 1], mapped to
uint8 by ``floor(255 * x + 0.5)`` (round half up, the same on every machine). Nothing else:
strings, booleans (a bool array is refused rather than guessed to mean 0/255; store uint8),
complex numbers, objects, records and dates are refused with a one-line ValueError (not a
TypeError: the array's *content* is what is wrong, typically in a user's file).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

MODE_CHANNELS = {"L": 1, "RGB": 3}
_DTYPE_KINDS = {"b": "booleans", "c": "complex numbers", "U": "strings", "S": "byte strings",
                "O": "Python objects", "V": "structured records", "M": "dates", "m": "time spans"}
# Pillow >= 9.1 has Image.Resampling; 9.0 keeps the constants on Image.
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR
#: elements converted at a time from float to uint8 (8 MiB of float64)
_CONVERT_BLOCK = 1 << 20


def parse_size(size: int | tuple[int, int] | list[int] | None, where: str) -> tuple[int, int] | None:
    """``None``, an int ``s`` (-> (s, s)) or an (H, W) pair, checked to be positive integers."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int | np.integer) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) and v > 0
                                 for v in pair):
        raise ValueError(f"{where}: `size` must be a positive int or an (H, W) pair of positive ints, "
                         f"got {size!r}")
    return int(pair[0]), int(pair[1])


def channels_for_mode(mode: str | None, where: str) -> int | None:
    if mode is None:
        return None
    if mode not in MODE_CHANNELS:
        raise ValueError(f"{where}: `mode` must be None, 'L' or 'RGB', got {mode!r}")
    return MODE_CHANNELS[mode]


def describe_dtype(dtype: np.dtype) -> str:
    """``"strings (dtype <U3)"``: what an array holds, for error messages."""
    kind = _DTYPE_KINDS.get(dtype.kind)
    return f"{kind} (dtype {dtype})" if kind else f"dtype {dtype}"


def to_nchw(array: np.ndarray, what: str, where: str) -> np.ndarray:
    """Reshape/transpose an image array to (N, C, H, W) without touching its values."""
    shape = tuple(array.shape)
    if array.ndim == 2:
        side = math.isqrt(shape[1])
        if side * side != shape[1] or side == 0:
            raise ValueError(f"{where}: {what} has shape {shape}; a flat (N, D) array needs D to be a "
                             f"perfect square (D = s * s for s x s single-channel images)")
        return array.reshape(shape[0], 1, side, side)
    if array.ndim == 3:
        return array[:, None, :, :]
    if array.ndim == 4:
        if shape[3] in (1, 3) and shape[1] not in (1, 3):
            return array.transpose(0, 3, 1, 2)
        if shape[1] in (1, 3):
            return array
        raise ValueError(f"{where}: {what} has shape {shape}; expected (N, H, W, C) or (N, C, H, W) "
                         f"with C = 1 (gray) or 3 (RGB)")
    raise ValueError(f"{where}: {what} has shape {shape}; expected (N, D), (N, H, W), (N, H, W, C) "
                     f"or (N, C, H, W)")


def to_uint8_values(array: np.ndarray, what: str, where: str) -> np.ndarray:
    """uint8 as is; integers in [0, 255] cast; floats in [0, 1] -> floor(255 x + 0.5); else ValueError."""
    if array.dtype.kind not in "iuf":
        hint = "; a black-and-white image is uint8 0 / 255" if array.dtype.kind == "b" else ""
        raise ValueError(f"{where}: {what} holds {describe_dtype(array.dtype)}; images must be uint8, "
                         f"integers in [0, 255] or floats in [0, 1]{hint}")
    if array.dtype == np.uint8:
        return array
    if array.size == 0:
        return array.astype(np.uint8)
    if array.dtype.kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise ValueError(f"{where}: {what} is an integer array with values in [{low}, {high}]; "
                             f"integer images must lie in [0, 255]")
        return array.astype(np.uint8)
    low, high = float(array.min()), float(array.max())  # floats from here on; NaN propagates through min
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{where}: {what} holds NaN/Inf values")
    if low < 0.0 or high > 1.0:
        raise ValueError(f"{where}: {what} is a float array with values in [{low:g}, {high:g}]; "
                         f"float images must lie in [0, 1] (divide by 255, or store uint8)")
    return _unit_floats_to_uint8(array)


def _unit_floats_to_uint8(array: np.ndarray) -> np.ndarray:
    """floor(255 x + 0.5) as uint8, a block of rows at a time: the float64 temporaries stay near
    :data:`_CONVERT_BLOCK` elements instead of 16 bytes per element of the whole array (the input and the
    uint8 output are all that grows with it)."""
    out = np.empty(array.shape, dtype=np.uint8)  # C-contiguous, whatever the input's strides
    per_row = max(1, math.prod(array.shape[1:]))
    rows = max(1, _CONVERT_BLOCK // per_row)
    for start in range(0, array.shape[0], rows):
        block = array[start:start + rows].astype(np.float64)
        block *= 255.0
        block += 0.5
        np.floor(block, out=block)
        out[start:start + rows] = block
    return out


def to_uint8_nchw(array: np.ndarray, what: str, where: str) -> np.ndarray:
    """Any accepted layout and value range -> C-contiguous uint8 (N, C, H, W)."""
    array = np.asarray(array)
    if array.ndim >= 1 and array.shape[0] == 0:
        raise ValueError(f"{where}: {what} holds no images (shape {tuple(array.shape)})")
    return np.ascontiguousarray(to_uint8_values(to_nchw(array, what, where), what, where))


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (N, C, H, W) -> (N, channels, H, W).

    Gray -> RGB repeats the channel; RGB -> gray uses ITU-R 601-2 luma in Pillow's own
    fixed-point form, ``L = (19595 R + 38470 G + 7471 B + 2**15) >> 16``, so arrays and image
    files converted to "L" agree exactly.
    """
    current = images.shape[1]
    if current == channels:
        return images
    if current == 1 and channels == 3:
        return np.ascontiguousarray(np.repeat(images, 3, axis=1))
    if current == 3 and channels == 1:
        rgb = images.astype(np.uint32)
        luma = (19595 * rgb[:, 0] + 38470 * rgb[:, 1] + 7471 * rgb[:, 2] + 0x8000) >> 16
        return luma.astype(np.uint8)[:, None]
    raise ValueError(f"convert_channels: cannot convert {current} channel(s) to {channels}")


def resize_pil(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize a Pillow image to (H, W) = ``size`` with (antialiased) bilinear filtering."""
    height, width = size
    if image.size == (width, height):
        return image
    return image.resize((width, height), resample=_BILINEAR)


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (N, C, H, W) -> (N, C, *size), each image through :func:`resize_pil` (no-op if equal)."""
    if images.shape[2:] == size:
        return images
    out = np.empty((images.shape[0], images.shape[1], *size), dtype=np.uint8)
    for i, image in enumerate(images):
        pil = Image.fromarray(image[0]) if image.shape[0] == 1 else Image.fromarray(image.transpose(1, 2, 0))
        resized = np.asarray(resize_pil(pil, size))
        out[i] = resized[None] if resized.ndim == 2 else resized.transpose(2, 0, 1)
    return out
