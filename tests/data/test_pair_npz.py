"""Pairs in one .npz (two named fields) through load_dataset(path, fields=...): modalities, splits and bad data."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from contrastkit.data import decode_texts, load_dataset

CAPTIONS = [f"caption number {k}" for k in range(10)]


def test_images_and_caption_strings(tmp_path: Path) -> None:
    path = tmp_path / "pairs.npz"
    images = np.arange(10, dtype=np.uint8)[:, None, None] * np.ones((10, 5, 7), dtype=np.uint8)  # (N, H, W)
    np.savez(path, image=images, caption=np.array(CAPTIONS))
    data = load_dataset(path, fields="image,caption", test_fraction=0.3, seed=4)
    assert data.field_names == ("image", "caption")
    assert (data.field_modality("image"), data.field_modality("caption")) == ("images", "text")
    assert data.train.field("image").shape == (7, 1, 5, 7) and data.train.field("image").dtype == torch.uint8
    for part, idx in ((data.train, data.train_indices), (data.test, data.test_indices)):
        assert decode_texts(part.field("caption")) == [CAPTIONS[i] for i in idx]
        np.testing.assert_array_equal(part.field("image")[:, 0, 0, 0].numpy(), idx)  # each image with its caption


def test_audio_as_sequences_and_text(tmp_path: Path) -> None:
    path = tmp_path / "speech.npz"
    audio = np.arange(10, dtype=np.float64)[:, None] * np.ones((10, 320))  # (N, T)
    np.savez(path, audio=audio, text=np.array(CAPTIONS))
    data = load_dataset(str(path), fields="audio=sequences,text", test_fraction=0.2, seed=0)
    assert data.field_names == ("audio", "text") and data.modality == "sequences"
    assert data.field_modality("text") == "text"
    assert data.train.field("audio").shape == (8, 1, 320) and data.train.field("audio").dtype == torch.float32
    np.testing.assert_array_equal(data.test.field("audio")[:, 0, 0].numpy(), data.test_indices)
    assert decode_texts(data.test.field("text")) == [CAPTIONS[i] for i in data.test_indices]
    # a float (N, T) array is a table unless named a sequence: the modality is never guessed from a field's name
    assert load_dataset(path, fields="audio,text").field_modality("audio") == "vectors"


def test_fields_of_different_lengths_are_named(tmp_path: Path) -> None:
    path = tmp_path / "pairs.npz"
    np.savez(path, audio=np.zeros((10, 320)), text=np.array(CAPTIONS[:9]))
    with pytest.raises(ValueError, match=r"'text' in '.*pairs\.npz' has 9 rows but 'audio' has 10; every field needs "
                                         r"one row per sample"):
        load_dataset(path, fields="audio=sequences,text")


def test_an_empty_string_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pairs.npz"
    np.savez(path, image=np.zeros((3, 4, 4), np.uint8), caption=np.array(["a cat", "", "a dog"]))
    with pytest.raises(ValueError) as caught:
        load_dataset(path, fields="image,caption")
    assert re.fullmatch(r"load_dataset: 'caption' in '.*pairs\.npz' holds an empty text at row 1; every text needs at "
                        r"least one character", str(caught.value)), caught.value
