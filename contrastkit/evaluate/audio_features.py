r"""Hand-crafted speech features in numpy / scipy: log-mel filterbank energies and MFCCs (probe baselines).

The baselines of the CPC paper's two probes (van den Oord et al. 2018, section 3.1): the same linear probes are
run on these features as on the context vectors :math:`c_t`, so that "MFCC", "random-init network" and "trained
network" numbers are comparable. No audio library is needed.

Framing (one feature frame per label frame):
    with ``hop`` samples per frame, an utterance of T samples has exactly :math:`F = \lfloor T / \text{hop}
    \rfloor` frames, and frame ``f`` describes samples :math:`[f\,\text{hop}, (f+1)\,\text{hop})`: its analysis
    window of ``win`` samples starts at :math:`f\,\text{hop} + \lfloor (\text{hop} - \text{win}) / 2 \rfloor`, so
    the window is centred on the frame (exactly when ``win - hop`` is even, as for 400 / 160), and the signal is
    zero-padded at both ends where a window reaches past it. These frames line up with an
    :class:`~contrastkit.data.containers.ArrayDataset`'s ``frame_labels`` (frame ``f`` covers samples
    ``[f * hop, (f + 1) * hop)``) when ``hop = T // F``. Samples past :math:`F\,\text{hop}` only fill the last
    window.

Log-mel (per frame, window :math:`x_f[n]`, :math:`n = 0 \dots \text{win} - 1`):

.. math::

    w[n] = \tfrac12 - \tfrac12 \cos\frac{2\pi n}{\text{win}} \quad\text{(periodic Hann)}, \qquad
    P_f[k] = \Bigl| \sum_{n=0}^{\text{win}-1} w[n]\, x_f[n]\, e^{-2\pi i k n / n_\text{fft}} \Bigr|^2,
    \quad k = 0 \dots n_\text{fft} / 2,

.. math::

    E_f[m] = \sum_k H_m(k f_s / n_\text{fft})\, P_f[k], \qquad
    \text{logmel}_f[m] = \ln \max(E_f[m], \text{floor}),

with the **HTK mel scale** :math:`\text{mel}(f) = 2595 \log_{10}(1 + f / 700)` (Young et al., *The HTK Book*,
section 5.4) and triangular filters :math:`H_m` of peak 1 (no area normalisation, unlike Slaney's), whose
:math:`n_\text{mels} + 2` corner frequencies are equally spaced in mel between ``fmin`` and ``fmax``: :math:`H_m`
rises linearly from corner :math:`m - 1` to 1 at corner :math:`m` and falls to 0 at corner :math:`m + 1`
(evaluated at each FFT bin's frequency, as ``librosa.filters.mel(htk=True, norm=None)`` does).
The power spectrum is not divided by ``n_fft``; the floor (default :math:`10^{-10}`) keeps silence finite.

MFCC: the orthonormal DCT-II of the log-mel energies, first ``n_mfcc`` coefficients (:math:`c_0` included):

.. math::

    c_f[j] = \sqrt{\tfrac{2 - \delta_{j0}}{M}} \sum_{m=0}^{M-1} \text{logmel}_f[m]
    \cos\frac{\pi j (2m + 1)}{2M}, \qquad M = n_\text{mels},

and, with ``deltas=True``, the deltas and delta-deltas appended (13 -> 39 values per frame) by the standard
regression formula over :math:`\pm N` = 2 frames (HTK Book eq. 5.16), edge frames repeated past the ends:

.. math::

    d_f = \frac{\sum_{n=1}^{N} n\,(c_{f+n} - c_{f-n})}{2 \sum_{n=1}^{N} n^2}.

No cepstral mean normalisation or liftering (per-utterance normalisation would remove some speaker information,
which the speaker probe measures; the probes standardise features with train-split statistics anyway).
Computed in float64, returned as float32 numpy arrays.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view

from contrastkit.evaluate._inputs import to_numpy

__all__ = ["deltas", "frame_signals", "hann_window", "hz_to_mel", "log_mel", "mel_filterbank", "mel_to_hz", "mfcc"]

#: Floor under the mel energies before the log (absolute, in the units of the power spectrum).
DEFAULT_FLOOR = 1e-10
# Frames transformed at once (bounds the float64 / complex128 temporaries to a few tens of MB).
_CHUNK_FRAMES = 8192


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: :math:`2595 \\log_{10}(1 + f / 700)`."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`: :math:`700 (10^{m / 2595} - 1)`."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def hann_window(win: int) -> np.ndarray:
    """Periodic Hann window :math:`\\tfrac12 - \\tfrac12 \\cos(2\\pi n / \\text{win})` (as ``torch.hann_window``)."""
    n = np.arange(win, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win)


def mel_filterbank(sample_rate: int = 16000, n_fft: int = 512, n_mels: int = 40, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular HTK-mel filters of peak 1, ``(n_mels, n_fft // 2 + 1)`` float64 (see the module docstring).

    Raises ValueError when a filter falls between two FFT bins and would be empty (too many mels for ``n_fft``).
    """
    where = "mel_filterbank"
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ValueError(f"{where}: need 0 <= fmin < fmax <= sample_rate / 2 = {sample_rate / 2:g}, got fmin={fmin}, "
                         f"fmax={fmax}")
    corners = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (n_mels + 2,) Hz
    bins = np.arange(n_fft // 2 + 1) * sample_rate / n_fft  # (K,) Hz
    lower, centre, upper = corners[:-2, None], corners[1:-1, None], corners[2:, None]  # (n_mels, 1)
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))  # (n_mels, K)
    empty = np.flatnonzero(bank.sum(axis=1) == 0)
    if empty.size:
        raise ValueError(f"{where}: mel filter(s) {empty.tolist()} cover no FFT bin; use fewer mels "
                         f"(n_mels={n_mels}) or a larger n_fft (n_fft={n_fft})")
    return bank


def _as_signals(x: object, where: str) -> np.ndarray:
    """(N, T) or (N, 1, T) numpy / torch -> float64 (N, T)."""
    x = to_numpy(x, "x", where)
    if x.ndim == 3:
        if x.shape[1] != 1:
            raise ValueError(f"{where}: `x` must be mono, (N, T) or (N, 1, T); got {x.shape[1]} channels "
                             f"(shape {x.shape})")
        x = x[:, 0, :]
    if x.ndim != 2:
        raise ValueError(f"{where}: `x` must be (N, T) or (N, 1, T), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{where}: `x` must be a float array of samples, got dtype {x.dtype}")
    x = x.astype(np.float64, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{where}: `x` holds {int((~np.isfinite(x)).sum())} NaN/Inf value(s)")
    return x


def _check_sizes(where: str, win: int, hop: int, n_fft: int, t: int) -> None:
    for name, value in (("win", win), ("hop", hop), ("n_fft", n_fft)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{where}: `{name}` must be a positive integer, got {value!r}")
    if n_fft < win:
        raise ValueError(f"{where}: `n_fft` ({n_fft}) must be >= `win` ({win})")
    if t < hop:
        raise ValueError(f"{where}: signals of {t} samples are shorter than one hop ({hop}): no frame")


def frame_signals(x: np.ndarray, win: int, hop: int) -> np.ndarray:
    """Windows ``(N, T // hop, win)`` of float signals ``(N, T)``, window ``f`` centred on samples
    ``[f * hop, (f + 1) * hop)`` (start ``f * hop + (hop - win) // 2``), zero-padded past either end. A view
    into a padded copy; not windowed."""
    t = x.shape[1]
    frames = t // hop
    offset = (hop - win) // 2  # start of window 0 relative to sample 0 (negative when win > hop)
    left = max(0, -offset)
    right = max(0, (frames - 1) * hop + offset + win - t)
    padded = np.pad(x, ((0, 0), (left, right)))
    first = offset + left
    return sliding_window_view(padded, win, axis=1)[:, first:first + (frames - 1) * hop + 1:hop]


def _log_mel64(x: np.ndarray, sample_rate: int, n_mels: int, win: int, hop: int, n_fft: int, fmin: float,
               fmax: float | None, floor: float) -> np.ndarray:
    """float64 (N, F, n_mels) of float64 signals (N, T)."""
    bank_t = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax).T  # (K, n_mels)
    window = hann_window(win)
    frames = frame_signals(x, win, hop)  # (N, F, win) view
    n, f = frames.shape[:2]
    out = np.empty((n, f, n_mels))
    step = max(1, _CHUNK_FRAMES // max(f, 1))
    for start in range(0, n, step):
        spectrum = scipy.fft.rfft(frames[start:start + step] * window, n=n_fft, axis=-1)  # (b, F, K)
        power = spectrum.real**2 + spectrum.imag**2
        out[start:start + step] = np.log(np.maximum(power @ bank_t, floor))
    return out


def log_mel(x: object, sample_rate: int = 16000, n_mels: int = 40, win: int = 400, hop: int = 160,
            n_fft: int = 512, *, fmin: float = 0.0, fmax: float | None = None,
            floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """Log-mel energies ``(N, T // hop, n_mels)`` float32 of mono signals ``x`` (N, T) or (N, 1, T).

    Defaults: 25 ms Hann windows every 10 ms at 16 kHz, 512-point FFT, 40 HTK-mel filters over 0 - 8 kHz,
    natural log floored at ``floor``. Frame ``f`` is centred on samples ``[f * hop, (f + 1) * hop)`` (module
    docstring). ``x``: float numpy array or torch tensor (any device).
    """
    where = "log_mel"
    signals = _as_signals(x, where)
    _check_sizes(where, win, hop, n_fft, signals.shape[1])
    if not floor > 0:
        raise ValueError(f"{where}: `floor` must be > 0, got {floor!r}")
    return _log_mel64(signals, sample_rate, n_mels, win, hop, n_fft, fmin, fmax, floor).astype(np.float32)


def deltas(features: np.ndarray, width: int = 2) -> np.ndarray:
    r"""Regression deltas along the frame axis (-2) of ``(..., F, D)``:
    :math:`d_f = \sum_{n=1}^{N} n (c_{f+n} - c_{f-n}) / (2 \sum_{n=1}^{N} n^2)`, ``N = width``, with the first
    and last frames repeated past the ends (HTK). Same shape and float dtype as the input."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"deltas: `width` must be an integer >= 1, got {width!r}")
    c = np.asarray(features)
    if c.ndim < 2:
        raise ValueError(f"deltas: `features` must be (..., F, D), got shape {c.shape}")
    f = c.shape[-2]
    pad = [(0, 0)] * c.ndim
    pad[-2] = (width, width)
    padded = np.pad(c, pad, mode="edge")
    num = sum(n * (padded[..., width + n:width + n + f, :] - padded[..., width - n:width - n + f, :])
              for n in range(1, width + 1))
    return num / (2.0 * sum(n * n for n in range(1, width + 1)))


def mfcc(x: object, sample_rate: int = 16000, n_mels: int = 40, win: int = 400, hop: int = 160, n_fft: int = 512,
         n_mfcc: int = 13, deltas: bool = True, *, fmin: float = 0.0, fmax: float | None = None,
         floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """MFCCs ``(N, T // hop, n_mfcc)``, or ``(N, T // hop, 3 * n_mfcc)`` = [c, delta, delta-delta] with
    ``deltas`` (the default: 39 values per frame), float32.

    The orthonormal DCT-II of :func:`log_mel` (same framing and arguments), coefficients 0 .. n_mfcc - 1;
    deltas by :func:`deltas` over +-2 frames, delta-deltas as the deltas of the deltas.
    """
    where = "mfcc"
    signals = _as_signals(x, where)
    _check_sizes(where, win, hop, n_fft, signals.shape[1])
    if isinstance(n_mfcc, bool) or not isinstance(n_mfcc, int) or not 1 <= n_mfcc <= n_mels:
        raise ValueError(f"{where}: `n_mfcc` must be an integer in [1, n_mels = {n_mels}], got {n_mfcc!r}")
    if not floor > 0:
        raise ValueError(f"{where}: `floor` must be > 0, got {floor!r}")
    lm = _log_mel64(signals, sample_rate, n_mels, win, hop, n_fft, fmin, fmax, floor)
    c = scipy.fft.dct(lm, type=2, norm="ortho", axis=-1)[..., :n_mfcc]
    if deltas:
        d = _deltas(c)
        c = np.concatenate([c, d, _deltas(d)], axis=-1)
    return c.astype(np.float32)


_deltas = deltas  # `mfcc`'s `deltas` flag shadows the function inside it
