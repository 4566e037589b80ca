"""What kind of input an array holds, and its canonical in-memory form.

=============  ===================================  =================================================
modality       stored as                            read from an array file (``.npy`` / ``.npz``)
=============  ===================================  =================================================
``images``     uint8 (N, C, H, W), C in {1, 3}      (N, H, W), (N, H, W, C), (N, C, H, W); (N, D)
                                                    integers in [0, 255] with D = s * s (flat images)
``vectors``    float32 (N, D)                       (N, D) numbers (a table: one row per sample)
``sequences``  float32 (N, C, T)                    (N, T) or (N, C, T) numbers (only when asked for)
``text``       uint8 (N, L) UTF-8 bytes, or int32   strings (N,); uint8 (N, L) bytes or integer token ids
               (N, L) token ids, padded             (N, L) only when asked for (:mod:`contrastkit.data.text`)
=============  ===================================  =================================================

``modality="auto"`` (the default of :func:`contrastkit.data.load_dataset`) picks ``images`` for 3-D and 4-D
arrays and for flat integer arrays whose width is a perfect square with values in [0, 255] (MNIST stored as
(N, 784)), ``vectors`` for every other 2-D array (a float table) and ``text`` for a 1-D array of strings.
Sequences and text held as integers are never guessed: pass ``modality="sequences"`` / ``"text"``.

Values: vectors and sequences must be finite real numbers (integers are converted to float32); images follow
:mod:`contrastkit.data.arrays`. Everything else is a one-line ValueError naming the file and key.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from contrastkit.data.arrays import describe_dtype, to_uint8_nchw
from contrastkit.data.containers import FIELD_MODALITIES, MODALITIES
from contrastkit.data.text import to_text

__all__ = ["MODALITIES", "check_modality", "converter_for", "infer_modality", "to_float_sequences",
           "to_float_vectors"]

Converter = Callable[[np.ndarray, str, str], np.ndarray]


def check_modality(modality: str, where: str) -> str:
    if modality != "auto" and modality not in FIELD_MODALITIES:
        raise ValueError(f"{where}: `modality` must be 'auto' or one of {FIELD_MODALITIES}, got {modality!r}")
    return modality


def infer_modality(array: np.ndarray) -> str:
    """``images``, ``vectors`` or ``text`` for an array of a file, by the rule of the module docstring."""
    array = np.asarray(array)
    if array.ndim == 1 and array.dtype.kind in "US":
        return "text"
    if array.ndim != 2:
        return "images"
    side = math.isqrt(array.shape[1]) if array.shape[1] else 0
    if array.dtype.kind in "iu" and side * side == array.shape[1] and side > 1 and array.size \
            and int(array.min()) >= 0 and int(array.max()) <= 255:
        return "images"
    return "vectors"


def _finite_float32(array: np.ndarray, what: str, where: str, kind: str) -> np.ndarray:
    if array.dtype.kind not in "iuf":
        raise ValueError(f"{where}: {what} holds {describe_dtype(array.dtype)}; {kind} must be real numbers")
    if array.shape[0] == 0:
        raise ValueError(f"{where}: {what} holds no samples (shape {tuple(array.shape)})")
    with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32 become inf: reported just below
        values = array.astype(np.float32)
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise ValueError(f"{where}: {what} holds {bad} NaN/Inf value(s) (or values beyond float32); {kind} "
                         f"must be finite")
    return np.ascontiguousarray(values)


def to_float_vectors(array: np.ndarray, what: str, where: str) -> np.ndarray:
    """(N, D) numbers -> C-contiguous float32 (N, D)."""
    array = np.asarray(array)
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"{where}: {what} has shape {tuple(array.shape)}; vectors must be (N, D) with D >= 1")
    return _finite_float32(array, what, where, "vectors")


def to_float_sequences(array: np.ndarray, what: str, where: str) -> np.ndarray:
    """(N, T) or (N, C, T) numbers -> C-contiguous float32 (N, C, T)."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, None, :]
    if array.ndim != 3 or array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"{where}: {what} has shape {tuple(array.shape)}; sequences must be (N, T) or (N, C, T)")
    return _finite_float32(array, what, where, "sequences")


def converter_for(modality: str) -> Converter:
    """The function that brings a file's array to the canonical form of ``modality``."""
    return {"images": to_uint8_nchw, "vectors": to_float_vectors, "sequences": to_float_sequences,
            "text": to_text}[modality]
