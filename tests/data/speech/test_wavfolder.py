"""A folder of speakers' WAV files: PCM widths, stereo, resampling, one length, split, and clear errors."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from contrastkit.data import load_dataset
from contrastkit.data.speech import load_wav_folder


def _write(path: Path, samples: np.ndarray, rate: int, width: int) -> None:
    """``samples`` float in [-1, 1), shape (T,) or (T, channels), as PCM of ``width`` bytes."""
    data = samples if samples.ndim == 2 else samples[:, None]
    if width == 1:
        raw = np.round(data * 128 + 128).clip(0, 255).astype(np.uint8).tobytes()
    elif width == 3:
        ints = np.round(data * 2**23).clip(-(2**23), 2**23 - 1).astype("<i4")
        raw = ints.view(np.uint8).reshape(*ints.shape, 4)[..., :3].tobytes()
    else:
        dtype = {2: "<i2", 4: "<i4"}[width]
        scale = 2 ** (8 * width - 1)
        raw = np.round(data * scale).clip(-scale, scale - 1).astype(dtype).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(data.shape[1])
        f.setsampwidth(width)
        f.setframerate(rate)
        f.writeframes(raw)


def _sine(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(round(seconds * rate)) / rate)


def _peak_hz(x: torch.Tensor) -> float:
    spectrum = np.abs(np.fft.rfft(x.numpy().astype(np.float64)))
    return float(np.fft.rfftfreq(len(x), 1 / 16_000)[spectrum.argmax()])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "voices"
    for i in range(5):  # speaker "bob": 16-bit mono 16 kHz, 0.5 s, 440 Hz
        _write(root / "bob" / f"b{i}.wav", _sine(440, 0.5, 16_000), 16_000, 2)
    for i in range(5):  # speaker "alice": 8-bit stereo 8 kHz (right channel silent), 0.6 s, 300 Hz
        left = _sine(300, 0.6, 8_000, amp=0.8)
        _write(root / "alice" / f"a{i}.WAV", np.stack([left, np.zeros_like(left)], 1), 8_000, 1)
    for i, width in enumerate((3, 4, 3, 4, 3)):  # "carol": 24 / 32-bit at 22,050 and 44,100 Hz, 1000 Hz
        rate = 22_050 if width == 3 else 44_100
        _write(root / "carol" / f"c{i}.wav", _sine(1000, 0.7, rate), rate, width)
    (root / "carol" / "notes.txt").write_text("not audio")
    return root


def test_loads_speakers_with_one_length_and_a_stratified_split(folder: Path) -> None:
    splits = load_wav_folder(folder, test_fraction=0.2, seed=0)
    assert splits.class_names == ("alice", "bob", "carol") and splits.num_classes == 3
    assert splits.modality == "sequences" and splits.input_shape == (1, 8000)  # shortest 0.5 s
    assert len(splits.train) == 12 and len(splits.test) == 3 and splits.train.frame_labels is None
    assert sorted(splits.test.labels.tolist()) == [0, 1, 2]
    assert splits.train.x.dtype == torch.float32
    train_idx, test_idx = splits.train_indices, splits.test_indices
    assert sorted([*train_idx, *test_idx]) == list(range(15))
    by_class = {int(label): x[0] for x, label in zip(splits.train.x, splits.train.labels, strict=True)}
    assert _peak_hz(by_class[0]) == pytest.approx(300, abs=3)  # 8 kHz -> 16 kHz keeps the pitch
    assert _peak_hz(by_class[1]) == pytest.approx(440, abs=3)
    assert _peak_hz(by_class[2]) == pytest.approx(1000, abs=3)
    alice = by_class[0].numpy()
    assert np.abs(alice).max() == pytest.approx(0.4, abs=0.03)  # stereo mean: (0.8 + 0) / 2
    assert np.abs(by_class[2].numpy()).max() == pytest.approx(0.5, abs=0.02)


def test_clip_seconds_pads_and_crops(folder: Path) -> None:
    splits = load_wav_folder(folder, test_fraction=0.0, clip_seconds=0.65)
    assert splits.input_shape == (1, 10_400) and len(splits.test) == 0
    bob = splits.train.x[splits.train.labels == 1][0, 0]
    assert float(bob[8000:].abs().max()) == 0.0 and float(bob[:8000].abs().max()) > 0.4  # zero padding


def test_load_dataset_recognises_a_wav_folder(folder: Path) -> None:
    splits = load_dataset(folder, seed=1)
    assert splits.name == "voices" and splits.num_classes == 3 and splits.input_shape == (1, 8000)
    assert load_dataset(folder, seed=1, modality="sequences").input_shape == (1, 8000)


@pytest.mark.parametrize("options", [dict(modality="images"), dict(size=8), dict(mode="L")])
def test_image_options_on_a_wav_folder_are_refused(folder: Path, options: dict) -> None:
    with pytest.raises(ValueError, match=r"is a folder of WAV files \(sequences\); `modality`, `size` and `mode`"):
        load_dataset(folder, **options)


def _float_wav(path: Path) -> None:
    """A 32-bit IEEE float WAV (format tag 3), which the wave module refuses."""
    data = np.zeros(100, "<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, 16_000, 64_000, 4, 32)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
                     + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)


@pytest.mark.parametrize("kind", ["compressed", "empty", "garbage"])
def test_unreadable_files_are_named(folder: Path, kind: str) -> None:
    bad = folder / "bob" / "bad.wav"
    if kind == "compressed":
        _float_wav(bad)
    elif kind == "empty":
        _write(bad, np.zeros(0), 16_000, 2)
    else:
        bad.write_bytes(b"this is not a wav file")
    with pytest.raises(ValueError, match=r"bad\.wav") as info:
        load_wav_folder(folder)
    assert "\n" not in str(info.value)


def test_layout_errors(tmp_path: Path, folder: Path) -> None:
    (folder / "dave").mkdir()
    with pytest.raises(ValueError, match=r"dave.*no \.wav"):
        load_wav_folder(folder)
    (folder / "dave").rmdir()
    _write(folder / "loose.wav", _sine(100, 0.1, 16_000), 16_000, 2)
    with pytest.raises(ValueError, match=r"loose\.wav"):
        load_wav_folder(folder)
    with pytest.raises(ValueError, match="test_fraction"):
        load_wav_folder(folder, test_fraction=1.0)
    with pytest.raises(ValueError, match="not a folder"):
        load_wav_folder(tmp_path / "missing")
