"""The eSpeak ``speech`` dataset: layout, determinism, disjoint sentences, alignment and the cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

import contrastkit.data.speech as speech_package
from contrastkit.data import load_dataset
from contrastkit.data.speech import build_speech
from contrastkit.data.speech.build import plan_utterances
from contrastkit.data.speech.phones import PHONES
from contrastkit.data.speech.sentences import make_sentences
from contrastkit.data.speech.speakers import make_speakers

SMALL = {"num_speakers": 3, "train_sentences": 3, "test_sentences": 2, "clip_seconds": 1.0}


@pytest.fixture(autouse=True)
def _no_user_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONTRASTKIT_CACHE", str(tmp_path / "user-cache"))


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    return build_speech(0, **SMALL, cache_dir=tmp_path_factory.mktemp("speech"))


def _int16(x: torch.Tensor) -> np.ndarray:
    return (x.numpy() * 32768.0).round().astype(np.int16)


def _digest(splits, count: int = 4) -> str:
    return hashlib.sha256(_int16(splits.train.x[:count]).tobytes()).hexdigest()


def test_layout_like_toyspeech(small) -> None:
    assert small.name == "speech" and small.modality == "sequences"
    assert len(small.train) == 9 and len(small.test) == 6 and small.num_classes == 3
    for part in (small.train, small.test):
        assert part.x.dtype == torch.float32 and part.x.shape[1:] == (1, 16_000)
        assert float(part.x.abs().max()) <= 1.0 and float(part.x.abs().max()) > 0.01
        assert part.labels.dtype == torch.int64 and set(part.labels.tolist()) == {0, 1, 2}
        assert part.frame_labels is not None and part.frame_labels.dtype == torch.int64
        assert part.frame_labels.shape == (len(part), 100) and part.frame_hop == 160
        assert int(part.frame_labels.min()) >= -1 and int(part.frame_labels.max()) < len(PHONES)
    assert small.frame_class_names == PHONES == tuple(sorted(PHONES)) and len(PHONES) == 40
    assert len(set(small.class_names)) == 3 and all("+" in name for name in small.class_names)
    # speech, not silence: most frames carry a phone
    assert float((small.train.frame_labels != PHONES.index("sil")).float().mean()) > 0.8


def test_deterministic_for_a_seed_and_different_across_seeds(small, tmp_path: Path) -> None:
    again = build_speech(0, **SMALL, cache_dir=tmp_path / "a")
    assert _digest(again) == _digest(small)
    assert torch.equal(again.train.frame_labels, small.train.frame_labels)
    assert torch.equal(again.test.x, small.test.x)
    other = build_speech(1, **SMALL, cache_dir=tmp_path / "b")
    assert _digest(other) != _digest(small)


def test_train_and_test_sentences_are_disjoint() -> None:
    speakers = make_speakers(24, 0)
    plan = plan_utterances(0, speakers, 40, 10)
    train = [u.text for u in plan if u.split == "train"]
    test = [u.text for u in plan if u.split == "test"]
    assert len(train) == 960 and len(test) == 240
    assert len(set(train)) == 960 and len(set(test)) == 240 and not set(train) & set(test)
    assert {u.speaker for u in plan if u.split == "test"} == set(range(24))
    assert make_sentences(5, 3) == make_sentences(5, 3) != make_sentences(5, 4)
    assert not set(make_sentences(50, 3, exclude=make_sentences(20, 3))) & set(make_sentences(20, 3))


def test_at_least_twenty_distinct_speakers_by_default() -> None:
    speakers = make_speakers(24, 0)
    assert len({s.voice for s in speakers}) == 24 and len({s.voice.split("+")[1] for s in speakers}) == 24
    assert make_speakers(24, 0) == speakers != make_speakers(24, 1)
    with pytest.raises(ValueError, match="n"):
        make_speakers(10**4, 0)


def test_frame_labels_follow_the_audio(small) -> None:
    """Fricative frames (S, SH, Z, F) carry more of their energy above 4 kHz than vowel frames."""
    x = small.train.x[:, 0].numpy().astype(np.float64)
    frames = x.reshape(len(x), -1, 160)
    spectra = np.abs(np.fft.rfft(frames, axis=2)) ** 2  # 81 bins of 100 Hz
    high = spectra[:, :, 40:].sum(2) / (spectra.sum(2) + 1e-12)
    labels = small.train.frame_labels.numpy()
    fricative = np.isin(labels, [PHONES.index(p) for p in ("S", "SH", "Z", "F")])
    vowel = np.isin(labels, [PHONES.index(p) for p in ("IY", "IH", "AE", "AA", "AH", "OW", "EY", "AY")])
    assert fricative.sum() > 20 and vowel.sum() > 100
    assert high[fricative].mean() > 1.5 * high[vowel].mean()


def test_cache_is_used_then_a_corrupt_file_is_rebuilt(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    first = build_speech(2, **SMALL, cache_dir=tmp_path)
    assert "built speech data in" in capsys.readouterr().err
    files = list(tmp_path.glob("speech-*.npz"))
    assert len(files) == 1
    second = build_speech(2, **SMALL, cache_dir=tmp_path)
    assert "loaded speech data from cache" in capsys.readouterr().err
    assert torch.equal(first.train.x, second.train.x)
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])  # truncated
    third = build_speech(2, **SMALL, cache_dir=tmp_path)
    err = capsys.readouterr().err
    assert "rebuilding" in err and "built speech data in" in err
    assert torch.equal(first.train.x, third.train.x)
    files[0].write_bytes(b"not a zip file at all")
    assert _digest(build_speech(2, **SMALL, cache_dir=tmp_path)) == _digest(first)
    assert "rebuilding" in capsys.readouterr().err


def test_a_cache_file_with_wrong_contents_is_not_trusted(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    first = build_speech(3, **SMALL, cache_dir=tmp_path)
    path = next(tmp_path.glob("speech-*.npz"))
    with np.load(path, allow_pickle=False) as data:
        arrays = dict(data)
    arrays["y_train"] = arrays["y_train"] + 7  # out of range labels, same params
    np.savez(path, **arrays)
    capsys.readouterr()
    again = build_speech(3, **SMALL, cache_dir=tmp_path)
    assert "rebuilding" in capsys.readouterr().err and torch.equal(again.train.labels, first.train.labels)


def test_default_cache_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONTRASTKIT_CACHE", str(tmp_path / "ck"))
    build_speech(0, num_speakers=2, train_sentences=1, test_sentences=0, clip_seconds=0.3)
    assert len(list((tmp_path / "ck").glob("speech-*.npz"))) == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_speakers"):
        build_speech(0, num_speakers=1)
    with pytest.raises(ValueError, match="clip_seconds"):
        build_speech(0, clip_seconds=0)
    with pytest.raises(ValueError, match="seed"):
        build_speech(-1)


def test_load_dataset_speech_reaches_the_builder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []

    def small_build(seed: int = 0, **_: object):
        calls.append(seed)
        return build_speech(seed, num_speakers=2, train_sentences=2, test_sentences=1, clip_seconds=0.5,
                            cache_dir=tmp_path)

    monkeypatch.setattr(speech_package, "build_speech", small_build)
    splits = load_dataset("speech", seed=5)
    assert calls == [5] and splits.name == "speech" and splits.input_shape == (1, 8000)


@pytest.mark.slow
def test_default_build_through_load_dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONTRASTKIT_CACHE", str(tmp_path))
    splits = load_dataset("speech", seed=0)
    assert splits.num_classes == 24 and len(splits.train) == 960 and len(splits.test) == 240
    assert splits.input_shape == (1, 25_600) and splits.train.frame_labels.shape == (960, 160)
    assert _digest(splits) == _digest(build_speech(0, cache_dir=tmp_path / "again"))
