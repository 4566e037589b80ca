"""The built-in ``speech`` dataset: English sentences spoken by synthetic eSpeak NG speakers, cached per seed.

Layout (as :mod:`contrastkit.data.toyspeech`): ``x`` float32 (N, 1, T) at 16 kHz in [-1, 1] with
T = 160 * F, ``labels`` the speaker (0 .. S-1, ``class_names`` describe them), ``frame_labels`` (N, F) int64 the
phone of each 10 ms frame (ids into ``frame_class_names`` = :data:`~contrastkit.data.speech.phones.PHONES`,
39 ARPAbet phones and ``sil``; -1 where eSpeak reported a phoneme outside the table).

How one utterance is made (everything a function of ``seed`` and the utterance's position):

1. **Text**: ``S * (train_sentences + test_sentences)`` distinct sentences from
   :func:`~contrastkit.data.speech.sentences.make_sentences`; the first ``S * train_sentences`` are the
   training utterances, the rest the test ones, so test sentences are new sentences, spoken by the same
   speakers. Every utterance has its own sentence.
2. **Voice**: speaker ``s`` of :func:`~contrastkit.data.speech.speakers.make_speakers` with its per-utterance
   jitter of pitch, pitch range and rate; spoken at eSpeak volume 60 (no clipping) in a fresh child process
   (:mod:`contrastkit.data.speech.fresh`) so the audio depends on the dataset's parameters only.
3. **Resample** 22,050 -> 16,000 Hz with ``scipy.signal.resample_poly(x, 320, 441)``.
4. **Trim and crop**: the utterance is trimmed to its first and last 10 ms frame within 40 dB of its loudest
   frame; from the trimmed speech a window of ``clip_seconds`` starting at a random frame is taken. A shorter
   utterance is kept whole from its start and padded with zeros at the end (padding frames are ``sil`` and get
   the same channel noise as the rest). Crops start on the 10 ms grid, so frames stay aligned to phone times.
5. **Channel**: :func:`~contrastkit.data.speech.channel.degrade` (random filter, noise at 0..20 dB SNR, gain).
6. **Store**: int16 (``round(32767 * y)``); ``x = int16 / 32768``.

The result is cached as ``speech-<hash>.npz`` (:mod:`contrastkit.data.speech.cache`); the hash covers every
parameter, the format version and the installed ``espeakng-loader`` version. A cache file that fails to load
or to pass the shape / range checks is rebuilt. Any change to how utterances are made (sentences, speakers,
jitter, channel, crop) must bump :data:`FORMAT_VERSION`, or old caches would be served as the new data.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from scipy.signal import resample_poly

from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.data.speech.cache import cache_folder, cache_path, read_cache, write_cache
from contrastkit.data.speech.channel import degrade
from contrastkit.data.speech.fresh import synthesize_fresh
from contrastkit.data.speech.phones import PHONES, frame_labels
from contrastkit.data.speech.sentences import make_sentences
from contrastkit.data.speech.speakers import Speaker, make_speakers
from contrastkit.data.split import check_seed

__all__ = ["FORMAT_VERSION", "HOP", "SAMPLE_RATE", "Utterance", "build_speech", "plan_utterances"]

SAMPLE_RATE = 16_000
HOP = 160  # samples per 10 ms frame
FORMAT_VERSION = 2  # 2: eSpeak's noise generator seeded per utterance (1 left it seeded by the clock)
VOLUME = 60
TRIM_DB = 40.0
_KEYS = ("x_train", "y_train", "f_train", "x_test", "y_test", "f_test", "speaker_names", "phone_names")


@dataclass(frozen=True)
class Utterance:
    """What one utterance says and how: ``split`` is "train" or "test"; ``index`` its position in all."""

    split: str
    index: int
    speaker: int
    text: str
    voice: dict[str, int | str]  # keyword arguments of espeak.synthesize, text excluded


def plan_utterances(seed: int, speakers: list[Speaker], train_sentences: int,
                    test_sentences: int) -> list[Utterance]:
    """Every utterance of the dataset, train ones first (speaker-major), each with its own sentence."""
    n = len(speakers)
    texts = make_sentences(n * (train_sentences + test_sentences), seed)
    plan = []
    for split, per, first in (("train", train_sentences, 0), ("test", test_sentences, n * train_sentences)):
        for s, speaker in enumerate(speakers):
            for j in range(per):
                index = first + s * per + j
                rng = np.random.default_rng([seed, index, 0])
                voice: dict[str, int | str] = {"voice": speaker.voice, "volume": VOLUME,
                                               **speaker.utterance_params(rng),
                                               "noise_seed": int(rng.integers(2**31))}
                plan.append(Utterance(split, index, s, texts[index], voice))
    return plan


def _trim(x: np.ndarray) -> tuple[int, int]:
    """(first, end) 10 ms frames of ``x`` within ``TRIM_DB`` of its loudest frame; (0, 0) for silence."""
    frames = len(x) // HOP
    energy = (x[: frames * HOP].reshape(frames, HOP) ** 2).mean(1) if frames else np.zeros(0)
    active = np.flatnonzero(energy > energy.max(initial=0.0) * 10 ** (-TRIM_DB / 10))
    return (int(active[0]), int(active[-1]) + 1) if len(active) else (0, 0)


def render(samples: np.ndarray, phonemes: tuple[tuple[str, int], ...], clip_frames: int,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """eSpeak's int16 22,050 Hz audio -> (int16 (clip_frames * 160,) at 16 kHz, int8 (clip_frames,) phones)."""
    x = resample_poly(samples.astype(np.float64) / 32768.0, 320, 441)
    first, end = _trim(x)
    if end - first >= clip_frames:
        start = first + int(rng.integers(end - first - clip_frames + 1))
        speech = x[start * HOP: (start + clip_frames) * HOP]
    else:
        start = first
        speech = np.zeros(clip_frames * HOP)
        speech[: (end - first) * HOP] = x[first * HOP: end * HOP]
    labels = frame_labels(phonemes, clip_frames, offset_ms=start * 10.0, end_ms=end * 10.0)
    y = degrade(speech, rng, SAMPLE_RATE)
    return np.round(np.clip(y, -1.0, 1.0) * 32767).astype(np.int16), labels.astype(np.int8)


def _check(name: str, value: int, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"build_speech: `{name}` must be an integer >= {low}, got {value!r}")
    return int(value)


def _espeak_version() -> str:
    try:
        return metadata.version("espeakng-loader")
    except metadata.PackageNotFoundError:
        return "unknown"


def _valid(arrays: dict[str, np.ndarray], n_speakers: int, per: tuple[int, int], clip_frames: int) -> bool:
    """Whether a cache file's arrays have the shapes, dtypes and ranges this build would give."""
    if tuple(arrays["phone_names"].tolist()) != PHONES or len(arrays["speaker_names"]) != n_speakers:
        return False
    for split, count in zip(("train", "test"), per, strict=True):
        x, y, f = arrays[f"x_{split}"], arrays[f"y_{split}"], arrays[f"f_{split}"]
        n = n_speakers * count
        if (x.dtype != np.int16 or x.shape != (n, clip_frames * HOP) or y.dtype != np.int64 or y.shape != (n,)
                or f.dtype != np.int8 or f.shape != (n, clip_frames)):
            return False
        if n and (y.min() < 0 or y.max() >= n_speakers or f.min() < -1 or f.max() >= len(PHONES)):
            return False
    return True


def _build_arrays(seed: int, speakers: list[Speaker], train_sentences: int, test_sentences: int,
                  clip_frames: int) -> dict[str, np.ndarray]:
    plan = plan_utterances(seed, speakers, train_sentences, test_sentences)
    spoken = synthesize_fresh([{"text": u.text, **u.voice} for u in plan])
    out: dict[str, list[np.ndarray]] = {key: [] for key in ("x_train", "f_train", "x_test", "f_test")}
    for u, (samples, phonemes) in zip(plan, spoken, strict=True):
        audio, phones = render(samples, phonemes, clip_frames, np.random.default_rng([seed, u.index, 1]))
        out[f"x_{u.split}"].append(audio)
        out[f"f_{u.split}"].append(phones)
    arrays = {key: np.stack(value) if value else np.zeros((0, clip_frames * HOP if key[0] == "x" else clip_frames),
                                                          np.int16 if key[0] == "x" else np.int8)
              for key, value in out.items()}
    for split in ("train", "test"):
        arrays[f"y_{split}"] = np.array([u.speaker for u in plan if u.split == split], dtype=np.int64)
    arrays["speaker_names"] = np.array([s.name for s in speakers], dtype=str)
    arrays["phone_names"] = np.array(PHONES, dtype=str)
    return arrays


def _dataset(x: np.ndarray, y: np.ndarray, f: np.ndarray) -> ArrayDataset:
    audio = torch.from_numpy(x.astype(np.float32) / 32768.0)[:, None, :]
    return ArrayDataset(audio, torch.from_numpy(y.astype(np.int64)), torch.from_numpy(f.astype(np.int64)))


def build_speech(seed: int = 0, *, num_speakers: int = 24, train_sentences: int = 40, test_sentences: int = 10,
                 clip_seconds: float = 1.6, cache_dir: Path | None = None) -> DatasetSplits:
    """The ``speech`` dataset for ``seed``: loaded from the cache, or built (seconds) and cached.

    Args:
        seed: everything (speakers, sentences, jitter, channels, crops) follows from it.
        num_speakers: distinct synthetic speakers (>= 2; at most 296).
        train_sentences / test_sentences: utterances per speaker in each split (>= 1 / >= 0), each a sentence
            of its own; test sentences never occur in training.
        clip_seconds: length of every utterance, rounded to whole 10 ms frames.
        cache_dir: where the ``.npz`` lives (default :func:`~contrastkit.data.speech.cache.cache_folder`).

    Prints ``built speech data in N s -> path`` or ``loaded speech data from cache path`` to stderr.
    """
    seed = check_seed(seed, "build_speech")
    n = _check("num_speakers", num_speakers, 2)
    per = (_check("train_sentences", train_sentences, 1), _check("test_sentences", test_sentences, 0))
    if isinstance(clip_seconds, bool) or not isinstance(clip_seconds, int | float) or not clip_seconds >= 0.01:
        raise ValueError(f"build_speech: `clip_seconds` must be a number >= 0.01, got {clip_seconds!r}")
    clip_frames = round(float(clip_seconds) * 100)
    params = {"format": FORMAT_VERSION, "seed": seed, "num_speakers": n, "train_sentences": per[0],
              "test_sentences": per[1], "clip_frames": clip_frames, "espeakng_loader": _espeak_version()}
    path = cache_path("speech", params, cache_folder() if cache_dir is None else Path(cache_dir))
    speakers = make_speakers(n, seed)
    arrays = read_cache(path, params, _KEYS)
    if arrays is not None and _valid(arrays, n, per, clip_frames):
        print(f"loaded speech data from cache {path}", file=sys.stderr)
    else:
        if path.exists():
            print(f"speech data cache {path} is unreadable or does not match; rebuilding", file=sys.stderr)
        began = time.perf_counter()
        arrays = _build_arrays(seed, speakers, per[0], per[1], clip_frames)
        write_cache(path, params, arrays)
        print(f"built speech data in {time.perf_counter() - began:.1f} s -> {path}", file=sys.stderr)
    return DatasetSplits("speech", _dataset(arrays["x_train"], arrays["y_train"], arrays["f_train"]),
                         _dataset(arrays["x_test"], arrays["y_test"], arrays["f_test"]), n,
                         class_names=tuple(arrays["speaker_names"].tolist()), frame_class_names=PHONES)
