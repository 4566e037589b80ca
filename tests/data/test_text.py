"""The text modality's forms (UTF-8 bytes, token ids) and their helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contrastkit.data.containers import modality_of
from contrastkit.data.text import BYTE_PAD, TOKEN_PAD, decode_texts, encode_texts, pad_to, text_lengths, to_text


def test_strings_become_zero_padded_utf8_bytes_and_back() -> None:
    texts = ["a", "naïve", "日本"]
    x = encode_texts(texts)
    assert x.dtype == torch.uint8 and x.shape == (3, 6)  # "日本" is 6 UTF-8 bytes
    assert x[0].tolist() == [97, 0, 0, 0, 0, 0] and x[1].tolist() == list("naïve".encode())  # ï: 2 bytes
    assert decode_texts(x) == texts and text_lengths(x).tolist() == [1, 6, 6]
    assert modality_of(x) == "text"


def test_numpy_strings_and_bytes_give_the_same_rows() -> None:
    unicode = to_text(np.array(["ab", "c"]), "w", "t")
    raw = to_text(np.array([b"ab", b"c"]), "w", "t")
    assert np.array_equal(unicode, raw) and unicode.tolist() == [[97, 98], [99, BYTE_PAD]]


def test_token_ids_are_int32_padded_with_minus_one() -> None:
    ids = to_text(np.array([[3, 4, -1], [0, -1, -1]], dtype=np.int16), "w", "t")
    assert ids.dtype == np.int32 and ids.tolist() == [[3, 4, TOKEN_PAD], [0, TOKEN_PAD, TOKEN_PAD]]
    assert text_lengths(torch.from_numpy(ids)).tolist() == [2, 1]
    assert pad_to(ids, 5)[1].tolist() == [0, -1, -1, -1, -1] and pad_to(ids, 3) is ids
    assert modality_of(torch.from_numpy(ids)) == "text"
    with pytest.raises(ValueError, match="fit int32"):
        to_text(np.array([[2**31]]), "w", "t")


def test_int64_tables_are_not_taken_for_text() -> None:
    assert modality_of(torch.zeros(3, 4, dtype=torch.int64)) is None  # an integer table: refused, not text


def test_decode_needs_bytes() -> None:
    with pytest.raises(ValueError, match="expected uint8"):
        decode_texts(torch.zeros(2, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="expected uint8 or int32"):
        text_lengths(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="sequence of str"):
        encode_texts("abc")
