"""The text modality: UTF-8 bytes or token ids, one row per sample, padded to a common length.

Torch has no string tensors, so a text field is held as integers, in one of two forms that its dtype tells apart:

=================  ==================================  ==========================================================
form               in memory (and on the device)       read from an ``.npz`` field
=================  ==================================  ==========================================================
UTF-8 bytes        uint8 (N, L): row i is the UTF-8    a 1-D array of strings (N,) (numpy ``str`` / ``bytes``,
                   encoding of text i, then zeros      e.g. ``np.array(["a cat", "a dog"])``: no pickle needed),
                   (``BYTE_PAD`` = 0) up to L          read as text without asking; or uint8 (N, L) bytes padded
                                                       with zeros, when the field's modality is ``text``
token ids          int32 (N, L): ids >= 0, then        integers (N, L) of any other integer dtype, when the
                   ``TOKEN_PAD`` (-1) up to L          field's modality is ``text``; padding is -1
=================  ==================================  ==========================================================

Token ids are int32, not int64: every vocabulary fits, embedding lookups take them, and an int64 (N, D) tensor
stays what it most often is by mistake -- an integer table that should have been float vectors -- and is refused.
L is the longest text of the loaded data (train and test padded alike). Every text holds at least one byte or
token; padding only follows the text (a zero byte never occurs inside UTF-8 text here: the NUL character is
refused, and numpy drops trailing NULs of its fixed-width strings anyway). ``bytes`` strings must be valid UTF-8.
A text field gets no augmentation (:mod:`contrastkit.batching`): a method asks for 0 or 1 views of it and gets
the stored integers on the device; its text encoder reads the lengths with :func:`text_lengths`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from contrastkit.data.arrays import describe_dtype

__all__ = ["BYTE_PAD", "TOKEN_PAD", "decode_texts", "encode_texts", "is_text", "text_lengths", "to_text"]

BYTE_PAD = 0  # after the UTF-8 bytes of a text (uint8 rows)
TOKEN_PAD = -1  # after the token ids of a text (int64 rows)


def is_text(x: Tensor | np.ndarray) -> bool:
    """A text field's in-memory form: uint8 (N, L) bytes or int32 (N, L) token ids."""
    return x.ndim == 2 and str(x.dtype) in ("uint8", "torch.uint8", "int32", "torch.int32")


def _pad_rows(rows: Sequence[np.ndarray], dtype: np.dtype, pad: int) -> np.ndarray:
    out = np.full((len(rows), max(len(r) for r in rows)), pad, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
    return out


def encode_texts(texts: Sequence[str], what: str = "texts", where: str = "encode_texts") -> Tensor:
    """Python strings -> uint8 (N, L) UTF-8 bytes padded with zeros (the form above)."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"{where}: {what} must be a sequence of str")
    return torch.from_numpy(_bytes_rows([t.encode("utf-8") for t in texts], what, where))


def _bytes_rows(encoded: Sequence[bytes], what: str, where: str) -> np.ndarray:
    if not encoded:
        raise ValueError(f"{where}: {what} holds no samples")
    for i, data in enumerate(encoded):
        if not data:
            raise ValueError(f"{where}: {what} holds an empty text at row {i}; every text needs at least one character")
        if b"\0" in data:
            raise ValueError(f"{where}: {what} holds the NUL character in row {i}; text may not contain it (zero "
                             f"bytes are the padding)")
    return _pad_rows([np.frombuffer(d, dtype=np.uint8) for d in encoded], np.dtype(np.uint8), BYTE_PAD)


def _from_strings(array: np.ndarray, what: str, where: str) -> np.ndarray:
    if array.dtype.kind == "U":
        encoded = [str(s).encode("utf-8") for s in array]
    else:
        encoded = [bytes(s) for s in array]
        for i, data in enumerate(encoded):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{where}: {what} row {i} is not valid UTF-8 ({err.reason} at byte {err.start})") \
                    from None
    return _bytes_rows(encoded, what, where)


def _check_padding(array: np.ndarray, pad: int, what: str, where: str, kind: str) -> None:
    """Every row: at least one element before the padding, and nothing but padding after it."""
    padded = array == pad  # (N, L)
    if bool(padded[:, 0].any()):
        row = int(np.flatnonzero(padded[:, 0])[0])
        raise ValueError(f"{where}: {what} row {row} is empty (it starts with the padding {pad}); every text needs "
                         f"at least one {kind}")
    after = np.maximum.accumulate(padded, axis=1)  # True from the first padding on
    if bool((after & ~padded).any()):
        row = int(np.flatnonzero((after & ~padded).any(axis=1))[0])
        raise ValueError(f"{where}: {what} row {row} holds {kind}s after its padding ({pad}); padding must only "
                         f"follow the text")


def to_text(array: np.ndarray, what: str, where: str) -> np.ndarray:
    """A file's text field -> its in-memory form (module docstring): strings (N,) or uint8 (N, L) -> uint8 bytes,
    other integers (N, L) -> int32 token ids. One-line ValueError naming ``what`` otherwise."""
    array = np.asarray(array)
    if array.dtype.kind in "US":
        if array.ndim != 1:
            raise ValueError(f"{where}: {what} holds strings of shape {tuple(array.shape)}; text is one string per "
                             f"sample, shape (N,)")
        return _from_strings(array, what, where)
    if array.dtype.kind not in "iu" or array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"{where}: {what} holds {describe_dtype(array.dtype)} of shape {tuple(array.shape)}; text "
                         f"must be strings (N,), uint8 UTF-8 bytes (N, L) padded with 0, or integer token ids (N, L) "
                         f"padded with -1")
    if array.shape[0] == 0:
        raise ValueError(f"{where}: {what} holds no samples (shape {tuple(array.shape)})")
    if array.dtype == np.uint8:
        _check_padding(array, BYTE_PAD, what, where, "byte")
        for i, row in enumerate(array):
            try:
                bytes(row[row != BYTE_PAD]).decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{where}: {what} row {i} is not valid UTF-8 ({err.reason})") from None
        return np.ascontiguousarray(array)
    if int(array.min()) < TOKEN_PAD or int(array.max()) > np.iinfo(np.int32).max:
        raise ValueError(f"{where}: {what} holds token ids from {int(array.min())} to {int(array.max())}; ids must be "
                         f">= 0 (and -1 for padding) and fit int32")
    _check_padding(array, TOKEN_PAD, what, where, "token")
    return np.ascontiguousarray(array.astype(np.int32))


def pad_to(array: np.ndarray, length: int) -> np.ndarray:
    """Text rows (N, L) padded on the right to ``length`` >= L with the padding of their form."""
    if array.shape[1] == length:
        return array
    pad = BYTE_PAD if array.dtype == np.uint8 else TOKEN_PAD
    out = np.full((array.shape[0], length), pad, dtype=array.dtype)
    out[:, :array.shape[1]] = array
    return out


def text_lengths(x: Tensor) -> Tensor:
    """(N,) int64 bytes or tokens of each text of ``x`` (uint8 or int32 (N, L)), on ``x``'s device."""
    if not is_text(x):
        raise ValueError(f"text_lengths: expected uint8 or int32 (N, L) text, got {x.dtype} {tuple(x.shape)}")
    pad = BYTE_PAD if x.dtype == torch.uint8 else TOKEN_PAD
    return (x != pad).sum(dim=1)


def decode_texts(x: Tensor) -> list[str]:
    """uint8 (N, L) UTF-8 bytes -> the N strings (token ids need their tokenizer: an error here)."""
    if x.dtype != torch.uint8 or x.dim() != 2:
        raise ValueError(f"decode_texts: expected uint8 (N, L) UTF-8 bytes, got {x.dtype} {tuple(x.shape)}")
    return [bytes(row[row != BYTE_PAD].tolist()).decode("utf-8") for row in x.cpu()]
