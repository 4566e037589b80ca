"""A user's folder of WAV files, one sub-folder per speaker, as 16 kHz sequences with speaker labels.

Rules:

* Layout ``root/<speaker>/**/*.wav`` (extension in any case); speakers are the sub-folders in sorted order,
  numbered 0, 1, ...; files are read in sorted order; hidden entries (``.name``) are ignored. A speaker folder
  without WAV files, or WAV files directly in ``root``, is an error (they would have no speaker).
* Files are read with the standard ``wave`` module: uncompressed PCM with 8-bit (unsigned), 16-, 24- or
  32-bit (signed) samples, scaled to [-1, 1); several channels are averaged to mono. Compressed or float WAVs,
  broken and empty files are refused with a one-line ValueError naming the file.
* Every file is resampled to 16 kHz with ``scipy.signal.resample_poly`` (exact rational ratio).
* One length for all: ``clip_seconds`` rounded to whole 10 ms frames if given, else the shortest file's
  length rounded down to whole 10 ms frames (160 samples). Longer files keep their beginning; shorter ones
  (only with ``clip_seconds``) are padded with zeros at the end.
* The split is :func:`contrastkit.data.split.stratified_split` over speakers (``test_fraction``, ``seed``);
  there are no frame labels.
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np
import torch
from scipy.signal import resample_poly

from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.data.split import check_seed, stratified_split

__all__ = ["SAMPLE_RATE", "load_wav_folder", "read_wav"]

SAMPLE_RATE = 16_000
HOP = 160
_WHERE = "load_wav_folder"


def _is_wav(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".wav" and not path.name.startswith(".")


def _pcm_to_float(raw: bytes, width: int) -> np.ndarray:
    """Little-endian PCM bytes -> float64 in [-1, 1)."""
    if width == 1:
        return (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return np.where(value >= 1 << 23, value - (1 << 24), value).astype(np.float64) / float(1 << 23)
    return np.frombuffer(raw, "<i4").astype(np.float64) / float(1 << 31)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """(mono float64 samples in [-1, 1), sample rate) of one PCM WAV file; a ValueError naming it otherwise."""
    try:
        with wave.open(str(path), "rb") as f:
            channels, width, rate, frames = f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()
            raw = f.readframes(frames)
    except (wave.Error, EOFError, OSError) as err:
        raise ValueError(f"{_WHERE}: cannot read '{path}' as an uncompressed PCM WAV file: {err}") from err
    if width not in (1, 2, 3, 4):
        raise ValueError(f"{_WHERE}: '{path}' has {8 * width}-bit samples; expected 8, 16, 24 or 32-bit PCM")
    if rate <= 0 or channels <= 0:
        raise ValueError(f"{_WHERE}: '{path}' declares {rate} Hz and {channels} channels")
    usable = len(raw) // (width * channels)
    if usable == 0:
        raise ValueError(f"{_WHERE}: '{path}' holds no audio (0 samples)")
    samples = _pcm_to_float(raw[: usable * width * channels], width).reshape(usable, channels).mean(axis=1)
    return samples, rate


def _to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return samples
    g = math.gcd(SAMPLE_RATE, rate)
    return resample_poly(samples, SAMPLE_RATE // g, rate // g)


def _list(root: Path) -> tuple[list[Path], list[int], tuple[str, ...]]:
    if not root.is_dir():
        raise ValueError(f"{_WHERE}: '{root}' is not a folder")
    entries = sorted((e for e in root.iterdir() if not e.name.startswith(".")), key=lambda e: e.name)
    speakers = [e for e in entries if e.is_dir()]
    loose = [e for e in entries if _is_wav(e)]
    if loose:
        raise ValueError(f"{_WHERE}: WAV files directly in '{root}' (e.g. '{loose[0].name}') have no speaker; "
                         f"put each speaker's files in a sub-folder of its own")
    if not speakers:
        raise ValueError(f"{_WHERE}: folder '{root}' has no speaker sub-folders of WAV files")
    paths: list[Path] = []
    labels: list[int] = []
    for index, folder in enumerate(speakers):
        files = sorted(p for p in folder.rglob("*")
                       if _is_wav(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        if not files:
            raise ValueError(f"{_WHERE}: speaker folder '{folder}' holds no .wav files")
        paths += files
        labels += [index] * len(files)
    return paths, labels, tuple(d.name for d in speakers)


def load_wav_folder(path: Path, *, test_fraction: float = 0.2, seed: int = 0,
                    clip_seconds: float | None = None) -> DatasetSplits:
    """Speakers' WAV files under ``path`` as float32 (N, 1, T) at 16 kHz, labels = speaker (see module rules)."""
    seed = check_seed(seed, _WHERE)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, int | float) \
            or not 0.0 <= float(test_fraction) < 1.0:
        raise ValueError(f"{_WHERE}: `test_fraction` must be in [0, 1), got {test_fraction!r}")
    if clip_seconds is not None and (isinstance(clip_seconds, bool) or not isinstance(clip_seconds, int | float)
                                     or not clip_seconds >= 0.01):
        raise ValueError(f"{_WHERE}: `clip_seconds` must be None or a number >= 0.01, got {clip_seconds!r}")
    root = Path(path).expanduser()
    paths, labels, names = _list(root)
    audio = [_to_16k(*read_wav(p)) for p in paths]
    if clip_seconds is not None:
        length = round(float(clip_seconds) * 100) * HOP
    else:
        shortest = min(range(len(audio)), key=lambda i: len(audio[i]))
        length = len(audio[shortest]) // HOP * HOP
        if length == 0:
            raise ValueError(f"{_WHERE}: '{paths[shortest]}' is shorter than 10 ms at 16 kHz; remove it or "
                             f"pass clip_seconds to pad every file to one length")
    x = np.zeros((len(audio), 1, length), dtype=np.float32)
    for i, samples in enumerate(audio):
        n = min(length, len(samples))
        x[i, 0, :n] = samples[:n]
    y = np.asarray(labels, dtype=np.int64)
    train, test = stratified_split(y, float(test_fraction), seed, _WHERE)
    tensor_x, tensor_y = torch.from_numpy(x), torch.from_numpy(y)
    return DatasetSplits(root.name, ArrayDataset(tensor_x[train], tensor_y[train]),
                         ArrayDataset(tensor_x[test], tensor_y[test]), len(names), class_names=names,
                         train_indices=train, test_indices=test)
