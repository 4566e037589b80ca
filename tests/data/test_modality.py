"""Modality inference and the canonical forms of vectors and sequences (contrastkit.data.modality).

Rules checked (module docstring): ``auto`` picks ``images`` for 3-D and 4-D arrays and for flat integer arrays
whose width is a perfect square s * s (s > 1) with values in [0, 255]; every other 2-D array is ``vectors``.
Vectors become C-contiguous float32 (N, D), sequences float32 (N, C, T) ((N, T) gets C = 1); integers are
converted; strings, NaN/Inf and empty arrays are one-line ValueErrors naming the file and key given.
"""

from __future__ import annotations

import numpy as np
import pytest

from contrastkit.data.arrays import to_uint8_nchw
from contrastkit.data.modality import (
    MODALITIES,
    check_modality,
    converter_for,
    infer_modality,
    to_float_sequences,
    to_float_vectors,
)

WHERE = "cells.npz"
WHAT = "key 'x_train'"


# ---------------------------------------------------------------------------------------------------------
# inference
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.int64, np.uint16])
def test_flat_integer_square_in_byte_range_is_images(dtype) -> None:
    rng = np.random.default_rng(0)
    for side in (2, 3, 28):
        array = rng.integers(0, 256, size=(5, side * side)).astype(dtype)
        array[0, 0], array[-1, -1] = 0, 255  # the range's ends are inside it
        assert infer_modality(array) == "images", (side, dtype)


@pytest.mark.parametrize(("array", "why"), [
    (np.full((4, 9), 256, dtype=np.int64), "a value above 255"),
    (np.full((4, 9), -1, dtype=np.int64), "a value below 0"),
    (np.zeros((4, 10), dtype=np.uint8), "width 10 is not a perfect square"),
    (np.zeros((4, 8), dtype=np.int32), "width 8 is not a perfect square"),
    (np.zeros((4, 1), dtype=np.uint8), "width 1 = 1 * 1: one value per row is a table, not 1 x 1 images"),
    (np.zeros((4, 784), dtype=np.float32), "float (a table), even of square width"),
    (np.full((4, 784), 0.5, dtype=np.float64), "float64 (a table), even of square width"),
    (np.zeros((4, 9), dtype=bool), "booleans are not integers"),
    (np.zeros((0, 784), dtype=np.uint8), "no rows: no values to be in [0, 255]"),
])
def test_other_two_dimensional_arrays_are_vectors(array, why) -> None:
    assert infer_modality(array) == "vectors", why


def test_the_value_range_decides_for_flat_integers() -> None:
    array = np.zeros((3, 16), dtype=np.int64)
    assert infer_modality(array) == "images"
    array[1, 7] = 256  # one value out of range turns the whole array into a table
    assert infer_modality(array) == "vectors"
    array[1, 7] = -1
    assert infer_modality(array) == "vectors"


@pytest.mark.parametrize("shape", [(4, 5, 6), (4, 5, 6, 3), (4, 1, 5, 6), (2, 3, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_three_and_four_dimensional_arrays_are_images(shape, dtype) -> None:
    assert infer_modality(np.zeros(shape, dtype=dtype)) == "images"


def test_inference_accepts_lists() -> None:
    assert infer_modality([[0, 1, 2, 3]]) == "images"  # Python ints in [0, 255], width 4 = 2 * 2
    assert infer_modality([[0.5, 1.0, 2.0, 3.0]]) == "vectors"


def test_check_modality() -> None:
    assert MODALITIES == ("images", "vectors", "sequences")
    for name in ("auto", *MODALITIES):
        assert check_modality(name, WHERE) == name
    with pytest.raises(ValueError, match=r"load_dataset: `modality` must be 'auto' or one of .*'tables'"):
        check_modality("tables", "load_dataset")


# ---------------------------------------------------------------------------------------------------------
# conversions
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64, np.int8, np.uint16])
def test_vectors_become_contiguous_float32_with_the_same_values(dtype) -> None:
    rng = np.random.default_rng(1)
    source = (rng.normal(size=(7, 5)) * 50).astype(dtype)
    fortran = np.asfortranarray(source)
    out = to_float_vectors(fortran, WHAT, WHERE)
    assert out.dtype == np.float32 and out.shape == (7, 5) and out.flags["C_CONTIGUOUS"]
    expected = np.array([[np.float32(float(v)) for v in row] for row in source.tolist()], dtype=np.float32)
    np.testing.assert_array_equal(out, expected)


def test_sequences_of_two_dims_get_one_channel_and_three_dims_are_kept() -> None:
    rng = np.random.default_rng(2)
    flat = rng.normal(size=(4, 11))
    out = to_float_sequences(flat, WHAT, WHERE)
    assert out.shape == (4, 1, 11) and out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]
    for n in range(4):
        for t in range(11):
            assert out[n, 0, t] == np.float32(flat[n, t])
    multi = rng.integers(-1000, 1000, size=(3, 2, 9))
    out = to_float_sequences(multi[:, :, ::-1], WHAT, WHERE)  # a strided (negative step) view
    assert out.shape == (3, 2, 9) and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, multi[:, :, ::-1].astype(np.float64).astype(np.float32))


def test_converter_for_each_modality() -> None:
    assert converter_for("images") is to_uint8_nchw
    assert converter_for("vectors") is to_float_vectors
    assert converter_for("sequences") is to_float_sequences
    images = converter_for("images")(np.arange(2 * 16).reshape(2, 16) % 256, WHAT, WHERE)
    assert images.dtype == np.uint8 and images.shape == (2, 1, 4, 4)
    assert images[1, 0, 3, 2] == 16 + 3 * 4 + 2


# ---------------------------------------------------------------------------------------------------------
# errors name the file and the key
# ---------------------------------------------------------------------------------------------------------

def _one_line_naming_where(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert WHERE in message and WHAT in message, message
    return message


@pytest.mark.parametrize("convert", [to_float_vectors, to_float_sequences])
@pytest.mark.parametrize(("array", "match"), [
    (np.array([["a", "b"], ["c", "d"]]), "strings"),
    (np.array([[b"a", b"b"]]), "byte strings"),
    (np.array([[True, False]]), "booleans"),
    (np.array([[1 + 2j, 3j]]), "complex"),
    (np.array([[object(), object()]]), "objects"),
])
def test_non_numbers_are_refused(convert, array, match) -> None:
    with pytest.raises(ValueError, match=match) as excinfo:
        convert(array, WHAT, WHERE)
    assert "real numbers" in _one_line_naming_where(excinfo)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # 1e39 -> float32 inf
@pytest.mark.parametrize("convert", [to_float_vectors, to_float_sequences])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])
def test_non_finite_values_are_refused_and_counted(convert, bad) -> None:
    array = np.zeros((3, 4))
    array[1, 2] = bad
    array[2, 0] = bad
    with pytest.raises(ValueError, match="2 NaN/Inf") as excinfo:
        convert(array, WHAT, WHERE)
    assert "finite" in _one_line_naming_where(excinfo)


@pytest.mark.parametrize(("convert", "shape"), [
    (to_float_vectors, (0, 5)),
    (to_float_sequences, (0, 7)),
    (to_float_sequences, (0, 2, 7)),
])
def test_no_samples_is_refused(convert, shape) -> None:
    with pytest.raises(ValueError, match="no samples") as excinfo:
        convert(np.zeros(shape), WHAT, WHERE)
    _one_line_naming_where(excinfo)


@pytest.mark.parametrize(("convert", "shape"), [
    (to_float_vectors, (5,)),
    (to_float_vectors, (5, 0)),
    (to_float_vectors, (2, 3, 4)),
    (to_float_sequences, (5,)),
    (to_float_sequences, (5, 0)),
    (to_float_sequences, (5, 0, 3)),
    (to_float_sequences, (5, 2, 0)),
    (to_float_sequences, (2, 1, 3, 4)),
])
def test_wrong_shapes_are_refused(convert, shape) -> None:
    with pytest.raises(ValueError, match="shape") as excinfo:
        convert(np.zeros(shape), WHAT, WHERE)
    _one_line_naming_where(excinfo)


def test_image_conversion_errors_also_name_the_file() -> None:
    with pytest.raises(ValueError) as excinfo:
        converter_for("images")(np.full((2, 9), 300), WHAT, WHERE)
    _one_line_naming_where(excinfo)
