r"""A synthetic "speech" generator with known latent factors: speakers, phones, noise (fast, for tests and demos).

The survey's noisy-signal example made concrete. An utterance is a sequence of "phone" segments at 16 kHz; each
segment is a sum of harmonics of the speaker's pitch, shaped by the speaker's timbre and the phone's formants,
under additive white noise:

.. math::

    x(t) = g \sum_{h=1}^{H} a_s(h)\, e_p(h f_0)\, \sin(2\pi h f_0 t + \phi_h) + \sigma \epsilon(t),

* **speaker** ``s``: a base pitch :math:`f_0` (80-250 Hz, jittered by +-3 % per utterance) and a timbre, the
  spectral tilt :math:`a_s(h) = h^{-\alpha_s}` with :math:`\alpha_s \in [0.5, 1.5]`;
* **phone** ``p``: an envelope of two Gaussian formants :math:`e_p(f) = \sum_i \exp(-(f - F_{i,p})^2 / 2 b^2)`
  with :math:`F_{1,p} \in [300, 900]` Hz, :math:`F_{2,p} \in [900, 2500]` Hz, :math:`b` = 150 Hz;
* segments last 4-12 frames of 10 ms (160 samples); the phone label of each frame is known exactly;
* gain :math:`g` and noise :math:`\sigma` vary per utterance (an SNR of 5-20 dB).

Train and test utterances are different random phone sequences of the same speakers. Everything is a function of
the seed (``np.random.default_rng``), so a test can check that the factors are recoverable.
"""

from __future__ import annotations

import numpy as np
import torch

from contrastkit.data.containers import ArrayDataset, DatasetSplits

__all__ = ["HOP", "SAMPLE_RATE", "toy_speech", "toy_speech_factors"]

SAMPLE_RATE = 16_000
HOP = 160  # samples per 10 ms frame


def _speakers(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(80.0, 250.0, n), rng.uniform(0.5, 1.5, n)  # base pitch (Hz), spectral tilt


def _phones(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.stack([rng.uniform(300.0, 900.0, n), rng.uniform(900.0, 2500.0, n)], axis=1)  # (P, 2) formants


def _utterance(rng: np.random.Generator, frames: int, f0: float, tilt: float, formants: np.ndarray,
               harmonics: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """One utterance: (frames * HOP,) float32 signal and (frames,) phone ids."""
    labels = np.empty(frames, dtype=np.int64)
    start = 0
    while start < frames:
        length = int(rng.integers(4, 13))
        labels[start:start + length] = rng.integers(0, len(formants))
        start += length
    f0 = f0 * rng.uniform(0.97, 1.03)
    h = np.arange(1, harmonics + 1)  # (H,)
    freqs = h * f0  # (H,)
    env = np.exp(-((freqs[None, :, None] - formants[:, None, :]) ** 2) / (2 * 150.0**2)).sum(-1)  # (P, H)
    amps = (h ** -tilt)[None, :] * env * (freqs < SAMPLE_RATE / 2)  # (P, H)
    t = np.arange(frames * HOP) / SAMPLE_RATE  # (T,)
    phase = rng.uniform(0, 2 * np.pi, harmonics)
    waves = np.sin(2 * np.pi * freqs[:, None] * t[None, :] + phase[:, None])  # (H, T)
    per_sample = amps[np.repeat(labels, HOP)]  # (T, H): each sample's phone amplitudes
    signal = (per_sample * waves.T).sum(1)
    signal /= np.abs(signal).max() + 1e-9
    snr_db = rng.uniform(5.0, 20.0)
    noise = rng.normal(size=signal.shape) * np.sqrt(np.mean(signal**2) / 10 ** (snr_db / 10))
    gain = rng.uniform(0.3, 1.0)
    return (gain * (signal + noise)).astype(np.float32), labels


def toy_speech_factors(seed: int = 0, *, num_speakers: int = 8, num_phones: int = 10) -> dict[str, np.ndarray]:
    """The latent factors :func:`toy_speech` draws first from ``seed``: each speaker's base ``pitch`` (Hz) and
    ``tilt``, each phone's two ``formants`` (Hz)."""
    rng = np.random.default_rng(seed)
    pitch, tilt = _speakers(rng, num_speakers)
    return {"pitch": pitch, "tilt": tilt, "formants": _phones(rng, num_phones)}


def toy_speech(seed: int = 0, *, num_speakers: int = 8, num_phones: int = 10, train_per_speaker: int = 24,
               test_per_speaker: int = 8, frames: int = 64) -> DatasetSplits:
    """Synthetic utterances (N, 1, frames * 160) at 16 kHz; ``labels`` are speakers, ``frame_labels`` phones.

    The defaults give 192 train / 64 test utterances of 0.64 s (under a second to build)."""
    for name, value, low in (("num_speakers", num_speakers, 2), ("num_phones", num_phones, 2),
                             ("train_per_speaker", train_per_speaker, 1), ("test_per_speaker", test_per_speaker, 1),
                             ("frames", frames, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"toy_speech: `{name}` must be an integer >= {low}, got {value!r}")
    rng = np.random.default_rng(seed)
    pitch, tilt = _speakers(rng, num_speakers)
    formants = _phones(rng, num_phones)
    parts = []
    for count in (train_per_speaker, test_per_speaker):
        x, speakers, phones = [], [], []
        for s in range(num_speakers):
            for _ in range(count):
                signal, labels = _utterance(rng, frames, pitch[s], tilt[s], formants)
                x.append(signal)
                phones.append(labels)
                speakers.append(s)
        parts.append(ArrayDataset(torch.from_numpy(np.stack(x))[:, None, :], torch.tensor(speakers),
                                  torch.from_numpy(np.stack(phones))))
    return DatasetSplits("toyspeech", parts[0], parts[1], num_speakers,
                         class_names=tuple(f"speaker{s}" for s in range(num_speakers)),
                         frame_class_names=tuple(f"phone{p}" for p in range(num_phones)))
