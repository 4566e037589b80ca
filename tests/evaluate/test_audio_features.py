"""Log-mel and MFCC features against independent references: a pure tone's band, a burst's frames, a slow
float64 loop written from the equations, the delta formula on a ramp and a parabola, and input checks."""

import math

import numpy as np
import pytest
import torch

from contrastkit.evaluate.audio_features import deltas, log_mel, mel_filterbank, mfcc

SR = 16000


def _htk_centres(n_mels: int = 40, fmax: float = SR / 2) -> np.ndarray:
    top = 2595.0 * math.log10(1.0 + fmax / 700.0)
    return np.array([700.0 * (10.0 ** (m / 2595.0) - 1.0) for m in np.linspace(0.0, top, n_mels + 2)[1:-1]])


@pytest.mark.parametrize("freq", [440.0, 1000.0, 3000.0, 6500.0])
def test_pure_tone_peaks_in_the_band_centred_nearest_its_frequency(freq: float) -> None:
    t = np.arange(SR) / SR
    features = log_mel(np.sin(2 * np.pi * freq * t)[None])  # (1, 100, 40)
    assert features.shape == (1, 100, 40)
    expected = int(np.argmin(np.abs(_htk_centres() - freq)))
    interior = features[0, 3:-3]  # away from the zero-padded ends
    assert (interior.argmax(axis=1) == expected).all()


def test_frame_f_describes_samples_f_hop_to_f_plus_one_hop() -> None:
    # a burst filling exactly frame k: the 400-sample windows centred on frames k-1, k, k+1 overlap it
    # (window f spans [160 f - 120, 160 f + 280)), every other frame sees only zeros and sits at the floor
    k, hop = 7, 160
    x = np.zeros((1, 20 * hop))
    x[0, k * hop:(k + 1) * hop] = np.random.default_rng(0).normal(size=hop)
    energy = log_mel(x, floor=1e-10)[0]  # (20, 40)
    floor = np.float32(math.log(1e-10))
    touched = np.flatnonzero((energy > floor).any(axis=1))
    assert touched.tolist() == [k - 1, k, k + 1]
    assert np.all(energy[np.setdiff1d(np.arange(20), touched)] == floor)
    total = np.exp(energy.astype(np.float64)).sum(axis=1)
    assert total.argmax() == k


def test_frame_count_is_t_over_hop_and_input_forms_agree() -> None:
    x = np.random.default_rng(1).normal(size=(3, 1, 1000)).astype(np.float32)  # 1000 // 160 = 6 frames
    ref = log_mel(x)
    assert ref.shape == (3, 6, 40) and ref.dtype == np.float32
    np.testing.assert_array_equal(log_mel(x[:, 0]), ref)
    np.testing.assert_array_equal(log_mel(torch.from_numpy(x)), ref)
    assert mfcc(x).shape == (3, 6, 39)
    assert mfcc(x, deltas=False).shape == (3, 6, 13)
    assert mfcc(x, n_mfcc=20, deltas=False).shape == (3, 6, 20)
    assert log_mel(x, hop=100, win=250, n_fft=256, n_mels=24).shape == (3, 10, 24)


def test_gain_shifts_log_mel_by_twice_its_log() -> None:
    x = np.random.default_rng(2).normal(size=(2, 1600))
    np.testing.assert_allclose(log_mel(3.0 * x), log_mel(x) + 2 * math.log(3.0), rtol=0, atol=2e-5)


def test_filterbank_triangles_have_peak_one_and_sum_to_one_between_the_first_and_last_centres() -> None:
    bank = mel_filterbank(SR, 512, 40)
    assert bank.shape == (40, 257)
    assert bank.max() <= 1.0 + 1e-12 and bank.min() >= 0.0
    bins = np.arange(257) * SR / 512
    centres = _htk_centres()
    inside = (bins >= centres[0]) & (bins <= centres[-1])
    np.testing.assert_allclose(bank[:, inside].sum(axis=0), 1.0, atol=1e-12)  # adjacent triangles overlap


def _reference_mfcc(x: np.ndarray, n_mels: int = 40, win: int = 400, hop: int = 160, n_fft: int = 512,
                    n_mfcc: int = 13, floor: float = 1e-10) -> np.ndarray:
    """Written from the equations, float64 loops, no shared code."""
    top = 2595.0 * math.log10(1.0 + (SR / 2) / 700.0)
    corners = [700.0 * (10.0 ** (top * i / (n_mels + 1) / 2595.0) - 1.0) for i in range(n_mels + 2)]
    n_bins = n_fft // 2 + 1
    frames = len(x) // hop
    out = np.zeros((frames, 3 * n_mfcc))
    cep = np.zeros((frames, n_mfcc))
    for f in range(frames):
        start = f * hop + (hop - win) // 2
        seg = [x[start + n] * (0.5 - 0.5 * math.cos(2 * math.pi * n / win)) if 0 <= start + n < len(x) else 0.0
               for n in range(win)]
        power = []
        for k in range(n_bins):
            re = sum(seg[n] * math.cos(2 * math.pi * k * n / n_fft) for n in range(win))
            im = -sum(seg[n] * math.sin(2 * math.pi * k * n / n_fft) for n in range(win))
            power.append(re * re + im * im)
        logmel = []
        for m in range(1, n_mels + 1):
            lo, mid, hi = corners[m - 1], corners[m], corners[m + 1]
            energy = 0.0
            for k in range(n_bins):
                freq = k * SR / n_fft
                if lo <= freq <= mid:
                    energy += (freq - lo) / (mid - lo) * power[k]
                elif mid < freq <= hi:
                    energy += (hi - freq) / (hi - mid) * power[k]
            logmel.append(math.log(max(energy, floor)))
        for j in range(n_mfcc):
            scale = math.sqrt((1.0 if j == 0 else 2.0) / n_mels)
            cep[f, j] = scale * sum(logmel[m] * math.cos(math.pi * j * (2 * m + 1) / (2 * n_mels))
                                    for m in range(n_mels))

    def delta(c: np.ndarray) -> np.ndarray:
        d = np.zeros_like(c)
        for f in range(len(c)):
            for n in (1, 2):
                d[f] += n * (c[min(f + n, len(c) - 1)] - c[max(f - n, 0)])
        return d / 10.0

    d1 = delta(cep)
    out[:, :n_mfcc], out[:, n_mfcc:2 * n_mfcc], out[:, 2 * n_mfcc:] = cep, d1, delta(d1)
    return out


def test_mfcc_matches_a_slow_float64_loop_written_from_the_equations() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(1000) / SR
    x = 0.5 * np.sin(2 * np.pi * 220 * t) + 0.3 * np.sin(2 * np.pi * 1900 * t) + 0.05 * rng.normal(size=t.size)
    x[:100] = 0.0  # a silent start, next to the zero padding of the first window
    ours = mfcc(x[None].astype(np.float32)).astype(np.float64)[0]
    ref = _reference_mfcc(x.astype(np.float32).astype(np.float64))
    assert ours.shape == ref.shape == (6, 39)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)  # float32 output; measured error 4e-7


def test_deltas_on_a_ramp_and_a_parabola() -> None:
    t = np.arange(10, dtype=np.float64)
    ramp = (3.0 * t - 1.0)[:, None]  # (F, 1)
    d = deltas(ramp)[:, 0]
    np.testing.assert_allclose(d[2:-2], 3.0)  # interior: exactly the slope
    # edges repeat the end frames: d_0 = (1 * 3 + 2 * 6) / 10, d_1 = (1 * 6 + 2 * 9) / 10
    np.testing.assert_allclose(d[[0, 1, -2, -1]], [1.5, 2.4, 2.4, 1.5])
    parabola = (t**2)[None, :, None]  # (1, F, 1): leading axes pass through
    np.testing.assert_allclose(deltas(parabola)[0, 2:-2, 0], 2 * t[2:-2])
    np.testing.assert_allclose(deltas(ramp, width=1)[1:-1, 0], 3.0)


def test_bad_inputs_are_refused_clearly() -> None:
    x = np.zeros((2, 1600), dtype=np.float32)
    with pytest.raises(ValueError, match="mono"):
        log_mel(np.zeros((2, 2, 1600), dtype=np.float32))
    with pytest.raises(ValueError, match="shorter than one hop"):
        log_mel(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(TypeError, match="float"):
        log_mel(np.zeros((2, 1600), dtype=np.int16))
    with pytest.raises(ValueError, match="n_fft"):
        log_mel(x, n_fft=256)
    with pytest.raises(ValueError, match="cover no FFT bin"):
        log_mel(x, n_mels=128)
    with pytest.raises(ValueError, match="n_mfcc"):
        mfcc(x, n_mfcc=41)
    with pytest.raises(ValueError, match="NaN"):
        log_mel(np.full((1, 1600), np.nan, dtype=np.float32))
