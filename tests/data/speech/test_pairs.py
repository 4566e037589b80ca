"""The built-in paired speech sets ``speech-text`` and ``spoken-digits``: fields, held-out sentences and voices,
the clip rendering, determinism across child processes, the cache and bad parameters (tiny builds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import contrastkit.data.speech as speech_package
from contrastkit.data import load_dataset
from contrastkit.data.load import SEQUENCE_DATASETS, ZERO_SHOT_COMPANIONS
from contrastkit.data.speech import build_speech_text, build_spoken_digits, clips
from contrastkit.data.speech.captions import DIGITS
from contrastkit.data.speech.pairs import (
    CLIP_SECONDS,
    FEMALE_VARIANTS,
    MALE_VARIANTS,
    held_out_variants,
    paired_speakers,
    plan_speech_text,
    plan_spoken_digits,
)
from contrastkit.data.speech.speakers import VARIANTS
from contrastkit.data.text import decode_texts

SMALL = {"train_pairs": 12, "test_pairs": 6}
CLIP = round(CLIP_SECONDS * 16_000)


@pytest.fixture(autouse=True)
def _no_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONTRASTKIT_CACHE", str(tmp_path / "user-cache"))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    return build_speech_text(0, **SMALL, cache_dir=tmp_path_factory.mktemp("pairs"), processes=1)


def _variant(voice: str) -> str:
    return voice.split("+")[1]


def test_speech_text_fields_and_texts(small) -> None:
    assert small.name == "speech-text" and small.field_names == ("audio", "text") and small.modality == "sequences"
    assert small.num_classes == 0 and not small.has_labels and small.input_shape == (1, CLIP)
    plan = plan_speech_text(0, 12, 6)
    for part, split in ((small.train, "train"), (small.test, "test")):
        audio = part.field("audio")
        assert part.x is audio and audio.dtype == torch.float16 and audio.shape == (len(part), 1, CLIP)
        assert bool((part.labels == -1).all()) and part.field("text").dtype == torch.uint8
        assert decode_texts(part.field("text")) == [u.text for u in plan if u.split == split]
        peaks = audio.float().abs().amax(dim=(1, 2))
        assert bool((peaks <= 1.0).all()) and bool((peaks >= 0.04).all())  # the gain sets the peak to 0.05..0.9
    assert len(small.train) == 12 and len(small.test) == 6


def test_held_out_sentences_and_voices() -> None:
    plan = plan_speech_text(0, 3000, 200)
    train = [u for u in plan if u.split == "train"]
    test = [u for u in plan if u.split == "test"]
    assert len(train) == 3000 and len(test) == 200
    assert len({u.text for u in train}) == 3000 and len({u.text for u in test}) == 200
    assert not {u.text for u in train} & {u.text for u in test}
    assert all(any(w.strip(".") in DIGITS for w in u.text.lower().split()) for u in plan)
    held_out = held_out_variants(0)
    assert len(held_out) == 6 and len(set(held_out) & set(FEMALE_VARIANTS)) == 3 \
        and len(set(held_out) & set(MALE_VARIANTS)) == 3
    assert {_variant(u.speak["voice"]) for u in test} == set(held_out)  # 200 utterances reach all six
    assert {_variant(u.speak["voice"]) for u in train} == set(VARIANTS) - set(held_out)
    train_speakers, test_speakers = paired_speakers(0)
    assert len(train_speakers) == 8 * 31 and len(test_speakers) == 8 * 6
    assert held_out_variants(1) != held_out  # another seed holds out other voices
    # the held-out sentences do not change with the number of training pairs
    assert [u.text for u in plan_speech_text(0, 5, 200) if u.split == "test"] == [u.text for u in test]


def test_spoken_digits_use_the_same_held_out_voices(tmp_path: Path) -> None:
    plan = plan_spoken_digits(0, 3, 20)
    test = [u for u in plan if u.split == "test"]
    assert [u.text for u in test] == [DIGITS[i % 10] for i in range(200)]
    assert {_variant(u.speak["voice"]) for u in test} <= set(held_out_variants(0))
    assert not {_variant(u.speak["voice"]) for u in plan if u.split == "train"} & set(held_out_variants(0))
    digits = build_spoken_digits(0, train_per_digit=1, test_per_digit=1, cache_dir=tmp_path)
    assert digits.name == "spoken-digits" and digits.class_names == DIGITS and digits.num_classes == 10
    assert digits.field_names == ("audio", "text") and digits.input_shape == (1, CLIP)
    for part in (digits.train, digits.test):
        assert part.labels.tolist() == list(range(10)) and part.x.dtype == torch.float16
        assert decode_texts(part.field("text")) == list(DIGITS)
    # no sentence of speech-text is a digit word alone
    assert not {u.text.lower().strip(".") for u in plan_speech_text(0, 3000, 200)} & set(DIGITS)


def test_render_clip_places_trims_and_sets_the_snr() -> None:
    """A 1 s tone between 0.5 s silences: trimmed to 1 s, at the clip's start, noise 20 dB below it."""
    rate = 22_050
    t = np.arange(rate) / rate
    samples = np.concatenate([np.zeros(rate // 2), 0.5 * np.sin(2 * np.pi * 1000 * t), np.zeros(rate // 2)])
    samples = np.round(samples * 32767).astype(np.int16)
    clip, length = clips.render_clip(samples, 32_000, np.random.default_rng(0), snr_db=(20.0, 20.0))
    assert clip.dtype == np.int16 and clip.shape == (32_000,) and abs(length - 16_000) <= 160
    y = clip.astype(np.float64) / 32767
    assert 0.05 - 1e-4 <= np.abs(y).max() <= 0.9 + 1e-4
    noise = np.mean(y[length + 1_000:] ** 2)
    speech = np.mean(y[:length] ** 2) - noise
    assert abs(10 * np.log10(speech / noise) - 20.0) < 1.0
    cut, whole = clips.render_clip(samples, 8_000, np.random.default_rng(0))
    assert cut.shape == (8_000,) and whole == length  # longer than the clip: cut, its length still told


def test_chunks_make_the_audio_independent_of_the_process_count() -> None:
    plan = plan_speech_text(3, 4, 2)
    requests = [{"speak": u.speak, "seed": list(u.seed)} for u in plan]
    one, lengths_one = clips.synthesize_clips(requests, 4_000, processes=1, chunk=3)
    two, lengths_two = clips.synthesize_clips(requests, 4_000, processes=2, chunk=3)
    assert np.array_equal(one, two) and np.array_equal(lengths_one, lengths_two) and one.shape == (6, 4_000)
    # each chunk starts fresh: the first chunk equals the start of one long chunk
    whole, _ = clips.synthesize_clips(requests, 4_000, processes=1, chunk=6)
    assert np.array_equal(whole[:3], one[:3])


def test_same_seed_same_arrays_and_test_audio_independent_of_train_pairs(small, tmp_path: Path) -> None:
    again = build_speech_text(0, **SMALL, cache_dir=tmp_path / "a", processes=2)
    for name in ("audio", "text"):
        assert torch.equal(again.train.field(name), small.train.field(name))
        assert torch.equal(again.test.field(name), small.test.field(name))
    more = build_speech_text(0, train_pairs=14, test_pairs=6, cache_dir=tmp_path / "b")
    assert torch.equal(more.test.x, small.test.x) and torch.equal(more.train.x[:12], small.train.x)


def test_the_cache_is_reused_and_a_damaged_file_rebuilt(small, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Also: speech longer than ``clip_seconds`` is cut and counted (every sentence is longer than 0.5 s)."""
    first = build_speech_text(2, train_pairs=3, test_pairs=2, clip_seconds=0.5, cache_dir=tmp_path)
    err = capsys.readouterr().err
    assert "built speech-text data in" in err and "5 of 5 utterances (100.00 %) longer than 0.5 s, cut at the end" \
        in err and first.input_shape == (1, 8_000)
    assert not torch.equal(first.test.x[:, :, :4_000], small.test.x[:2, :, :4_000])  # seed 2 is not seed 0
    files = list(tmp_path.glob("speech-text-*.npz"))
    assert len(files) == 1
    second = build_speech_text(2, train_pairs=3, test_pairs=2, clip_seconds=0.5, cache_dir=tmp_path)
    assert "loaded speech-text data from cache" in capsys.readouterr().err
    assert torch.equal(first.train.x, second.train.x) and torch.equal(first.test.x, second.test.x)
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    third = build_speech_text(2, train_pairs=3, test_pairs=2, clip_seconds=0.5, cache_dir=tmp_path)
    assert "rebuilding" in capsys.readouterr().err and torch.equal(first.train.x, third.train.x)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: build_speech_text(0, train_pairs=0), r"build_speech_text: `train_pairs` must be an integer >= 1, got 0"),
    (lambda: build_speech_text(0, test_pairs=2.5), r"`test_pairs` must be an integer >= 1, got 2\.5"),
    (lambda: build_speech_text(0, clip_seconds=0), r"`clip_seconds` must be a number in \[0\.1, 60\], got 0"),
    (lambda: build_speech_text(0, clip_seconds=True), r"`clip_seconds` must be a number"),
    (lambda: build_speech_text(0, processes=0), r"`processes` must be an integer >= 1, got 0"),
    (lambda: build_speech_text(-1), r"build_speech_text.*seed"),
    (lambda: build_spoken_digits(0, test_per_digit=0), r"build_spoken_digits: `test_per_digit` must be an integer"),
    (lambda: build_spoken_digits(0, train_per_digit="5"), r"`train_per_digit` must be an integer >= 1, got '5'"),
])
def test_bad_parameters(call, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_load_dataset_reaches_both_builders(small, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def builder(name: str):
        def build(seed: int = 0, **kwargs: object):
            calls.append((name, seed, kwargs))
            return small
        return build

    monkeypatch.setattr(speech_package, "build_speech_text", builder("text"))
    monkeypatch.setattr(speech_package, "build_spoken_digits", builder("digits"))
    assert load_dataset("speech-text", seed=4) is small and load_dataset("Spoken-Digits", seed=4) is small
    assert calls == [("text", 4, {}), ("digits", 4, {})]  # the defaults: 20,000 pairs, 200 held out
    assert all(a in SEQUENCE_DATASETS and b in SEQUENCE_DATASETS for a, b in ZERO_SHOT_COMPANIONS.items())
    with pytest.raises(ValueError, match="holds sequences"):
        load_dataset("speech-text", size=32)
