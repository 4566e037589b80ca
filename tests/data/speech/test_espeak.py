"""The ctypes binding to eSpeak NG (espeakng-loader's library): audio, phoneme events, errors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from contrastkit.data.speech import espeak
from contrastkit.data.speech.espeak import SAMPLE_RATE, EspeakError, synthesize
from contrastkit.data.speech.fresh import synthesize_fresh
from contrastkit.data.speech.phones import PHONES, frame_labels, phone_of


def test_library_comes_from_the_pip_package() -> None:
    lib, data = espeak.library_paths()
    assert "espeakng_loader" in lib.parts and lib.is_file()
    assert (data / "phontab").is_file()


def test_event_struct_matches_the_c_layout() -> None:
    # 6 ints (24 bytes), a pointer at 24, the 8-byte union at 32: 40 bytes on 64-bit platforms
    import ctypes

    assert espeak._Event.audio_position.offset == 16
    assert espeak._Event.id.offset == 24 + ctypes.sizeof(ctypes.c_void_p)
    if ctypes.sizeof(ctypes.c_void_p) == 8:
        assert ctypes.sizeof(espeak._Event) == 40


def test_known_word_gives_audio_and_a_plausible_phone_sequence() -> None:
    result = synthesize("hello", "en")
    assert result.samples.dtype == np.int16 and 0.3 * SAMPLE_RATE < len(result.samples) < 1.5 * SAMPLE_RATE
    assert np.abs(result.samples.astype(np.int32)).max() > 1000
    phones = [phone_of(name) for name, _ in result.phonemes]
    assert [p for p in phones if p != "sil"] == ["HH", "AH", "L", "OW"]
    starts = [start for _, start in result.phonemes]
    assert starts == sorted(starts) and starts[0] >= 0 and starts[-1] <= 1000 * len(result.samples) / SAMPLE_RATE


def test_voice_and_parameters_change_the_audio() -> None:
    base = synthesize("one two three", "en", pitch=50)
    assert not np.array_equal(synthesize("one two three", "en+f3", pitch=50).samples[:5000], base.samples[:5000])
    slow, fast = synthesize("one two three", "en", rate=100), synthesize("one two three", "en", rate=300)
    assert len(slow.samples) > 1.8 * len(fast.samples)


def test_phone_times_align_with_the_audio() -> None:
    """Pauses are quiet; /s/ frames carry more energy above 4 kHz than vowel frames."""
    result = synthesize("sees, seas. sass? so! see.", "en")
    x = resample_poly(result.samples.astype(np.float64), 320, 441)
    frames = len(x) // 160
    labels = frame_labels(result.phonemes, frames, end_ms=frames * 10.0)
    spectra = np.abs(np.fft.rfft(x[: frames * 160].reshape(frames, 160), axis=1)) ** 2  # bins of 100 Hz
    energy, high = spectra.sum(1), spectra[:, 40:].sum(1) / (spectra.sum(1) + 1e-9)
    sil, s = labels == PHONES.index("sil"), labels == PHONES.index("S")
    vowel = np.isin(labels, [PHONES.index(p) for p in ("IY", "AE", "OW", "AA")])
    assert sil.sum() >= 5 and s.sum() >= 10 and vowel.sum() >= 10
    assert energy[sil].mean() < 0.05 * energy[vowel].mean()
    assert high[s].mean() > 0.3 > high[vowel].mean()


def test_errors_are_clear() -> None:
    with pytest.raises(EspeakError, match="unknown voice"):
        synthesize("hi", "no-such-voice")
    with pytest.raises(ValueError, match="rate"):
        synthesize("hi", rate=10)
    with pytest.raises(ValueError, match="text"):
        synthesize("   ")
    with pytest.raises(ValueError, match="noise_seed"):
        synthesize("hi", noise_seed=-1)


def test_a_library_that_cannot_load_is_an_espeak_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(espeak, "library_paths", lambda: (tmp_path / "libespeak-ng.so", tmp_path))
    with pytest.raises(EspeakError, match="cannot load"):
        espeak._Engine()


def test_fresh_process_output_does_not_depend_on_history() -> None:
    requests = [{"text": "the red fish", "voice": "en+m3"}, {"text": "a blue hat", "voice": "en-us+f2", "pitch": 60},
                {"text": "a green hat", "voice": "en+klatt3", "noise_seed": 12345}]  # breathy / Klatt: seeded noise
    first = synthesize_fresh(requests)
    time.sleep(1.1)  # eSpeak seeds its noise generator from the clock (seconds) unless told a seed
    for _ in range(3):
        synthesize("something else entirely", "en+croak")  # in this process: must not matter
    second = synthesize_fresh(requests)
    for (a, pa), (b, pb) in zip(first, second, strict=True):
        assert np.array_equal(a, b) and pa == pb
    assert len(first[0][1]) > 5


def test_fresh_process_reports_the_childs_error() -> None:
    with pytest.raises(EspeakError, match="unknown voice"):
        synthesize_fresh([{"text": "hi", "voice": "no-such-voice"}])
