"""The audio tower's front end against the log-mel energies computed by an explicit loop from their definition
(float64), its invariance to the recording's gain, and the tower's shapes and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contrastkit.evaluate.audio_features import mel_filterbank
from contrastkit.models.audio import LogMel, MelCNN


def _reference_log_mel(x: np.ndarray, sample_rate: int = 16_000, n_fft: int = 512, n_mels: int = 40) -> np.ndarray:
    """log(E + 1e-6) standardised, from the definition: frame f is the signal reflected at both ends by n_fft / 2,
    samples [f hop, f hop + n_fft), times a periodic Hann window of 25 ms centred in it; E = H |DFT|^2."""
    hop, win = sample_rate // 100, round(sample_rate * 0.025)
    padded = np.pad(x, n_fft // 2, mode="reflect")
    window = np.zeros(n_fft)
    n = np.arange(win)
    window[(n_fft - win) // 2:(n_fft - win) // 2 + win] = 0.5 - 0.5 * np.cos(2 * np.pi * n / win)
    frames = len(x) // hop + 1
    k = np.arange(n_fft // 2 + 1)[:, None]
    dft = np.exp(-2j * np.pi * k * np.arange(n_fft)[None, :] / n_fft)  # (bins, n_fft)
    power = np.empty((n_fft // 2 + 1, frames))
    for f in range(frames):
        power[:, f] = np.abs(dft @ (padded[f * hop:f * hop + n_fft] * window)) ** 2
    logmel = np.log(mel_filterbank(sample_rate, n_fft, n_mels).astype(np.float64) @ power + 1e-6)
    return (logmel - logmel.mean()) / (logmel.std(ddof=1) + 1e-5)


def test_log_mel_equals_the_definition() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 16_000
    x = np.sin(2 * np.pi * 440 * t) * np.linspace(0, 1, 4000) + 0.1 * rng.standard_normal(4000)
    got = LogMel()(torch.from_numpy(x[None, None]).float())[0].double().numpy()  # (40, 26)
    expected = _reference_log_mel(x)
    assert got.shape == expected.shape == (40, 26)
    assert np.abs(got - expected).max() < 2e-3


def test_a_recordings_gain_does_not_change_the_front_end() -> None:
    x = torch.randn(2, 1, 3200) * 0.1
    frontend = LogMel()
    assert torch.allclose(frontend(x), frontend(8 * x), atol=1e-3)


def test_the_tower_pools_any_length_to_one_vector_and_refuses_bad_audio() -> None:
    tower = MelCNN(width=8)
    assert tower(torch.randn(3, 1, 1600)).shape == tower(torch.randn(3, 1, 8000)).shape == (3, 32)
    assert tower.feature_dim == 32
    with pytest.raises(ValueError, match=r"LogMel: expects mono audio \(N, 1, T\), got \(3, 2, 1600\)"):
        tower(torch.randn(3, 2, 1600))
    with pytest.raises(ValueError, match=r"LogMel: expects audio \(N, 1, T\) with T >= 400 samples, got \(3, 100\)"):
        tower(torch.randn(3, 1, 100))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the front end stays float32 under autocast
        assert tower.frontend(torch.randn(2, 1, 1600)).dtype == torch.float32
