"""The audio tower's front end against the mel energies computed by an explicit loop from their definition (float64),
its active (speech) frames, its invariance to the recording's gain and to the silence after a word, and the tower's
shapes and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from contrastkit.evaluate.audio_features import mel_filterbank
from contrastkit.models.audio import LogMel, MelCNN


def _reference_energies(x: np.ndarray, sample_rate: int = 16_000, n_fft: int = 512, n_mels: int = 40) -> np.ndarray:
    """Mel energies E from the definition: frame f is the signal reflected at both ends by n_fft / 2, samples
    [f hop, f hop + n_fft), times a periodic Hann window of 25 ms centred in it; E = H |DFT|^2."""
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
    return mel_filterbank(sample_rate, n_fft, n_mels).astype(np.float64) @ power


def _word_in_silence(length: int = 44_800, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A 0.5 s tone at the start of a clip of ``length`` samples with faint noise throughout (1, 1, length), and the
    same first 0.5 s alone (1, 1, 8000)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(8000) / 16_000
    clip = 0.003 * torch.randn(1, 1, length, generator=g)
    clip[0, 0, :8000] += 0.5 * torch.sin(2 * np.pi * 440 * t)
    return clip, clip[:, :, :8000].clone()


def test_mel_energies_equal_the_definition() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 16_000
    x = np.sin(2 * np.pi * 440 * t) * np.linspace(0, 1, 4000) + 0.1 * rng.standard_normal(4000)
    got = LogMel().energies(torch.from_numpy(x[None, None]).float())[0].double().numpy()  # (40, 26)
    expected = _reference_energies(x)
    assert got.shape == expected.shape == (40, 26)
    assert np.allclose(got, expected, rtol=1e-3, atol=1e-3 * expected.max())


def test_active_frames_are_the_speech_and_standardise_it() -> None:
    clip, alone = _word_in_silence()
    logmel, active = LogMel()(clip)
    assert logmel.shape == (1, 40, 281) and active.shape == (1, 281)
    assert active[0, :49].all() and not active[0, 52:].any()  # the tone's 50 frames (+- the edge frame)
    speech = logmel[0][:, active[0]]
    assert abs(float(speech.mean())) < 1e-5 and abs(float(speech.std(unbiased=False)) - 1) < 1e-3
    assert LogMel()(alone)[1].float().mean() > 0.9  # no quiet background: all but the edge frames are active


def test_a_recordings_gain_does_not_change_the_front_end() -> None:
    x = torch.randn(2, 1, 3200) * 0.1
    frontend = LogMel()
    assert torch.allclose(frontend(x)[0], frontend(8 * x)[0], atol=1e-3)


def test_the_silence_a_word_is_padded_with_hardly_changes_its_embedding() -> None:
    torch.manual_seed(0)
    tower = MelCNN(width=16).eval()
    clip, alone = _word_in_silence()
    with torch.no_grad():
        assert F.cosine_similarity(tower(clip), tower(alone)).item() > 0.97  # plain mean pooling: 0.66 (measured)


def test_the_tower_pools_any_length_to_one_vector_and_refuses_bad_audio() -> None:
    tower = MelCNN(width=8)
    assert tower(torch.randn(3, 1, 1600)).shape == tower(torch.randn(3, 1, 8000)).shape == (3, 32)
    assert tower.feature_dim == 32
    with pytest.raises(ValueError, match=r"LogMel: expects mono audio \(N, 1, T\), got \(3, 2, 1600\)"):
        tower(torch.randn(3, 2, 1600))
    with pytest.raises(ValueError, match=r"LogMel: expects audio \(N, 1, T\) with T >= 400 samples, got \(3, 100\)"):
        tower(torch.randn(3, 1, 100))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the front end stays float32 under autocast
        assert tower.frontend(torch.randn(2, 1, 1600))[0].dtype == torch.float32
