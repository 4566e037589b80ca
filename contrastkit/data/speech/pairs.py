"""Built-in paired speech, no download: ``speech-text`` (utterances with their sentences) and ``spoken-digits``.

Both are synthesised with the eSpeak NG of ``espeakng-loader``, everything a function of ``seed``, and cached as
``speech-text-<hash>.npz`` / ``spoken-digits-<hash>.npz`` (:mod:`contrastkit.data.speech.cache`; the hash covers
every parameter, :data:`FORMAT_VERSION` and the ``espeakng-loader`` version; audio is int16 on disk).

**Fields.** ``audio`` (the default field): sequences (N, 1, T) at 16 kHz in [-1, 1], T = ``clip_seconds`` x
16,000, held in memory as **float16** to halve the memory (20,200 clips of 2.8 s: 1.8 GB rather than 3.6 GB);
batching and evaluation call ``.float()`` on each batch, so a model sees float32. ``text``: the sentence as
uint8 UTF-8 bytes (:func:`contrastkit.data.text.encode_texts`).

**speech-text** (:func:`build_speech_text`): ``train_pairs`` training pairs and ``test_pairs`` held-out pairs,
each utterance its own sentence from :func:`~contrastkit.data.speech.captions.make_captions` (5-7 words, each
with a digit word ``zero`` .. ``nine``). The held-out sentences are drawn first (from their own stream, so they
do not change with ``train_pairs``) and never occur in training. The data is **unlabelled** (labels -1): the
pairing is the supervision, and a speaker label would make the label-based evaluation (k-NN, linear probe)
measure speaker identity, on held-out voices that no training label names.

**Voices** (:func:`paired_speakers`): of eSpeak's 37 voice variants
(:data:`~contrastkit.data.speech.speakers.VARIANTS`), 3 female and 3 male ones, drawn from ``seed``, are held
out: they speak the held-out pairs and never a training utterance. A speaker is a (accent, variant) pair, 8
accents x 31 training variants = 248 training speakers, 8 x 6 = 48 held-out ones, each with its own base pitch
(25..75), pitch range (30..80) and rate (160..220 words per minute), jittered per utterance by
:meth:`~contrastkit.data.speech.speakers.Speaker.utterance_params`. Each utterance's speaker is drawn uniformly
from its split's speakers.

**spoken-digits** (:func:`build_spoken_digits`): the ten digit words spoken alone, labels 0..9 and
``class_names`` ``("zero", ..., "nine")``, ``text`` the word itself. Training items by training voices, test
items by the *same* held-out voices as ``speech-text`` of the same seed, ``test_per_digit`` jittered utterances
per digit (default 20: 200 items). The clips have the same sample rate, length and form as ``speech-text``'s, so
one audio tower reads both. ``speech-text`` never contains a digit word alone (each sentence has 5-7 words),
so a run trained on ``speech-text`` meets isolated digits first in ``spoken-digits``' test split:
:data:`ZERO_SHOT_COMPANIONS` names that pairing for evaluation (zero-shot classification: each digit word
embedded by the text tower, each clip takes the nearest).

**Audio** (:mod:`contrastkit.data.speech.clips`): resampled 22,050 -> 16,000 Hz, trimmed, placed at the start
of a ``clip_seconds`` clip (speech longer than the clip is cut at the end and counted in the build message), a
random channel filter, noise at 10..30 dB SNR against the speech (milder than the ``speech`` dataset's 0..20 dB,
so every word stays intelligible), a random gain. The default ``clip_seconds`` (:data:`CLIP_SECONDS`) holds
over 99 % of the default utterances whole (measured on seed 0: see :data:`CLIP_SECONDS`).

Any change to how utterances are made (captions, voices, jitter, channel, chunking) must bump
:data:`FORMAT_VERSION`, or old caches would be served as the new data.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contrastkit.data.containers import ArrayDataset, DatasetSplits
from contrastkit.data.speech import clips
from contrastkit.data.speech.cache import cache_folder, cache_path, read_cache, write_cache
from contrastkit.data.speech.captions import DIGITS, make_captions
from contrastkit.data.speech.speakers import ACCENTS, VARIANTS, Speaker
from contrastkit.data.split import check_seed
from contrastkit.data.text import encode_texts

__all__ = ["CLIP_SECONDS", "FORMAT_VERSION", "ZERO_SHOT_COMPANIONS", "PairedUtterance", "build_speech_text",
           "build_spoken_digits", "held_out_variants", "paired_speakers", "plan_speech_text", "plan_spoken_digits"]

FORMAT_VERSION = 1
#: default clip length in seconds. Measured on seed 0's 20,200 speech-text utterances (trimmed speech): median
#: 1.79 s, 99th percentile 2.73 s, longest 3.29 s; 130 (0.64 %) are longer than 2.8 s and cut at the end
CLIP_SECONDS = 2.8
FEMALE_VARIANTS = VARIANTS[:14]
MALE_VARIANTS = VARIANTS[14:]
HELD_OUT_PER_SEX = 3
RATE = (160, 220)  # words per minute of a speaker, before the per-utterance jitter of +-10 %
#: a paired dataset -> the labelled dataset its runs are evaluated on zero-shot (its test split, same seed)
ZERO_SHOT_COMPANIONS = {"speech-text": "spoken-digits"}
_TAGS = {("speech-text", "test"): 1, ("speech-text", "train"): 2, ("spoken-digits", "test"): 3,
         ("spoken-digits", "train"): 4}


@dataclass(frozen=True)
class PairedUtterance:
    """One utterance: ``split`` "train" / "test", ``index`` its position in that split, ``text`` what it says,
    ``speak`` the keyword arguments of :func:`contrastkit.data.speech.espeak.synthesize`, ``seed`` its channel's."""

    split: str
    index: int
    text: str
    speaker: Speaker
    speak: dict[str, int | str]
    seed: tuple[int, ...]


def held_out_variants(seed: int) -> tuple[str, ...]:
    """The 3 female and 3 male eSpeak voice variants that ``seed``'s training data never uses."""
    rng = np.random.default_rng([seed, 7])
    female = rng.choice(len(FEMALE_VARIANTS), HELD_OUT_PER_SEX, replace=False)
    male = rng.choice(len(MALE_VARIANTS), HELD_OUT_PER_SEX, replace=False)
    return tuple(FEMALE_VARIANTS[i] for i in sorted(female)) + tuple(MALE_VARIANTS[i] for i in sorted(male))


def paired_speakers(seed: int) -> tuple[list[Speaker], list[Speaker]]:
    """(training speakers, held-out speakers): every accent with every training / held-out variant."""
    held_out = held_out_variants(seed)
    rng = np.random.default_rng([seed, 8])
    speakers: dict[str, list[Speaker]] = {"train": [], "test": []}
    for variant in VARIANTS:
        for accent in ACCENTS:
            speaker = Speaker(f"{accent}+{variant}", int(rng.integers(25, 76)), int(rng.integers(30, 81)),
                              int(rng.integers(RATE[0], RATE[1] + 1)))
            speakers["test" if variant in held_out else "train"].append(speaker)
    return speakers["train"], speakers["test"]


def _utterances(dataset: str, split: str, texts: list[str], speakers: list[Speaker],
                seed: int) -> list[PairedUtterance]:
    tag = _TAGS[dataset, split]
    out = []
    for index, text in enumerate(texts):
        rng = np.random.default_rng([seed, tag, index, 0])
        speaker = speakers[int(rng.integers(len(speakers)))]
        speak: dict[str, int | str] = {"text": text, "voice": speaker.voice, "volume": clips.VOLUME,
                                       **speaker.utterance_params(rng), "noise_seed": int(rng.integers(2**31))}
        out.append(PairedUtterance(split, index, text, speaker, speak, (seed, tag, index, 1)))
    return out


def _speech_text_texts(seed: int, train_pairs: int, test_pairs: int) -> tuple[list[str], list[str]]:
    test = make_captions(test_pairs, [seed, 1])
    return make_captions(train_pairs, [seed, 2], exclude=test), test


def plan_speech_text(seed: int, train_pairs: int, test_pairs: int) -> list[PairedUtterance]:
    """Every utterance of ``speech-text``, held-out ones first (spoken first: their audio never depends on
    ``train_pairs``)."""
    train_texts, test_texts = _speech_text_texts(seed, train_pairs, test_pairs)
    train_speakers, test_speakers = paired_speakers(seed)
    return (_utterances("speech-text", "test", test_texts, test_speakers, seed)
            + _utterances("speech-text", "train", train_texts, train_speakers, seed))


def _digit_labels(per_digit: int) -> np.ndarray:
    return np.tile(np.arange(10, dtype=np.int64), per_digit)  # 0, 1, ..., 9, 0, 1, ...


def plan_spoken_digits(seed: int, train_per_digit: int, test_per_digit: int) -> list[PairedUtterance]:
    """Every utterance of ``spoken-digits``, held-out ones first; digits cycle 0..9 within each split."""
    train_speakers, test_speakers = paired_speakers(seed)
    return (_utterances("spoken-digits", "test", [DIGITS[d] for d in _digit_labels(test_per_digit)],
                        test_speakers, seed)
            + _utterances("spoken-digits", "train", [DIGITS[d] for d in _digit_labels(train_per_digit)],
                          train_speakers, seed))


def _check_count(where: str, name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{where}: `{name}` must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_common(where: str, seed: object, clip_seconds: object, processes: object) -> tuple[int, int]:
    """(seed, clip samples) after checking ``seed``, ``clip_seconds`` and ``processes``."""
    seed = check_seed(seed, where)
    if isinstance(clip_seconds, bool) or not isinstance(clip_seconds, int | float) \
            or not 0.1 <= float(clip_seconds) <= 60.0:
        raise ValueError(f"{where}: `clip_seconds` must be a number in [0.1, 60], got {clip_seconds!r}")
    if processes is not None:
        _check_count(where, "processes", processes, 1)
    return seed, round(float(clip_seconds) * 100) * clips.HOP


def _espeak_version() -> str:
    try:
        return metadata.version("espeakng-loader")
    except metadata.PackageNotFoundError:
        return "unknown"


def _params(seed: int, clip_samples: int, **counts: int) -> dict[str, Any]:
    return {"format": FORMAT_VERSION, "seed": seed, **counts, "clip_samples": clip_samples,
            "snr_db": list(clips.SNR_DB), "chunk": clips.CHUNK, "espeakng_loader": _espeak_version()}


def _audio(x: np.ndarray) -> torch.Tensor:
    """int16 (N, T) -> float16 (N, 1, T) in [-1, 1), converted in blocks (no float32 copy of the whole)."""
    out = torch.empty((x.shape[0], 1, x.shape[1]), dtype=torch.float16)
    for start in range(0, x.shape[0], 1024):
        out[start:start + 1024, 0] = torch.from_numpy(x[start:start + 1024].astype(np.float32) / 32768.0)
    return out


def _load_or_build(name: str, path: Path, params: dict[str, Any], keys: tuple[str, ...],
                   valid: Callable[[dict[str, np.ndarray]], bool], plan: Callable[[], list[PairedUtterance]],
                   clip_samples: int, processes: int | None) -> dict[str, np.ndarray]:
    """The cached arrays (``audio_<split>``, ``length_<split>``), or built, cached and reported on stderr."""
    arrays = read_cache(path, params, keys)
    if arrays is not None and valid(arrays):
        print(f"loaded {name} data from cache {path}", file=sys.stderr)
        return arrays
    if path.exists():
        print(f"{name} data cache {path} is unreadable or does not match; rebuilding", file=sys.stderr)
    began = time.perf_counter()
    utterances = plan()
    audio, lengths = clips.synthesize_clips([{"speak": u.speak, "seed": list(u.seed)} for u in utterances],
                                            clip_samples, processes=processes)
    n_test = sum(u.split == "test" for u in utterances)
    arrays = {"audio_test": audio[:n_test], "length_test": lengths[:n_test],
              "audio_train": audio[n_test:], "length_train": lengths[n_test:]}
    write_cache(path, params, arrays)
    cut = int((lengths > clip_samples).sum())
    print(f"built {name} data in {time.perf_counter() - began:.1f} s ({cut} of {len(lengths)} utterances "
          f"({100 * cut / max(len(lengths), 1):.2f} %) longer than {clip_samples / clips.SAMPLE_RATE:g} s, cut at "
          f"the end) -> {path}", file=sys.stderr)
    return arrays


def _valid_audio(arrays: dict[str, np.ndarray], counts: dict[str, int], clip_samples: int) -> bool:
    for split, n in counts.items():
        audio, lengths = arrays[f"audio_{split}"], arrays[f"length_{split}"]
        if audio.dtype != np.int16 or audio.shape != (n, clip_samples) or lengths.dtype != np.int64 \
                or lengths.shape != (n,) or (n and int(lengths.min()) < 0):
            return False
    return True


def build_speech_text(seed: int = 0, *, train_pairs: int = 20_000, test_pairs: int = 200,
                      clip_seconds: float = CLIP_SECONDS, cache_dir: Path | None = None,
                      processes: int | None = None) -> DatasetSplits:
    """The ``speech-text`` dataset for ``seed`` (module doc): loaded from the cache, or built and cached.

    Args:
        seed: everything (sentences, held-out voices, speakers, jitter, channels) follows from it.
        train_pairs / test_pairs: utterance-sentence pairs in each split (>= 1 each), every one its own sentence.
        clip_seconds: length of every clip in [0.1, 60] s, rounded to 10 ms.
        cache_dir: where the ``.npz`` lives (default :func:`~contrastkit.data.speech.cache.cache_folder`).
        processes: eSpeak child processes run at once while building (None: 2, or 1 on one core); the data is
            the same for any value.

    Prints ``built speech-text data in N s (K of M utterances ... cut at the end) -> path`` or
    ``loaded speech-text data from cache path`` to stderr. The default build costs about 10 ms of CPU per
    utterance (synthesis 2.5 ms, rendering 7 ms) plus a second per child: measured 316 s on this project's 2-core
    machine while other work shared it; 1.8 GB on disk and in memory.
    """
    where = "build_speech_text"
    seed, clip_samples = _check_common(where, seed, clip_seconds, processes)
    counts = {"train": _check_count(where, "train_pairs", train_pairs, 1),
              "test": _check_count(where, "test_pairs", test_pairs, 1)}
    params = _params(seed, clip_samples, train_pairs=counts["train"], test_pairs=counts["test"])
    path = cache_path("speech-text", params, cache_folder() if cache_dir is None else Path(cache_dir))
    train_texts, test_texts = _speech_text_texts(seed, counts["train"], counts["test"])
    arrays = _load_or_build("speech-text", path, params, ("audio_train", "length_train", "audio_test", "length_test"),
                            lambda a: _valid_audio(a, counts, clip_samples),
                            lambda: plan_speech_text(seed, counts["train"], counts["test"]), clip_samples, processes)
    train = ArrayDataset.from_fields({"audio": _audio(arrays.pop("audio_train")), "text": encode_texts(train_texts)})
    test = ArrayDataset.from_fields({"audio": _audio(arrays.pop("audio_test")), "text": encode_texts(test_texts)})
    return DatasetSplits("speech-text", train, test, 0)


def build_spoken_digits(seed: int = 0, *, train_per_digit: int = 100, test_per_digit: int = 20,
                        clip_seconds: float = CLIP_SECONDS, cache_dir: Path | None = None,
                        processes: int | None = None) -> DatasetSplits:
    """The ``spoken-digits`` dataset for ``seed`` (module doc): loaded from the cache, or built and cached.

    Args:
        seed: as for :func:`build_speech_text`; the same seed gives the same held-out voices.
        train_per_digit / test_per_digit: utterances of each digit word in each split (>= 1 each); training ones
            by training voices, test ones by the held-out voices.
        clip_seconds, cache_dir, processes: as for :func:`build_speech_text` (keep ``clip_seconds`` equal to the
            ``speech-text`` run's so one audio tower reads both).
    """
    where = "build_spoken_digits"
    seed, clip_samples = _check_common(where, seed, clip_seconds, processes)
    per = {"train": _check_count(where, "train_per_digit", train_per_digit, 1),
           "test": _check_count(where, "test_per_digit", test_per_digit, 1)}
    counts = {split: 10 * n for split, n in per.items()}
    params = _params(seed, clip_samples, train_per_digit=per["train"], test_per_digit=per["test"])
    path = cache_path("spoken-digits", params, cache_folder() if cache_dir is None else Path(cache_dir))
    arrays = _load_or_build("spoken-digits", path, params,
                            ("audio_train", "length_train", "audio_test", "length_test"),
                            lambda a: _valid_audio(a, counts, clip_samples),
                            lambda: plan_spoken_digits(seed, per["train"], per["test"]), clip_samples, processes)

    def part(split: str) -> ArrayDataset:
        labels = _digit_labels(per[split])
        return ArrayDataset.from_fields({"audio": _audio(arrays.pop(f"audio_{split}")),
                                         "text": encode_texts([DIGITS[d] for d in labels])}, torch.from_numpy(labels))

    return DatasetSplits("spoken-digits", part("train"), part("test"), 10, class_names=DIGITS)
